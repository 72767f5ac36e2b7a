"""From sources to tokenised splits: load → curate → split → mix → format, with one ledger."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ftx.data import format as fmt
from ftx.data.config import DataConfig
from ftx.data.curate.config import CurationConfig
from ftx.data.curate.pipeline import curate
from ftx.data.ledger import Ledger
from ftx.data.plan import mix, split
from ftx.data.sources import load_sources
from ftx.errors import DataError
from ftx.runs import sha256_text, write_json

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    train: list
    val: list
    test: list
    general_eval: list
    stats: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)


def load_and_curate(data: DataConfig, curation: CurationConfig, out_dir: Optional[Path] = None,
                    ledger: Optional[Ledger] = None) -> tuple[list[dict], dict, Ledger]:
    ledger = ledger or Ledger()
    records, lineage = load_sources(data.sources, ledger)
    kept = curate(records, curation, ledger, out_dir)
    if not kept:
        worst = max(ledger.summary(), key=lambda s: s["dropped"], default=None)
        raise DataError(f"curation dropped every record ({len(records)} in); most were dropped by stage "
                        f"{worst['stage']!r} ({worst['dropped']}: {worst['dropped_by_reason']})" if worst else
                        "no records after curation")
    return kept, lineage, ledger


def prepare(data: DataConfig, curation: CurationConfig, tok, run_dir: Optional[Path] = None) -> Prepared:
    kept, lineage, ledger = load_and_curate(data, curation, run_dir / "curation" if run_dir else None)
    parts = split(kept, data)
    train_recs, achieved = mix(parts["train"], data, ledger)
    fmt.prepare_tokenizer(tok, data.format)
    encoded, stats = {}, {"split_records": {k: len(v) for k, v in parts.items()}, "mix": achieved}
    for name, recs in (("train", train_recs), ("val", parts["val"]), ("test", parts["test"]),
                       ("general_eval", parts["general_eval"])):
        encoded[name], stats[name] = fmt.encode_all(recs, tok, data.format, name, ledger)
    for name in ("train", "val"):
        if not encoded[name]:
            raise DataError(f"data.format.max_length={data.format.max_length}: all {stats[name]['dropped_too_long']} "
                            f"{name} examples are longer; raise it or set data.format.truncation=truncate")
    if run_dir is not None:
        def entries(recs):
            return [{"id": r["id"], "source": r["source"],
                     "sha256": sha256_text(repr((r.get("messages"), r.get("text"))))} for r in recs]

        manifest = {"train": entries(train_recs), "val": entries(parts["val"]),
                    "test": entries(parts["test"]), "general_eval": entries(parts["general_eval"])}
        write_json(run_dir / "data" / "split_manifest.json", manifest)
        write_json(run_dir / "data" / "stats.json", stats)
        ledger.write(run_dir / "data")
    return Prepared(encoded["train"], encoded["val"], encoded["test"], encoded["general_eval"],
                    stats, lineage, ledger)
