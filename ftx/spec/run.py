"""RunSpec: every group's schema composed into one typed, validated, hashable run spec.

Hydra composes conf/ into a DictConfig; `build_spec` merges it onto the typed schema, so a typo'd
key, a `+`-added key no schema knows, or a wrong type fails here with one line that names the full
key and what is valid. Each group's schema lives beside the code it configures.
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from ftx.errors import ConfigError, require
from ftx.secrets import check_config_values
from ftx.spec import curation as _curation
from ftx.spec import data as _data
from ftx.spec import eval as _eval
from ftx.spec import quant as _quant
from ftx.spec import tracking as _tracking
from ftx.spec import train as _train
from ftx.spec.choices import EITHER, ONE_OF, Choice, choice_message
from ftx.spec.cpt import resolve
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig
from ftx.spec.eval import EvalConfig
from ftx.spec.lora import LoraConfig
from ftx.spec.model import ModelConfig
from ftx.spec.optimizer import OptimizerConfig
from ftx.spec.quant import QuantConfig
from ftx.spec.tracking import TrackingConfig
from ftx.spec.train import TrainConfig
from ftx.spec.zero import ZeroConfig


class Direction(Choice):
    auto = "auto"
    minimize = "minimize"
    maximize = "maximize"


class OnRegression(Choice):
    fail = "fail"
    penalize = "penalize"
    ignore = "ignore"


CHOICE_MESSAGES = {"objective.direction": EITHER, **_curation.CHOICE_MESSAGES, **_data.CHOICE_MESSAGES,
                   **_eval.CHOICE_MESSAGES, **_quant.CHOICE_MESSAGES, **_tracking.CHOICE_MESSAGES,
                   **_train.CHOICE_MESSAGES}
"""Fixed-choice fields not phrased 'must be one of a, b, c; got 'x'' (full key, `*` for a dict entry's name)."""


@dataclass
class ObjectiveConfig:
    """What a run returns to a sweeper."""

    metric: str = "auto"
    """Path into metrics.json (tuned/val_contains, tuned/val_loss, delta/val_loss, …) or auto: the task
    metric tuned/<eval.primary> (maximised, tuned/val_loss as tie-breaker) when the validation records
    carry accepted answers and are generated, else tuned/val_loss. The resolved metric is recorded in
    metrics.json `objective`."""
    direction: Direction = Direction.auto
    """auto (follows the metric: losses, perplexities, seconds and costs are minimised, generation
    metrics maximised) | minimize | maximize."""
    on_regression: OnRegression = OnRegression.fail
    """What a sweep is told about a flagged run (a significant task-metric regression, forgetting, golden
    or off-domain flags): fail (the trial is FAILED with the flags as its error; not counted against
    hydra.sweeper.max_failures) | penalize (the objective is pushed past every unflagged value:
    ±(|value| + 1)) | ignore."""


MINIMIZED = ("_loss", "_ppl", "seconds", "device_hours", "estimated_cost", "offdomain_confidence", "rate")


def metric_direction(metric: str) -> str:
    """The direction a metrics.json path is optimised in when objective.direction=auto."""
    last = metric.rsplit("/", 1)[-1]
    if last == "golden_pass_rate" or last.endswith("judge_pass"):
        return "maximize"
    if last.startswith(_eval.OPS_PREFIX):  # latency, time to first token, output tokens: less is better
        return "maximize" if last.endswith("tokens_per_s") else "minimize"
    if last.startswith("harness_") and last.endswith(("perplexity", "bits_per_byte")):  # lm-eval's loglikelihood_rolling
        return "minimize"
    return "minimize" if last.endswith(MINIMIZED) or last == "loss" else "maximize"


def produced_metrics(ev) -> list[str]:
    """The flat keys evaluation writes under base/tuned/delta for this eval config."""
    out = [f"{s}_{k}" for s in _eval.SPLITS for k in ("loss", "ppl")]
    gen = ("exact_match", "contains", "token_f1", "rouge_l", "bleu")
    judge = ("judge", "judge_pass") if ev.judge.kind != "none" else ()
    if ev.generation.enabled:
        out += [f"{s}_{k}" for s in ev.generation.splits for k in gen + judge]
    if ev.golden.path not in (None, "", "null"):
        out += ["golden_passed", "golden_pass_rate", *(f"golden_{k}" for k in judge)]
    if ev.offdomain.path not in (None, "", "null"):
        out += [f"offdomain_{k}" for k in ("loss", "ppl", "confidence", "accuracy")]
    if ev.latency.prompts and (ev.generation.enabled or ev.golden.path not in (None, "", "null")):
        out += list(_eval.OPS_METRICS)
    return out


PREFERENCE_METRICS = ("val_pref_accuracy", "val_pref_margin", "test_pref_accuracy", "test_pref_margin")
"""Measured on held-out preference pairs (ftx/eval/preference.py): accepted as objectives under train.objective=dpo."""


@dataclass
class RunSpec:
    """One run, fully specified."""

    name: str = "ftx"
    """Run name (part of the run directory name)."""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    zero: ZeroConfig = field(default_factory=ZeroConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sweep: Dict[str, Any] = field(default_factory=dict)
    """Set by the sweeper for its jobs (trial number, study, storage); empty otherwise. (A None default
    would reject the sweeper's `++sweep.trial=N` overrides: OmegaConf cannot merge into a None node.)"""

    def check(self) -> None:
        for f in fields(self):
            group = getattr(self, f.name)
            if hasattr(group, "check"):
                group.check()
        for rule in RULES:
            rule(self)


# Cross-group rules: each one a function of the whole spec, run by RunSpec.check after every group's own check.

def rule_quantised_weights_cannot_train_in_full(spec: RunSpec) -> None:
    require(not (spec.quant.enabled and spec.lora.method == "full"), "quant.mode",
            f"={spec.quant.mode} cannot train with lora.method=full (quantised weights are frozen); "
            "use quant=none or a LoRA method")


def rule_mixout_needs_unpartitioned_weights(spec: RunSpec) -> None:
    require(not (spec.optimizer.mixout and spec.zero.stage == 3), "optimizer.mixout",
            "cannot mix ZeRO-3's partitioned weights; use zero.stage<=2 or optimizer.mixout=0")


def rule_embedded_gguf_needs_no_remote_code(spec: RunSpec) -> None:
    require(not (spec.model.source == "gguf_package" and spec.model.trust_remote_code), "model.trust_remote_code",
            "is not needed for the embedded GGUF model; leave it false")


def rule_objective_is_measured(spec: RunSpec) -> None:
    """An objective on base/tuned/delta must name a metric this eval config produces (other paths, such as
    train/seconds or cost/device_hours, are checked when the run ends)."""
    metric, ev = spec.objective.metric, spec.eval
    side, _, key = metric.partition("/")
    if metric == "auto" or side not in ("base", "tuned", "delta"):
        return
    require(side == "tuned" or ev.base_vs_tuned, "objective.metric",
            f"{metric!r} needs the base model measured (eval.base_vs_tuned=false); use tuned/{key}")
    if key in produced_metrics(ev) or (spec.train.preference() and key in PREFERENCE_METRICS):
        return
    if any(key.startswith(f"harness_{t}_") for t in ev.harness.tasks):  # lm-eval names the metrics at run time
        return
    split = next((s for s in sorted(_eval.SPLITS, key=len, reverse=True) if key.startswith(s + "_")), "")
    why = ""
    if split and key[len(split) + 1:] in ("exact_match", "contains", "token_f1", "rouge_l", "bleu", "judge",
                                          "judge_pass"):
        why = (" (eval.generation.enabled=false)" if not ev.generation.enabled else
               f" (judge off: eval.judge.kind=none)" if "judge" in key and ev.judge.kind == "none" else
               f" (eval.generation.splits=[{', '.join(ev.generation.splits)}])")
    elif key.startswith("golden_"):
        why = " (no golden set: eval.golden.path is null)"
    elif key.startswith("offdomain_"):
        why = " (no off-domain probe: eval.offdomain.path is null)"
    produced = [k for k in produced_metrics(ev) if not k.endswith("_ppl")]
    raise ConfigError(f"objective.metric: {metric!r} is not produced by this eval config{why}; "
                      f"{side}/ takes: {', '.join(produced)}")


def rule_task_selection_needs_generation(spec: RunSpec) -> None:
    g = spec.eval.generation
    require(spec.eval.select.metric != "task" or (g.enabled and "val" in g.splits), "eval.select.metric",
            "=task (early stopping and train.keep_best by eval.primary, generated on validation prompts) needs "
            f"generation on val (eval.generation.enabled={str(g.enabled).lower()}, eval.generation.splits="
            f"[{', '.join(g.splits)}]); use eval.select.metric=loss or enable generation on val")


def rule_dpo_trains_on_whole_pairs(spec: RunSpec) -> None:
    """DPO and ORPO compare two whole replies to one prompt: no packing, raw text, mix ratio, curriculum or LLRD
    groups."""
    if not spec.train.preference():
        return
    objective = spec.train.objective
    d = spec.data
    for ok, key, why in ((not d.format.packing, "data.format.packing", "packing joins examples into rows"),
                         (not d.format.raw_text, "data.format.raw_text", "raw text has no replies to compare"),
                         (d.mix.domain_ratio is None, "data.mix.domain_ratio",
                          f"a mix ratio draws SFT examples; {str(objective).upper()} trains on every pair once per epoch"),
                         (d.curriculum.strategy == "none", "data.curriculum.strategy",
                          "TRL's trainer shuffles pairs; a curriculum order would be lost"),
                         (spec.optimizer.llrd is None, "optimizer.llrd",
                          "layer-wise learning rates are built for ftx's SFT trainer only")):
        require(ok, key, f"cannot be used with train.objective={objective} ({why}); leave it at its default "
                "(docs/feedback.md, Preference tuning)")


RULES = (rule_quantised_weights_cannot_train_in_full, rule_mixout_needs_unpartitioned_weights,
         rule_embedded_gguf_needs_no_remote_code, rule_objective_is_measured, rule_task_selection_needs_generation,
         rule_dpo_trains_on_whole_pairs)


def _schema_fields(cls: Any) -> dict:
    """name → (type, the dataclass the field holds or maps names to, whether it is a dict).

    A `Dict[str, Any]` field names its entries' dataclass in `metadata={"items": X}` (data.sources):
    typed as Any while composing, validated into X by build_spec."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        tp = hints[f.name]
        out[f.name] = (tp, f.metadata.get("items") or _dataclass_of(tp), typing.get_origin(tp) in (dict, typing.Dict))
    return out


def _valid_keys(full_key: str) -> list[str]:
    parent = full_key.split(".")[:-1]
    cls, i = RunSpec, 0
    while i < len(parent):
        known = _schema_fields(cls)
        if parent[i] not in known:
            return []
        _, cls, is_dict = known[parent[i]]
        i += 1
        if is_dict:
            if i == len(parent):
                return []  # the dict itself: any entry name is valid
            i += 1  # the entry's name
        if cls is None:
            return []
    return [f.name for f in fields(cls)]


def unknown_key_message(key: str) -> str:
    valid = _valid_keys(key)
    parent = key.rsplit(".", 1)[0] if "." in key else "the top level"
    return f"unknown key '{key}'" + (f" (valid keys of {parent}: {', '.join(valid)})" if valid else "")


def field_type(full_key: str) -> tuple[Any, str]:
    """The schema type of `full_key` and its pattern (a Dict entry's name as `*`); (None, key) if unknown."""
    cls, tp, pattern = RunSpec, None, []
    parts = full_key.split(".")
    i = 0
    while i < len(parts):
        known = _schema_fields(cls) if cls is not None and is_dataclass(cls) else {}
        if parts[i] not in known:
            return None, full_key
        tp, cls, is_dict = known[parts[i]]
        pattern.append(parts[i])
        i += 1
        if is_dict and i < len(parts):
            pattern.append("*")  # the entry's name
            i += 1
    return tp, ".".join(pattern)


def choice_error(e: ValidationError) -> Optional[str]:
    """The group's own message for a value outside a fixed-choice (Choice enum) field, else None."""
    key = getattr(e, "full_key", None)
    if not key or not str(e).startswith("Invalid value"):
        return None
    tp, pattern = field_type(key)
    if not (isinstance(tp, type) and issubclass(tp, Choice)):
        return None
    return f"{key}: {choice_message(CHOICE_MESSAGES.get(pattern, ONE_OF), tp.values(), getattr(e, 'value', None))}"


def explain(e: OmegaConfBaseException) -> str:
    """One line from an OmegaConf error: the full key, what went wrong, what is valid."""
    key = getattr(e, "full_key", None) or "?"
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ConfigKeyError) or "not in" in msg:
        return unknown_key_message(key)
    if isinstance(e, MissingMandatoryValue):
        return f"'{key}' is required but not set"
    if isinstance(e, ValidationError):
        return choice_error(e) or f"'{key}': {msg}"
    return f"'{key}': {msg}"


def _dataclass_of(tp: Any) -> Any:
    """The dataclass a field holds directly, or as the values of a Dict[str, X] / Optional[X]."""
    if is_dataclass(tp):
        return tp
    for arg in reversed(typing.get_args(tp)):
        if is_dataclass(arg):
            return arg
    return None


def unknown_key(node: Any, cls: Any, prefix: str = "") -> Optional[str]:
    """The first key in `node` that the schema `cls` does not declare (Hydra lets `+`/`++` add them)."""
    if not isinstance(node, dict):
        return None
    known = _schema_fields(cls)
    for key, value in node.items():
        full = f"{prefix}{key}"
        if key not in known:
            return full
        _, sub, is_dict = known[key]
        if sub is None:
            continue
        if is_dict and isinstance(value, dict):
            for name, item in value.items():
                found = unknown_key(item, sub, f"{full}.{name}.")
                if found:
                    return found
        else:
            found = unknown_key(value, sub, f"{full}.")
            if found:
                return found
    return None


_SCHEMA: list = []


def _schema() -> DictConfig:
    """OmegaConf's structured RunSpec, built once (it is half of build_spec's time; a sweep check calls
    build_spec once per swept value)."""
    if not _SCHEMA:
        _SCHEMA.append(OmegaConf.structured(RunSpec))
    return _SCHEMA[0]


def typed_entries(merged: DictConfig) -> dict:
    """Each `Dict[str, Any]` field with `items` metadata (data.sources), validated into its dataclass.

    Merged inside a copy of the path from the root, so an error's full key reads data.sources.NAME.KEY."""
    out = {}
    for group, f_name in (("data", "sources"),):
        items = {f.name: f for f in fields(DataConfig)}[f_name].metadata["items"]
        entries = OmegaConf.to_container(merged[group][f_name], resolve=True)
        typed = OmegaConf.create({group: {f_name: {n: OmegaConf.structured(items) for n in entries}}})
        typed = OmegaConf.merge(typed, {group: {f_name: entries}})
        out[(group, f_name)] = OmegaConf.to_object(typed)[group][f_name]
    return out


def build_spec(cfg: DictConfig) -> RunSpec:
    """Validate a composed config: schema (keys, types) first, then cross-field rules."""
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]) if "hydra" in cfg else cfg
    raw = OmegaConf.to_container(cfg, resolve=False)
    check_config_values(raw)  # a token in a user's YAML file: refused, key named, value never printed
    extra = unknown_key(raw, RunSpec)
    if extra:
        raise ConfigError(unknown_key_message(extra))
    try:
        merged = OmegaConf.merge(_schema(), cfg)  # merge copies its first argument: the template stays clean
        entries = typed_entries(merged)
        spec = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(explain(e)) from None
    for (group, f_name), value in entries.items():
        setattr(getattr(spec, group), f_name, value)
    spec.check()

    resolve(spec)  # train.objective=cpt → data-plan settings, visible in config.yaml and the hash
    resolve_packing(spec)
    return spec


