"""The `data` group: sources, split, mix, curriculum and formatting, as one typed schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

from ftx.errors import require

ROLES = ("domain", "general", "synthetic")


@dataclass
class FieldMap:
    """Which JSON fields hold what; a record needs messages, prompt+response, or text."""

    id: Optional[str] = "id"
    prompt: str = "prompt"
    response: str = "response"
    messages: str = "messages"
    text: str = "text"
    system: Optional[str] = None
    """Optional per-record system prompt field."""


@dataclass
class SourceConfig:
    """One input file."""

    path: str = MISSING
    """A .jsonl file; `asset:demo/x.jsonl` names a file shipped inside ftx."""
    role: str = "domain"
    """domain | general | synthetic — what the mix ratio counts it as."""
    kind: str = "auto"
    """auto | chat | prompt_response | text — how records are read (auto: by the fields present)."""
    fields: FieldMap = field(default_factory=FieldMap)
    weight: float = 1.0
    """Per-example loss weight for this source (e.g. synthetic 0.5, gold 1.0)."""
    synthetic: bool = False
    """Mark every record of this source as synthetic (kept through curation into training)."""
    max_records: Optional[int] = None
    """Read at most this many records (null: all)."""
    on_bad_record: str = "error"
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
    overlap: float = 0.5
    """Fraction of a held-out record's n-grams found in train above which it is dropped."""


@dataclass
class MixConfig:
    """Domain vs general mixing of the training split."""

    domain_ratio: Optional[float] = None
    """Fraction of the final training mix that is domain data (0.8 = 80/20); null: use all data as is."""
    unit: str = "examples"
    """examples | tokens — what the ratio counts."""
    on_short: str = "downsample"
    """When a side runs short: downsample (shrink the other side) | upsample (repeat the short side) | error."""
    seed: int = 0


@dataclass
class CurriculumConfig:
    """Training order; off by default (shuffled)."""

    strategy: str = "none"
    """none | score (ascending/descending by a curation score) | stages (high-relevance first)."""
    score: str = "relevance"
    """Which record score orders the data (relevance from curation, or length)."""
    descending: bool = True
    stages: List[float] = field(default_factory=lambda: [0.5])
    """For strategy=stages: score quantile boundaries, highest stage first."""


@dataclass
class FormatConfig:
    """Turning records into token sequences."""

    template: str = "auto"
    """auto (the tokenizer's chat template) | chatml."""
    system_prompt: Optional[str] = None
    """Injected into every example that has none (helps below ~100 examples)."""
    prompt_loss_weight: float = 0.0
    """0 masks the prompt out of the loss, 1 trains on it fully; in between regularises."""
    max_length: int = 512
    """Maximum tokens per example."""
    truncation: str = "drop"
    """drop (skip over-long examples, counted) | truncate (cut the response's end, counted) | error."""
    packing: bool = False
    """Pack several examples per sequence (no attention across example boundaries)."""
    pack_length: Optional[int] = None
    """Length of packed sequences (null: max_length)."""


@dataclass
class DataConfig:
    """All data for one run."""

    name: str = "custom"
    sources: Dict[str, SourceConfig] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    format: FormatConfig = field(default_factory=FormatConfig)
    general_eval_fraction: float = 0.2
    """Share of general records held out to measure forgetting (general-capability loss)."""

    def check(self) -> None:
        require(bool(self.sources), "data.sources", "no sources configured (add data.sources.<name>.path=…)")
        for name, src in self.sources.items():
            key = f"data.sources.{name}"
            require(src.role in ROLES, f"{key}.role", f"must be one of {', '.join(ROLES)}; got {src.role!r}")
            require(src.kind in ("auto", "chat", "prompt_response", "text"), f"{key}.kind",
                    f"must be one of auto, chat, prompt_response, text; got {src.kind!r}")
            require(src.weight >= 0, f"{key}.weight", f"must be >= 0, got {src.weight}")
            require(src.on_bad_record in ("error", "skip"), f"{key}.on_bad_record",
                    f"must be error or skip; got {src.on_bad_record!r}")
        require(any(s.role == "domain" for s in self.sources.values()), "data.sources",
                "needs at least one source with role=domain")
        s = self.split
        require(0.0 < s.val < 1.0, "data.split.val", f"must be in (0, 1), got {s.val}")
        require(0.0 <= s.test < 1.0, "data.split.test", f"must be in [0, 1), got {s.test}")
        require(s.val + s.test < 1.0, "data.split", f"val + test must be < 1, got {s.val + s.test}")
        require(0.0 < s.overlap <= 1.0, "data.split.overlap", f"must be in (0, 1], got {s.overlap}")
        m = self.mix
        if m.domain_ratio is not None:
            require(0.0 <= m.domain_ratio <= 1.0, "data.mix.domain_ratio", f"must be in [0, 1], got {m.domain_ratio}")
            if m.domain_ratio < 1.0:
                require(any(x.role == "general" for x in self.sources.values()), "data.mix.domain_ratio",
                        f"={m.domain_ratio} needs a source with role=general (none configured)")
        require(m.unit in ("examples", "tokens"), "data.mix.unit", f"must be examples or tokens; got {m.unit!r}")
        require(m.on_short in ("downsample", "upsample", "error"), "data.mix.on_short",
                f"must be one of downsample, upsample, error; got {m.on_short!r}")
        c = self.curriculum
        require(c.strategy in ("none", "score", "stages"), "data.curriculum.strategy",
                f"must be one of none, score, stages; got {c.strategy!r}")
        f = self.format
        require(f.template in ("auto", "chatml"), "data.format.template", f"must be auto or chatml; got {f.template!r}")
        require(0.0 <= f.prompt_loss_weight <= 1.0, "data.format.prompt_loss_weight",
                f"must be in [0, 1], got {f.prompt_loss_weight}")
        require(f.max_length >= 16, "data.format.max_length", f"must be >= 16, got {f.max_length}")
        require(f.truncation in ("drop", "truncate", "error"), "data.format.truncation",
                f"must be one of drop, truncate, error; got {f.truncation!r}")
        require(0.0 <= self.general_eval_fraction < 1.0, "data.general_eval_fraction",
                f"must be in [0, 1), got {self.general_eval_fraction}")
