"""Runs the configured curation stages in order over canonical records.

    records → Arrow table → stage 1 → stage 2 → … → kept records (+ cluster, scores)
                              │ every stage: in = kept + dropped, each drop with (stage, reason, score)
                              └ cached by (input key, stage config): unchanged stages are read back

Each stage module exposes `fingerprint(cfg) -> dict` (what its output depends on) and
`run(ds, cfg, ctx) -> (ds with verdict columns, artifacts)`; this module does the bookkeeping.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ftx.data.curate import cache as cache_mod
from ftx.data.curate import ray_engine
from ftx.data.curate.table import VERDICT, Context, column, iter_records, row_to_record, to_dataset
from ftx.data.ledger import Ledger
from ftx.data.sources import text_view
from ftx.errors import DataError
from ftx.spec.curation import CurationConfig
from ftx.data.curate.report import write_report

log = logging.getLogger(__name__)
PREFIX = "curate:"


@dataclass
class StageReport:
    stage: str
    n_in: int
    kept: int
    dropped_by_reason: dict
    modified_by_reason: dict
    seconds: float
    """Wall time in this run (reading the cache, when cached)."""
    compute_seconds: float
    """Time the stage took when it was computed (docs/s comes from this)."""
    cached: bool
    artifacts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"stage": self.stage, "in": self.n_in, "kept": self.kept, "dropped": self.n_in - self.kept,
                "dropped_by_reason": self.dropped_by_reason, "modified_by_reason": self.modified_by_reason,
                "seconds": round(self.seconds, 4), "compute_seconds": round(self.compute_seconds, 4),
                "docs_per_s": round(self.n_in / self.compute_seconds, 1) if self.compute_seconds > 0 else None,
                "cached": self.cached, "artifacts": self.artifacts}


@dataclass
class Result:
    kept: list
    n_in: int
    stages: list = field(default_factory=list)
    synthetic: dict = field(default_factory=dict)


def _histograms(out, specs: dict, dropped: np.ndarray) -> dict:
    """Bin a stage's score columns, kept and dropped apart, so the report can plot them (and cache them).

    A spec is {column, bins | log_bins, threshold?}; a stage may also hand in finished counts.
    """
    hists = {}
    for name, spec in specs.items():
        if "kept" in spec:
            hists[name] = spec
            continue
        if spec["column"] not in out.column_names:
            continue
        vals = np.asarray(column(out, spec["column"]), dtype=float)
        ok = ~np.isnan(vals)
        if spec.get("log_bins"):
            top = max(float(vals[ok].max()) if ok.any() else 1.0, 10.0)
            bins = np.unique(np.round(np.logspace(0, np.log10(top + 1), 25)))
        else:
            bins = np.asarray(spec["bins"], dtype=float)
        clipped = np.clip(vals, bins[0], bins[-1])
        hists[name] = {"bins": bins.tolist(), "log": bool(spec.get("log_bins")),
                       "kept": np.histogram(clipped[ok & ~dropped], bins)[0].tolist(),
                       "dropped": np.histogram(clipped[ok & dropped], bins)[0].tolist()}
        if "threshold" in spec:
            hists[name]["threshold"] = spec["threshold"]
    return hists


def _execute(name: str, module, ds, cfg: CurationConfig, ctx: Context) -> cache_mod.Entry:
    t0 = time.perf_counter()
    out, artifacts = module.run(ds, cfg, ctx)
    reasons = np.asarray(column(out, "_drop"), dtype=object)
    dropped = reasons != ""
    artifacts["histograms"] = _histograms(out, artifacts.get("histograms", {}), dropped)
    kept = out.select(np.flatnonzero(~dropped)).remove_columns(list(VERDICT))
    mods = Counter(r for m in np.asarray(column(out, "_mod"), dtype=object)[~dropped] if m for r in m.split(","))
    drops = []
    idx = np.flatnonzero(dropped)
    if len(idx):
        for row in out.select(idx).to_list():
            drops.append({"reason": row["_drop"], "score": None if row["_score"] != row["_score"] else row["_score"],
                          "detail": row["_detail"] or None,
                          "record": row_to_record({k: v for k, v in row.items() if k not in VERDICT})})
    meta = {"n_in": len(out), "kept": len(kept), "modified": dict(mods), "artifacts": artifacts,
            "seconds": time.perf_counter() - t0}
    return cache_mod.Entry(kept, drops, meta)


def run(records: list[dict], cfg: CurationConfig, ledger: Ledger) -> Result:
    """All configured stages; the ledger receives every stage's counts and drops."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    if not records:
        raise DataError("curation: no records to curate (the sources are empty)")
    if cfg.engine == "ray":
        return _finish(_ray(records, cfg, ledger), records, ledger)
    store = cache_mod.StageCache(cfg.cache_dir)
    key = cache_mod.records_key(records)
    result = Result([], len(records), synthetic={"in": sum(bool(r.get("synthetic")) for r in records)})
    ds = to_dataset(records)
    with tempfile.TemporaryDirectory(prefix="ftx-curate-") as work:
        ctx = Context(cfg.num_proc, cfg.batch_size, Path(work))
        for name in cfg.stages:
            if len(ds) == 0:  # an earlier stage dropped everything: later stages have no columns to read
                break
            module = importlib.import_module(f"ftx.data.curate.{name}")
            key = cache_mod.stage_key(key, name, module.fingerprint(cfg))
            t0 = time.perf_counter()
            entry = store.load(name, key)
            cached = entry is not None
            if entry is None:
                entry = _execute(name, module, ds, cfg, ctx)
                store.save(name, key, entry)
            meta, stage = entry.meta, PREFIX + name
            if meta["n_in"] != len(ds):  # a cache entry from a different input would break the ledger
                raise AssertionError(f"curation cache: stage {name} saw {meta['n_in']} rows, got {len(ds)}")
            ledger.record_in(stage, len(ds))
            ledger.keep(stage, meta["kept"])
            for d in entry.drops:
                ledger.drop(stage, d["reason"], d["record"], d["score"], d["detail"])
            for reason, n in meta["modified"].items():
                ledger.modify(stage, reason, n)
            rep = StageReport(name, len(ds), meta["kept"], dict(Counter(d["reason"] for d in entry.drops)),
                              meta["modified"], time.perf_counter() - t0, meta["seconds"], cached, meta["artifacts"])
            log.info("curate %-12s in=%d kept=%d dropped=%d%s (%.2fs)", name, rep.n_in, rep.kept,
                     rep.n_in - rep.kept, " [cached]" if cached else "", rep.seconds)
            result.stages.append(rep)
            ds = entry.data
        result.kept = list(iter_records(ds, cfg.batch_size))
    return _finish(result, records, ledger)


