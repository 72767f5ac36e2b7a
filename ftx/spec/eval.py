"""The `eval` group's schema: what is measured before and after training, and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import require
from ftx.spec.choices import EITHER, Choice, check_choices


class GoldenMatch(Choice):
    contains = "contains"
    exact = "exact"


class EvalPrecision(Choice):
    train = "train"
    bf16 = "bf16"
    fp32 = "fp32"


CHOICE_MESSAGES = {"eval.golden.match": EITHER}

SPLITS = ("val", "test", "general_eval")
TASK_METRICS = ("exact_match", "contains", "token_f1", "rouge_l", "judge")
"""Per-example generation metrics a primary metric (eval.primary) can name, as `<split>_<metric>`."""


class SelectMetric(Choice):
    auto = "auto"
    loss = "loss"
    task = "task"


def parse_primary(name: str) -> tuple[str, str]:
    """`val_contains` → ("val", "contains"); ("", "") when it names no split/metric pair."""
    for split in sorted(SPLITS, key=len, reverse=True):
        if name.startswith(split + "_") and name[len(split) + 1:] in TASK_METRICS:
            return split, name[len(split) + 1:]
    return "", ""


@dataclass
class GenerationConfig:
    """Generation on held-out prompts (greedy by default); predictions land beside metrics.json."""

    enabled: bool = True
    """Answer the held-out prompts of `splits` (the golden set runs whenever eval.golden.path is set)."""
    splits: List[str] = field(default_factory=lambda: ["val", "test"])
    """Held-out splits whose prompts are answered (val | test | general_eval; empty ones are skipped)."""
    max_examples: int = 32
    """Cap per split and per prompt file (golden, off-domain); 0: all. CPU generation is slow."""
    max_new_tokens: int = 48
    """The demo's answers put the direct answer in the first sentence; 48 tokens cover it."""
    batch_size: int = 8
    """Prompts generated together (left-padded)."""
    do_sample: bool = False
    """False: greedy (deterministic, what re-evaluation reproduces)."""
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0
    """Seed for sampling (do_sample=true)."""


@dataclass
class ForgettingConfig:
    """General-capability regression: loss on the general_eval split, tuned vs base."""

    budget: Optional[float] = 0.10
    """Largest allowed relative rise of the general_eval loss (0.10 = +10%); null: report only."""
    harness_max_drop: Optional[float] = None
    """Largest allowed drop of each eval.harness task's main metric, tuned vs base, in absolute points of
    the metric (0.05: acc 0.80 → 0.74 flags); null: the harness deltas are reported, not counted."""


@dataclass
class GoldenConfig:
    """A user's regression set, {"id", "prompt", "answers": [...]} per line, run after every training."""

    path: Optional[str] = None
    """A .jsonl file (`asset:demo/golden.jsonl` names a shipped file); null: no golden set."""
    match: GoldenMatch = GoldenMatch.contains
    """contains (a normalised accepted answer appears as a phrase in the output) | exact."""
    min_pass_rate: Optional[float] = None
    """Flag the run when the tuned model passes fewer than this share; null: report only."""


@dataclass
class ProbeConfig:
    """Out-of-domain probe: {"prompt", "response"} per line; flags confident nonsense."""

    path: Optional[str] = None
    """A .jsonl file of off-domain prompts with sensible responses; null: no probe."""
    loss_margin: float = 0.1
    """A prompt counts as confident nonsense when the tuned response loss rises by more than this
    (nats/token) over the base while the tuned model's confidence rises too."""
    max_rate: Optional[float] = None
    """Flag the run when more than this share of probes are confident nonsense; null: report only."""
    generate: bool = False
    """Also answer the probe prompts (saved with the predictions, for reading; costs generation time)."""


@dataclass
class JudgeConfig:
    """LLM-as-judge over the generated answers; off by default."""

    kind: str = "none"
    """none | reference (deterministic token-F1 judge, no model) | lm (a local causal LM answers
    yes/no) | pairwise (a local causal LM picks the better of base and tuned, in both orders) |
    package.module:factory (your own; called with this config, returns a Judge: score() or compare())."""
    model: Optional[str] = None
    """kind=lm or pairwise: a local model folder or hub id; null: the run's base model."""
    threshold: float = 0.5
    """A judged answer passes when its score is >= threshold."""


@dataclass
class SelectConfig:
    """Checkpoint selection and early stopping during training (train.keep_best, train.early_stopping_patience)."""

    metric: SelectMetric = SelectMetric.auto
    """auto (task when the held-out records carry accepted answers, else loss) | loss (eval_loss) |
    task (eval.primary, measured by greedy generation on `sample` validation prompts at every evaluation)."""
    sample: int = 32
    """Validation prompts generated at each evaluation during training (the first N, fixed for the run)."""


OPS_PREFIX = "ops_"
OPS_METRICS = tuple(OPS_PREFIX + k for k in (
    "latency_p50_s", "latency_p90_s", "latency_p99_s", "ttft_p50_s", "ttft_p90_s", "output_tokens_mean",
    "output_tokens_p90", "hit_max_new_tokens_rate", "prompt_tokens_mean", "tokens_per_s"))
