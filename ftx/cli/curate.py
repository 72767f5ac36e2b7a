"""`ftx curate [overrides] [--out DIR]`: load the data sources and run the curation stages only.

Writes into DIR (default outputs/curate/<date>/<time>): kept.jsonl, dropped.jsonl (every dropped
record with stage, reason, score), ledger.json, report.json, report.md, histogram PNGs, the
relevance PR curve and the active-learning export, plus config.yaml of what ran.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ftx.cli.args import add_config_dir, add_out, command_parser, parse
from ftx.cli.preflight import check_paths
from ftx.errors import ConfigError, DataError
from ftx.data import versions
from ftx.data.ledger import Ledger
from ftx.runs import atomic_write_text, input_paths, output_dir, write_json


def parser():
    p = command_parser("curate", "ftx curate [key=value …] [--out DIR]", __doc__.split("\n\n", 1)[1].strip(),
                       overrides=True)
    add_out(p, "output folder, new or empty (default: outputs/curate/<date>/<time>); written into a "
               "temporary sibling and renamed into place when complete")
    add_config_dir(p)
    p.add_argument("--label", metavar="FILE", help="label the records of FILE (an active_learning.jsonl export) "
                   "in the terminal, y/n/skip, and write them to a new feedback file (--out, default "
                   "FILE.labelled.jsonl); no curation runs")
    return p


def cmd_curate(args: list[str]) -> None:
    ns = parse(parser(), args)
    if ns.label:
        if ns.overrides:
            raise ConfigError(f"--label: takes no config overrides (got {' '.join(ns.overrides)}); it only "
                              "labels FILE")
        from rich.console import Console

        from ftx.cli.label import label, rich_ask

        label(Path(ns.label), Path(ns.out) if ns.out else None, ns.overwrite, rich_ask(Console()))
        return

    from omegaconf import OmegaConf

    from ftx.data.curate.pipeline import PREFIX, curate
    from ftx.data.sources import load_sources
    from ftx.spec.run import as_dict, build_spec
    from ftx.spec.tree import compose

    out = Path(ns.out) if ns.out else Path("outputs/curate") / time.strftime("%Y-%m-%d") / time.strftime("%H-%M-%S")
    spec = build_spec(compose(ns.overrides, ns.config_dir))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    resolved = as_dict(spec)
    check_paths(spec, model=False)
    with output_dir(out, "--out", overwrite=ns.overwrite, inputs=input_paths(resolved),
                    command="ftx curate") as tmp:
        ledger = Ledger()
        records, lineage = load_sources(spec.data.sources, ledger)
        if not records:
            raise DataError("no records to curate: every source is empty")
        kept = curate(records, spec.curation, ledger, tmp)
        atomic_write_text(tmp / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(
            {"data": resolved["data"], "curation": resolved["curation"]})))
        write_json(tmp / "lineage.json", lineage)
        atomic_write_text(tmp / "kept.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
        ledger.write(tmp)  # ledger.json + dropped.jsonl

        version = versions.compute(kept, resolved["curation"])
        versions.write(tmp, version)
    print(f"{'stage':<22}{'in':>8}{'kept':>8}{'dropped':>9}  reasons")
    for s in ledger.summary():
        reasons = ", ".join(f"{k}={v}" for k, v in s["dropped_by_reason"].items())
        print(f"{s['stage']:<22}{s['in']:>8}{s['kept']:>8}{s['dropped']:>9}  {reasons}")
    if not spec.curation.enabled:
        print("curation is off (curation=none): every loaded record is kept")
    print(f"{len(kept)} of {len(records)} records kept → {out}/kept.jsonl; report: {out}/report.md"
          if any(s["stage"].startswith(PREFIX) for s in ledger.summary()) else
          f"{len(kept)} records → {out}/kept.jsonl")
    print(f"data version {version['id']}")
