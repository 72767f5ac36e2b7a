"""The `data` group: sources, split, mix, curriculum and formatting, as one typed schema."""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from dataclasses import field as _field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from ftx.errors import require
from ftx.spec.choices import EITHER, Choice, check_choices


class Role(Choice):
    domain = "domain"
    general = "general"
    synthetic = "synthetic"


class SourceKind(Choice):
    auto = "auto"
    chat = "chat"
    prompt_response = "prompt_response"
    text = "text"
    preference = "preference"


class SourceFormat(Choice):
    auto = "auto"
    jsonl = "jsonl"
    json = "json"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"
    arrow = "arrow"
    text = "text"
    hub = "hub"


class DeclaredSplit(Choice):
    auto = "auto"
    train = "train"
    val = "val"
    test = "test"


class OnBadRecord(Choice):
    error = "error"
    skip = "skip"


class BalanceStrategy(Choice):
    none = "none"
    cap = "cap"
    upsample = "upsample"
    class_weights = "class_weights"


class MixUnit(Choice):
    examples = "examples"
    tokens = "tokens"


class OnShort(Choice):
    downsample = "downsample"
    upsample = "upsample"
    error = "error"


class CurriculumStrategy(Choice):
    none = "none"
    score = "score"
    stages = "stages"


class Template(Choice):
    auto = "auto"
    chatml = "chatml"
    llama3 = "llama3"
    plain = "plain"


class Truncation(Choice):
    drop = "drop"
    truncate = "truncate"
    error = "error"


ROLES = tuple(Role.values())
TEMPLATES = tuple(Template.values())
CHOICE_MESSAGES = {"data.sources.*.on_bad_record": EITHER, "data.mix.unit": EITHER}


KINDS = ("paraphrase", "backtranslate")


@dataclass
class AugmentConfig:
    """`ftx augment`: which synthetic records the base model writes (see ftx/data/augment.py)."""

    kinds: List[str] = field(default_factory=lambda: list(KINDS))
    """paraphrase and/or backtranslate."""
    per_record: int = 1
    """Generations per source record and kind (sampled when > 1, greedy when 1)."""
    max_records: Optional[int] = None
    """Augment at most this many source records (null: all domain records)."""
    max_new_tokens: int = 64
    temperature: float = 0.8
    """Sampling temperature when per_record > 1."""
    min_chars: int = 8
    """Generations shorter than this (after cleaning) are counted as empty and not written."""
    require_question: bool = True
    """Keep only generations that end with '?' (small models often answer instead of asking)."""
    seed: int = 0

    def check(self) -> None:
        for k in self.kinds:
            require(k in KINDS, "data.augment.kinds", f"unknown kind {k!r} (valid: {', '.join(KINDS)})")
        require(bool(self.kinds), "data.augment.kinds", "is empty (use paraphrase and/or backtranslate)")
        require(self.per_record >= 1, "data.augment.per_record", f"must be >= 1, got {self.per_record}")
        require(self.max_new_tokens >= 4, "data.augment.max_new_tokens", f"must be >= 4, got {self.max_new_tokens}")
        require(self.temperature > 0, "data.augment.temperature", f"must be > 0, got {self.temperature}")


STRATEGIES = tuple(BalanceStrategy.values())


REFUSAL = (r"\b(i (can ?not|can't|cannot|am (not able|unable) to|won't|will not) (answer|help|provide|assist|do that)"
           r"|i'm (sorry|afraid),? (but )?i (can't|cannot)|as an ai( language model)?)\b")