def _ray(records: list[dict], cfg: CurationConfig, ledger: Ledger) -> Result:
    """The same stages on Ray Data (ftx/data/curate/ray_engine.py); no stage cache there."""
    kept, reports = ray_engine.run(records, cfg, ledger)
    result = Result(kept, len(records), synthetic={"in": sum(bool(r.get("synthetic")) for r in records)})
    result.stages = [StageReport(r["stage"], r["n_in"], r["kept"], r["dropped_by_reason"], r["modified_by_reason"],
                                 r["seconds"], r["seconds"], False, r["artifacts"]) for r in reports]
    return result


def _finish(result: Result, records: list[dict], ledger: Ledger) -> Result:
    for rec in result.kept:
        if not rec.get("cluster"):  # no dedup stage ran: content identity is the cluster
            rec["cluster"] = "x" + hashlib.sha1(text_view(rec["messages"], rec["text"]).encode()).hexdigest()[:16]
    ledger.check()
    result.synthetic["kept"] = sum(bool(r["synthetic"]) for r in result.kept)
    return result


def curate(records: list[dict], cfg: CurationConfig, ledger: Ledger,
           out_dir: Optional[Path] = None) -> list[dict]:
    """Kept records (with `cluster` and `scores`); with `out_dir`, also the report, plots and the
    active-learning export."""
    if not cfg.enabled or not cfg.stages:
        return records
    result = run(records, cfg, ledger)
    if out_dir is not None:
        write_report(result, ledger, cfg, Path(out_dir))
    return result.kept
