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
from typing import Optional

from ftx.data.ledger import Ledger
from ftx.errors import DataError
from ftx.spec.data import BalanceConfig

MISSING = "(none)"


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