@dataclass
class BalanceConfig:
    """Class and response-pattern distribution report; rebalancing of the training split."""

    field: Optional[str] = None
    """Record field holding the class (label, category, intent; a list counts its first item); null: no class report."""
    patterns: Dict[str, str] = _field(default_factory=lambda: {"refusal": REFUSAL})
    """Named regexes (case-insensitive) matched against the response (raw text: the whole text)."""
    max_pattern_share: Optional[float] = None
    """Stop with an error when a pattern's share of training responses is above this (null: report only)."""
    strategy: BalanceStrategy = BalanceStrategy.none
    """none | cap | upsample | class_weights (needs `field`)."""
    cap: Optional[int] = None
    """strategy=cap: the most training records any class keeps."""
    target: Optional[int] = None
    """strategy=upsample: records per class after repeating (null: the largest class's count)."""
    seed: int = 0

    def check(self) -> None:
        require(self.strategy == "none" or bool(self.field), "data.balance.field",
                f"is needed by data.balance.strategy={self.strategy} (e.g. label, category, intent)")
        require(self.strategy != "cap" or (self.cap is not None and self.cap > 0), "data.balance.cap",
                f"must be a positive count with strategy=cap, got {self.cap}")
        require(self.target is None or self.target > 0, "data.balance.target", f"must be > 0 or null, got {self.target}")
        require(self.max_pattern_share is None or 0 < self.max_pattern_share <= 1, "data.balance.max_pattern_share",
                f"must be in (0, 1] or null, got {self.max_pattern_share}")
        for name, rx in self.patterns.items():
            try:
                re.compile(rx)
            except re.error as e:
                require(False, f"data.balance.patterns.{name}", f"is not a valid regex ({e})")


@dataclass
class FieldMap:
    """Which JSON fields hold what; a record needs messages, prompt+response, or text."""

    id: Optional[str] = "id"
    prompt: str = "prompt"
    response: str = "response"
    messages: str = "messages"
    text: str = "text"
    chosen: str = "chosen"
    """Preference pairs: the preferred reply (a string, or one assistant message) to `prompt` or `messages`."""
    rejected: str = "rejected"
    """Preference pairs: the dispreferred reply to the same prompt."""
    system: Optional[str] = None
    """Optional per-record system prompt field."""
    weight: Optional[str] = None
    """Optional per-record trust field (a number >= 0) that multiplies the example's loss weight."""
    split: Optional[str] = "split"
    """Optional per-record split field: train | val | validation | test (absent or auto: the content-hash split)."""


@dataclass
class SourceConfig:
    """One input: a file, a folder, a glob or a hub dataset (see docs/data.md#formats)."""

    path: str = MISSING
    """A file (.jsonl, .jsonl.gz, .json, .csv, .tsv, .parquet, .arrow), a `datasets` save_to_disk folder, a folder
    or glob of .txt/.md files (one record per file), or a hub dataset id; `asset:demo/x.jsonl` names a file
    shipped inside ftx. A relative path is resolved against the folder the run starts in."""
    format: SourceFormat = SourceFormat.auto
    """auto (by extension / folder contents) | jsonl | json | csv | tsv | parquet | arrow | text | hub."""
    split: DeclaredSplit = DeclaredSplit.auto
    """auto (the content-hash split, data.split) | train | val | test: the whole source is that split, as given
    (val/test: never trained on; training records that overlap it are dropped, see data.split.decontaminate)."""
    enabled: bool = True
    """false leaves the source out (an A/B switch, e.g. with and without synthetic data)."""
    role: Role = Role.domain
    """domain | general | synthetic — what the mix ratio counts it as."""
    kind: SourceKind = SourceKind.auto
    """auto | chat | prompt_response | text | preference — how records are read (auto: by the fields present;
    a `chosen` or `rejected` field makes a preference pair, docs/feedback.md)."""
    fields: FieldMap = field(default_factory=FieldMap)
    weight: Optional[float] = None
    """Per-example loss weight for this source (null: data.weights.<role>, e.g. synthetic 0.5)."""
    synthetic: bool = False
    """Mark every record of this source as synthetic (kept through curation into training)."""
    max_records: Optional[int] = None
    """Read at most this many records (null: all)."""
    on_bad_record: OnBadRecord = OnBadRecord.error
    """error (stop with file:line) | skip (drop it into the ledger with the reason)."""


