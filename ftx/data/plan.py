"""The data plan: early content-based split, then the domain/general mix of the training split."""

from __future__ import annotations

import hashlib
import random
from typing import Optional

from ftx.data.config import DataConfig
from ftx.data.ledger import Ledger
from ftx.errors import DataError


def _bucket(key: str, salt: int) -> float:
    """A stable number in [0, 1) from content: the same record always lands in the same split."""
    h = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_key(rec: dict) -> str:
    # Near-duplicate clusters share a key so a cluster never straddles splits.
    return str(rec.get("cluster") or hashlib.sha256(_text(rec).encode()).hexdigest())


def _text(rec: dict) -> str:
    from ftx.data.sources import text_view

    return text_view(rec.get("messages"), rec.get("text"))


def split(records: list[dict], cfg: DataConfig) -> dict[str, list[dict]]:
    """Domain records → train/val/test by content hash; general records → train/general_eval."""
    s = cfg.split
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": [], "general_eval": []}
    for rec in records:
        b = _bucket(split_key(rec), s.seed)
        if rec["role"] == "general":
            out["general_eval" if b < cfg.general_eval_fraction else "train"].append(rec)
        elif b < s.val:
            out["val"].append(rec)
        elif b < s.val + s.test:
            out["test"].append(rec)
        else:
            out["train"].append(rec)
    if not out["val"]:
        raise DataError(f"data.split.val={s.val}: no domain record landed in the validation split "
                        f"({sum(r['role'] != 'general' for r in records)} domain records); raise the fraction or add data")
    if not any(r["role"] != "general" for r in out["train"]):
        raise DataError("data.split: no domain record left for training; lower data.split.val/test")
    return out


def mix(train: list[dict], cfg: DataConfig, ledger: Optional[Ledger] = None) -> tuple[list[dict], dict]:
    """Apply data.mix.domain_ratio (counted in examples) to the training split."""
    m = cfg.mix
    rng = random.Random(m.seed)
    domain = [r for r in train if r["role"] != "general"]
    general = [r for r in train if r["role"] == "general"]
    if m.domain_ratio is not None:
        ratio = m.domain_ratio
        if ratio >= 1.0:
            want_d, want_g = len(domain), 0
        elif ratio <= 0.0:
            want_d, want_g = 0, len(general)
        else:
            # Largest mix that keeps every domain record, unless general data runs short.
            want_d, want_g = len(domain), round(len(domain) * (1 - ratio) / ratio)
            if want_g > len(general):
                if m.on_short == "error":
                    raise DataError(f"data.mix.domain_ratio={ratio}: needs {want_g} general examples, "
                                    f"only {len(general)} available (set data.mix.on_short=downsample|upsample)")
                if m.on_short == "downsample":
                    want_g = len(general)
                    want_d = round(want_g * ratio / (1 - ratio))
        domain = _take(domain, want_d, rng, "domain", ledger)
        general = _take(general, want_g, rng, "general", ledger)
    out = domain + general
    rng.shuffle(out)
    achieved = {"domain_examples": len(domain), "general_examples": len(general),
                "domain_ratio": round(len(domain) / max(len(out), 1), 4)}
    return out, achieved


def _take(records: list[dict], n: int, rng: random.Random, side: str, ledger: Optional[Ledger]) -> list[dict]:
    if n <= len(records):
        chosen = rng.sample(records, n) if n < len(records) else list(records)
        if ledger is not None:
            ids = {id(r) for r in chosen}
            ledger.record_in("mix", len(records))
            ledger.keep("mix", len(chosen))
            for r in records:
                if id(r) not in ids:
                    ledger.drop("mix", f"downsampled_{side}", r)
        return chosen
    # Up-sample: every record once, then repeats drawn without bias.
    extra = [dict(r, id=f"{r['id']}#rep{i}") for i, r in enumerate(rng.choices(records, k=n - len(records)))]
    if ledger is not None:
        ledger.record_in("mix", len(records))
        ledger.keep("mix", len(records))
    return list(records) + extra