"""The operational metrics every evaluation with generated prompts writes per side (ftx.eval.ops)."""


@dataclass
class LatencyConfig:
    """Operational metrics: each answer generated alone (batch 1, eval.generation settings) on the same prompts
    for base and tuned, timed after a warm-up: latency p50/p90/p99, time to first token, tokens/s."""

    prompts: int = 16
    """Prompts timed per side (the first N of the first generated set: val, else test, general_eval, golden);
    0: no operational metrics. The percentiles rest on this many answers (metrics.json says how many)."""
    warmup: int = 2
    """Untimed generations before timing (allocator, kernels, caches)."""
    max_p99_ratio: Optional[float] = 1.2
    """Flag the run when the tuned p99 latency exceeds the base's by more than this factor (1.2: +20%, the
    usual roll-back line); null: report only."""
    min_p99_delta_s: float = 0.05
    """…and by more than this many seconds: on sub-second answers (small models, a loaded CPU) a ratio over
    16 answers is mostly timing noise, which must not flag (or, with objective.on_regression=fail, fail) a run."""


@dataclass
class TokensConfig:
    """Output length budget (the operational metrics' answers)."""

    max_ratio: Optional[float] = 1.5
    """Flag the run when the tuned model's mean output tokens per answer exceed the base's by more than this
    factor (wordier answers cost latency and money); null: report only."""


@dataclass
class HarnessConfig:
    """Standard benchmarks through lm-evaluation-harness (`pip install 'ftx[lm-eval]'`) on base and tuned, the
    in-memory models (PEFT adapters included) wrapped in lm-eval's HFLM. Off while `tasks` is empty."""

    tasks: List[str] = field(default_factory=list)
    """lm-eval task (or group) names: ftx_general_qa (shipped, local files), or hellaswag, arc_easy, mmlu, …
    where the Hugging Face hub is reachable. Checked against lm-eval's task index at run start."""
    limit: Optional[int] = 100
    """Examples per task (lm-eval's --limit; CPU-sized); null: every example."""
    batch_size: int = 8
    """lm-eval's batch size (requests per forward)."""
    num_fewshot: Optional[int] = None
    """Few-shot examples per prompt; null: each task's own default."""
    include_path: Optional[str] = None
    """A folder of your own task YAMLs, searched in addition to lm-eval's tasks and ftx's shipped one."""
    seed: int = 0
    """lm-eval's random, numpy, torch and few-shot seeds."""


@dataclass
class PreferenceConfig:
    """Held-out preference pairs (records with a `rejected` reply) under train.objective=dpo or orpo:
    which reply moved, base vs tuned (ftx/eval/preference.py)."""

    max_chosen_rise: Optional[float] = 0.10
    """Flag the run when the tuned model's loss per token on the held-out *chosen* replies rose by more than
    this share over the base (0.10 = +10%): the margin grew by making the replies it should favour less
    likely (likelihood displacement). null: report only."""