@dataclass
class SplitConfig:
    """Early, content-based, leak-free train/val/test split."""

    val: float = 0.15
    """Fraction of domain records held out for validation."""
    test: float = 0.0
    """Fraction held out for the final test (0 = no test split)."""
    seed: int = 0
    """Salt of the content hash that assigns records to splits."""
    decontaminate: bool = True
    """Drop val/test records whose n-grams overlap train (see ngram/overlap)."""
    ngram: int = 8
    """Word n-gram length of the overlap test (13 is GPT-3's choice for long documents; 8 suits Q&A)."""
    overlap: float = 0.5
    """Fraction of a held-out record's n-grams found in train at or above which it is dropped."""
    common_ngram_share: float = 0.1
    """N-grams found in at least this share of the records of both sides (and in 3 of each) are shared
    template wording ("What is the MIME type of files with the extension …"), not a leak: they are left out
    of the overlap count. 0 counts every n-gram (templated questions then overlap each other)."""


@dataclass
class MixConfig:
    """Domain vs general mixing of the training split."""

    domain_ratio: Optional[float] = None
    """Fraction of the final training mix that is domain data, synthetic included (0.8 = 80/20); null: all as is."""
    synthetic_ratio: Optional[float] = None
    """Fraction of the final mix that is synthetic (<= domain_ratio); null: synthetic counts as domain."""
    unit: MixUnit = MixUnit.examples
    """examples | tokens — what the ratios count (tokens: whole formatted sequences)."""
    on_short: OnShort = OnShort.downsample
    """When a side runs short: downsample (shrink the others) | upsample (repeat the short side) | error."""
    seed: int = 0
    """Seed of the sampling (and of the shuffle inside curriculum stages)."""


@dataclass
class CurriculumConfig:
    """Training order; off by default (shuffled)."""

    strategy: CurriculumStrategy = CurriculumStrategy.none
    """none (shuffled every epoch) | score (sorted by a score) | stages (score bands, shuffled within)."""
    score: str = "relevance"
    """Which score orders the data: a key of the records' curation `scores` (relevance, quality…) or length."""
    descending: bool = True
    """Highest score first (for length: longest first)."""
    stages: List[float] = field(default_factory=lambda: [0.5])
    """For strategy=stages: score quantiles that cut the stages, e.g. [0.5] = top half first, then the rest."""


@dataclass
class FormatConfig:
    """Turning records into token sequences."""

    template: Template = Template.auto
    """auto (the tokenizer's chat template) | chatml | llama3 | plain (named templates)."""
    system_prompt: Optional[str] = None
    """Injected into every example that has none (helps below ~100 examples)."""
    prompt_loss_weight: float = 0.0
    """0 masks the prompt out of the loss, 1 trains on it fully; in between regularises."""
    max_length: int = 512
    """Maximum tokens per example."""
    truncation: Truncation = Truncation.drop
    """drop (skip over-long examples, counted) | truncate (cut the response's end, counted; a prompt that
    does not fit is an error) | error (stop at the first over-long example)."""
    packing: Optional[bool] = None
    """Pack several training examples per sequence (position ids restart per example, so no attention
    crosses example boundaries; loss weights and prompt masking are kept); validation stays unpacked.
    null (auto): on, except with model.trust_remote_code (a model's own code may ignore the restarted
    position ids); build_spec resolves it, so config.yaml shows true or false."""
    pack_length: Optional[int] = None
    """Length of packed sequences (null: max_length)."""
    raw_text: bool = False
    """Train on every record as plain text (chat turns joined by newlines) with next-token loss on all
    of it: continued pre-training. Set by train.objective=cpt."""


@dataclass
class WeightsConfig:
    """Per-example loss weights by role (trust); a source's own `weight` overrides its role's."""

    domain: float = 1.0
    general: float = 1.0
    synthetic: float = 0.5
    """Also used for records flagged synthetic inside a domain or general source."""