def resolve_packing(spec: RunSpec) -> None:
    """data.format.packing=null (auto) → true, unless the model runs its own code (model.trust_remote_code):
    packing relies on transformers deriving per-example attention from position ids that restart at 0
    (masking_utils for eager/sdpa, the varlen path for flash-attention), which custom modelling code need
    not do; and off for train.objective=dpo, which compares whole replies (rule_dpo_trains_on_whole_pairs).
    Resolved here so config.yaml, the hash and `ftx spec` show what runs."""
    f = spec.data.format
    if f.packing is None:
        f.packing = not spec.model.trust_remote_code and not spec.train.preference()


def as_dict(spec: RunSpec) -> dict:
    """The fully resolved run spec, every default filled in, as plain data."""
    return OmegaConf.to_container(OmegaConf.structured(spec), resolve=True, enum_to_str=True)


BOOKKEEPING = ("tracking", "sweep")
"""Where metrics go and the sweeper's trial bookkeeping: never part of what a run computes."""
TOOL_ONLY = ("data.augment", "eval.reproduce_rtol")
"""Settings only a separate tool reads (`ftx augment`, `ftx eval --check`), never training or evaluation."""
NOT_HASHED = BOOKKEEPING + TOOL_ONLY
"""Dotted keys (a key and everything under it) left out of spec_hash and of the resume check."""


def is_not_hashed(key: str) -> bool:
    """Whether a dotted key (e.g. `data.augment.per_record`) falls under NOT_HASHED."""
    return any(key == k or key.startswith(k + ".") for k in NOT_HASHED)


def _without(d: dict, prefix: str = "") -> dict:
    return {k: _without(v, f"{prefix}{k}.") if isinstance(v, dict) else v
            for k, v in d.items() if not is_not_hashed(f"{prefix}{k}")}


def spec_hash(resolved: dict) -> str:
    """Hash of what determines the result: everything except NOT_HASHED (bookkeeping, tool-only settings)."""
    material = _without(resolved)
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def register() -> None:
    """Put the schema under conf/config.yaml's defaults (`- ftx_schema`), so every key exists and is typed
    while Hydra composes: overriding a default without `+` works and a bad type fails early."""
    from hydra.core.config_store import ConfigStore

    node = OmegaConf.structured(RunSpec)
    # Sources are added by name from the command line (`data.sources.mine.path=faq.csv`, with or without
    # `+`): their dict is not struct while composing; build_spec checks every key of every entry.
    OmegaConf.set_struct(node.data.sources, False)
    ConfigStore.instance().store(name="ftx_schema", node=node)


register()