@dataclass
class EvalConfig:
    """What is measured after (and before) training."""

    batch_size: int = 8
    """Batch size of the held-out loss passes."""
    base_vs_tuned: bool = True
    """Measure the base model on the same splits before training."""
    max_examples: int = 0
    """Cap on held-out examples per split for loss (0: all)."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig)
    golden: GoldenConfig = field(default_factory=GoldenConfig)
    offdomain: ProbeConfig = field(default_factory=ProbeConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    harness: HarnessConfig = field(default_factory=HarnessConfig)
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    primary: str = "auto"
    """The task metric that judges a run: `<split>_<metric>` (val_contains, val_token_f1, test_exact_match,
    …; metric: exact_match | contains | token_f1 | rouge_l | judge) or auto: val_contains when the
    validation answers are short (median ≤ 5 words), else val_token_f1. Used by objective.metric=auto and
    eval.select.metric=task."""
    significance: float = 0.05
    """Level of the paired base-vs-tuned tests (McNemar / paired bootstrap) that flag task-metric
    regressions and report improvements; also 1 − the confidence of their intervals."""
    precision: EvalPrecision = EvalPrecision.train
    """Evaluation precision: train (bf16 autocast when training used bf16, else fp32) | bf16 | fp32."""
    reproduce_rtol: float = 1e-3
    """`ftx eval RUN_DIR`: relative tolerance within which re-evaluated metrics count as reproduced."""

    def check(self) -> None:
        check_choices(self, "eval", CHOICE_MESSAGES)
        require(self.batch_size > 0, "eval.batch_size", f"must be > 0, got {self.batch_size}")
        require(self.max_examples >= 0, "eval.max_examples", f"must be >= 0, got {self.max_examples}")
        g = self.generation
        for s in g.splits:
            require(s in SPLITS, "eval.generation.splits", f"must name {', '.join(SPLITS)}; got {s!r}")
        require(g.max_examples >= 0, "eval.generation.max_examples", f"must be >= 0, got {g.max_examples}")
        require(g.max_new_tokens > 0, "eval.generation.max_new_tokens", f"must be > 0, got {g.max_new_tokens}")
        require(g.batch_size > 0, "eval.generation.batch_size", f"must be > 0, got {g.batch_size}")
        require(g.temperature > 0, "eval.generation.temperature", f"must be > 0, got {g.temperature}")
        require(0.0 < g.top_p <= 1.0, "eval.generation.top_p", f"must be in (0, 1], got {g.top_p}")
        require(self.forgetting.budget is None or self.forgetting.budget >= 0, "eval.forgetting.budget",
                f"must be >= 0 or null, got {self.forgetting.budget}")
        for key, rate in (("eval.golden.min_pass_rate", self.golden.min_pass_rate),
                          ("eval.offdomain.max_rate", self.offdomain.max_rate)):
            require(rate is None or 0.0 <= rate <= 1.0, key, f"must be in [0, 1] or null, got {rate}")
        require(self.offdomain.loss_margin >= 0, "eval.offdomain.loss_margin",
                f"must be >= 0, got {self.offdomain.loss_margin}")
        j = self.judge
        require(j.kind in ("none", "reference", "lm", "pairwise") or ":" in j.kind, "eval.judge.kind",
                f"must be none, reference, lm, pairwise or package.module:factory; got {j.kind!r}")
        require(j.kind != "pairwise" or self.base_vs_tuned, "eval.judge.kind",
                "=pairwise compares the base with the tuned model and needs eval.base_vs_tuned=true")
        require(0.0 <= j.threshold <= 1.0, "eval.judge.threshold", f"must be in [0, 1], got {j.threshold}")
        require(0.0 < self.significance < 1.0, "eval.significance",
                f"must be in (0, 1) (0.05 = 5% level), got {self.significance}")
        require(self.select.sample > 0, "eval.select.sample", f"must be > 0, got {self.select.sample}")
        if self.primary != "auto":
            split, metric = parse_primary(self.primary)
            require(bool(split), "eval.primary", f"must be auto or <split>_<metric> with split one of "
                    f"{', '.join(SPLITS)} and metric one of {', '.join(TASK_METRICS)}; got {self.primary!r}")
            require(g.enabled and split in g.splits, "eval.primary",
                    f"={self.primary}: split {split!r} is not generated (eval.generation.enabled={str(g.enabled).lower()}, "
                    f"eval.generation.splits=[{', '.join(g.splits)}])")
            require(metric != "judge" or j.kind != "none", "eval.primary",
                    f"={self.primary} needs a judge (eval.judge.kind is none)")
            require(metric != "judge" or j.kind != "pairwise", "eval.primary",
                    f"={self.primary} needs a judge that scores each answer (reference, lm or your own); "
                    "eval.judge.kind=pairwise compares base with tuned (eval.pairwise in metrics.json)")
        require(self.latency.prompts >= 0, "eval.latency.prompts", f"must be >= 0 (0: off), got {self.latency.prompts}")
        require(self.latency.warmup >= 0, "eval.latency.warmup", f"must be >= 0, got {self.latency.warmup}")
        require(self.latency.min_p99_delta_s >= 0, "eval.latency.min_p99_delta_s",
                f"must be >= 0 seconds, got {self.latency.min_p99_delta_s}")
        for key, ratio in (("eval.latency.max_p99_ratio", self.latency.max_p99_ratio),
                           ("eval.tokens.max_ratio", self.tokens.max_ratio)):
            require(ratio is None or ratio > 0, key, f"must be > 0 (a tuned/base ratio: 1.2 = +20%) or null, got {ratio}")
        h = self.harness
        require(len(set(h.tasks)) == len(h.tasks), "eval.harness.tasks", f"names a task twice: {list(h.tasks)}")
        require(all(t.strip() for t in h.tasks), "eval.harness.tasks", f"has an empty task name: {list(h.tasks)}")
        require(h.limit is None or h.limit > 0, "eval.harness.limit", f"must be > 0 or null (every example), got {h.limit}")
        require(h.batch_size > 0, "eval.harness.batch_size", f"must be > 0, got {h.batch_size}")
        require(h.num_fewshot is None or h.num_fewshot >= 0, "eval.harness.num_fewshot",
                f"must be >= 0 or null (the task's default), got {h.num_fewshot}")
        require(self.forgetting.harness_max_drop is None or self.forgetting.harness_max_drop >= 0,
                "eval.forgetting.harness_max_drop", f"must be >= 0 or null, got {self.forgetting.harness_max_drop}")
        rise = self.preference.max_chosen_rise
        require(rise is None or rise >= 0, "eval.preference.max_chosen_rise",
                f"must be >= 0 (a relative rise: 0.10 = +10%) or null, got {rise}")
        require(self.reproduce_rtol >= 0, "eval.reproduce_rtol", f"must be >= 0, got {self.reproduce_rtol}")