@dataclass
class DataConfig:
    """All data for one run."""

    name: str = "custom"
    sources: Dict[str, Any] = field(default_factory=dict, metadata={"items": SourceConfig})
    """name → SourceConfig. Typed as Any while composing so `+data.sources.NAME.path=…` can add a source
    from the command line (OmegaConf 2.3 cannot add an entry to a Dict[str, dataclass]); build_spec
    validates each entry into a SourceConfig (`items`), with the same one-line errors."""
    split: SplitConfig = field(default_factory=SplitConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    format: FormatConfig = field(default_factory=FormatConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """What `ftx augment` generates with the base model (ftx/data/augment.py)."""
    """Class / response-pattern report and rebalancing of the training split (ftx/data/balance.py)."""
    general_eval_fraction: float = 0.2
    """Share of general records held out to measure forgetting (general-capability loss)."""

    def roles(self) -> set:
        return {s.role for s in self.sources.values() if s.enabled}

    def check(self) -> None:
        check_choices(self, "data", CHOICE_MESSAGES)
        require(bool(self.sources), "data.sources", "no sources configured (add data.sources.<name>.path=…)")
        for name, src in self.sources.items():
            key = f"data.sources.{name}"
            require(src.weight is None or src.weight >= 0, f"{key}.weight", f"must be >= 0 (or null), got {src.weight}")
            require(src.max_records is None or src.max_records > 0, f"{key}.max_records",
                    f"must be > 0 (or null for all), got {src.max_records}")
        roles = self.roles()
        require("domain" in roles, "data.sources", "needs at least one source with role=domain")
        for role in ROLES:
            w = getattr(self.weights, role)
            require(w >= 0, f"data.weights.{role}", f"must be >= 0, got {w}")
        s = self.split
        require(0.0 < s.val < 1.0, "data.split.val", f"must be in (0, 1), got {s.val}")
        require(0.0 <= s.test < 1.0, "data.split.test", f"must be in [0, 1), got {s.test}")
        require(s.val + s.test < 1.0, "data.split", f"val + test must be < 1, got {s.val + s.test}")
        require(0.0 < s.overlap <= 1.0, "data.split.overlap", f"must be in (0, 1], got {s.overlap}")
        require(s.ngram >= 1, "data.split.ngram", f"must be >= 1, got {s.ngram}")
        require(0.0 <= s.common_ngram_share <= 1.0, "data.split.common_ngram_share",
                f"must be in [0, 1] (0: count every n-gram), got {s.common_ngram_share}")
        self._check_mix(roles)
        self.balance.check()
        self.augment.check()
        c = self.curriculum
        if c.strategy == "stages":
            require(bool(c.stages) and all(0.0 < q < 1.0 for q in c.stages) and list(c.stages) == sorted(set(c.stages)),
                    "data.curriculum.stages", f"must be increasing quantiles in (0, 1), e.g. [0.5]; got {list(c.stages)}")
        f = self.format
        require(0.0 <= f.prompt_loss_weight <= 1.0, "data.format.prompt_loss_weight",
                f"must be in [0, 1] (0 masks the prompt), got {f.prompt_loss_weight}")
        require(f.max_length >= 16, "data.format.max_length", f"must be >= 16, got {f.max_length}")
        require(f.pack_length is None or f.pack_length >= f.max_length, "data.format.pack_length",
                f"must be >= data.format.max_length={f.max_length} (or null), got {f.pack_length}")
        require(0.0 <= self.general_eval_fraction < 1.0, "data.general_eval_fraction",
                f"must be in [0, 1), got {self.general_eval_fraction}")

    def _check_mix(self, roles: set) -> None:
        m = self.mix
        if m.domain_ratio is not None:
            r = m.domain_ratio
            require(0.0 <= r <= 1.0, "data.mix.domain_ratio", f"must be in [0, 1] (0.8 = 80% domain), got {r}")
            require(r == 1.0 or "general" in roles, "data.mix.domain_ratio",
                    f"={r} puts {1 - r:g} of the mix on role=general, but no source has role=general "
                    "(add one, or set domain_ratio=1.0 or null)")
        if m.synthetic_ratio is not None:
            s = m.synthetic_ratio
            require(0.0 <= s <= 1.0, "data.mix.synthetic_ratio", f"must be in [0, 1], got {s}")
            require(m.domain_ratio is not None, "data.mix.synthetic_ratio",
                    "needs data.mix.domain_ratio (synthetic data is part of the domain share)")
            require(s <= m.domain_ratio, "data.mix.synthetic_ratio",
                    f"={s} must be <= data.mix.domain_ratio={m.domain_ratio} (it is part of the domain share)")
            require(s == 0.0 or "synthetic" in roles, "data.mix.synthetic_ratio",
                    f"={s} but no source has role=synthetic (add one, or set synthetic_ratio=null)")
