"""Balance: the distribution of a class field (label / category / intent) and of response patterns
such as refusals, and optional rebalancing of the training split.

A model learns the base rates of its training data: if "I cannot answer that" is a fifth of the
responses, it learns to refuse a fifth of the time. The report (data/stats.json → `balance`) shows
each split's class counts and each pattern's share; `strategy` rebalances the training split only
(held-out splits keep the real distribution, so validation measures the real task):

  cap            at most `cap` training records per class; the rest go to the ledger (stage balance)
  upsample       repeat records of smaller classes up to `target` (null: the largest class)
  class_weights  multiply each record's loss weight by scikit-learn's "balanced" class weight
                 n / (k · n_class), so every class carries the same total weight
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Dict, Optional

from ftx.data.ledger import Ledger
from ftx.errors import DataError, require

STRATEGIES = ("none", "cap", "upsample", "class_weights")
MISSING = "(none)"
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
    strategy: str = "none"
    """none | cap | upsample | class_weights (needs `field`)."""
    cap: Optional[int] = None
    """strategy=cap: the most training records any class keeps."""
    target: Optional[int] = None
    """strategy=upsample: records per class after repeating (null: the largest class's count)."""
    seed: int = 0

    def check(self) -> None:
        require(self.strategy in STRATEGIES, "data.balance.strategy",
                f"must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}")
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


def class_of(rec: dict, key: str) -> str:
    v = rec.get(key)
    if isinstance(v, list):
        v = v[0] if v else None
    if isinstance(v, dict):  # annotator → label
        v = next(iter(v.values()), None)
    return MISSING if v is None or v == "" else str(v)


def response(rec: dict) -> str:
    msgs = rec.get("messages")
    if msgs:
        return next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), "")
    return rec.get("text") or ""


def distribution(records: list[dict], cfg: BalanceConfig) -> dict:
    n = len(records)
    out: dict = {"records": n}
    if cfg.field:
        counts = Counter(class_of(r, cfg.field) for r in records)
        out["classes"] = dict(counts.most_common())
        out["class_share"] = {k: round(v / n, 4) for k, v in out["classes"].items()} if n else {}
        out["imbalance_ratio"] = round(max(counts.values()) / min(counts.values()), 3) if counts else None
    compiled = {k: re.compile(rx, re.IGNORECASE) for k, rx in cfg.patterns.items()}
    hits = {k: sum(1 for r in records if rx.search(response(r))) for k, rx in compiled.items()}
    out["patterns"] = {k: {"records": h, "share": round(h / n, 4) if n else 0.0} for k, h in hits.items()}
    return out


def rebalance(train: list[dict], cfg: BalanceConfig, ledger: Optional[Ledger] = None) -> list[dict]:
    if cfg.strategy == "none":
        return train
    by_class: dict = defaultdict(list)
    for r in train:
        by_class[class_of(r, cfg.field)].append(r)
    rng = random.Random(cfg.seed)
    if ledger is not None:
        ledger.record_in("balance", len(train))
    if cfg.strategy == "class_weights":
        import numpy as np
        from sklearn.utils.class_weight import compute_class_weight

        classes = np.array(sorted(by_class))
        w = dict(zip(classes, compute_class_weight("balanced", classes=classes,
                                                   y=[class_of(r, cfg.field) for r in train])))
        out = [dict(r, weight=float(r.get("weight") if r.get("weight") is not None else 1.0) * float(w[class_of(r, cfg.field)]))
               for r in train]
    elif cfg.strategy == "cap":
        out = []
        for c, recs in by_class.items():
            order = list(recs)
            rng.shuffle(order)
            out += order[:cfg.cap]
            for r in order[cfg.cap:]:
                if ledger is not None:
                    ledger.drop("balance", "class_cap", r, detail=f"{cfg.field}={c} over data.balance.cap={cfg.cap}")
    else:  # upsample: every record once, then random repeats of the smaller classes
        target = cfg.target or max(len(v) for v in by_class.values())
        out = []
        for c, recs in by_class.items():
            out += recs
            order = list(recs)
            rng.shuffle(order)
            for i in range(max(0, target - len(recs))):
                r = order[i % len(order)]
                out.append(dict(r, id=f"{r['id']}#bal{i // len(order) + 1}"))
    if ledger is not None:  # upsampled copies are additions, not ledger inputs
        ledger.keep("balance", len(train) - (len(train) - len(out) if cfg.strategy == "cap" else 0))
    order = list(out)
    random.Random(cfg.seed).shuffle(order)
    return order


def apply(parts: dict, cfg: BalanceConfig, ledger: Optional[Ledger] = None) -> dict:
    """Rebalance parts["train"] in place; the report of every split (train before and after)."""
    report = {"field": cfg.field, "strategy": cfg.strategy,
              "splits": {k: distribution(v, cfg) for k, v in parts.items() if v}}
    parts["train"] = rebalance(parts["train"], cfg, ledger)
    report["train_after"] = distribution(parts["train"], cfg)
    if cfg.max_pattern_share is not None:
        for name, p in report["splits"].get("train", {}).get("patterns", {}).items():
            if p["share"] > cfg.max_pattern_share:
                raise DataError(f"data.balance.max_pattern_share={cfg.max_pattern_share}: pattern {name!r} matches "
                                f"{p['share']:.1%} of training responses ({p['records']}); remove or down-weight them, "
                                "or raise the limit")
    return report
