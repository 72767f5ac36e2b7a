"""`ftx sweep-report SWEEP_DIR`: best trial as an override line, trials.csv, plots."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftx.cli.args import command_parser, parse
from ftx.errors import ConfigError, RunError
from ftx.track.sweep import STORAGE_ENV, describe_storage, open_storage
from hydra_plugins.ftx_sweeper.report import write_report


def parser():
    p = command_parser("sweep-report", "ftx sweep-report SWEEP_DIR [--storage URL] [--study NAME] "
                       "[--plots png|html|none]",
                       "The best trial of a sweep as an override line and YAML, trials.csv, plots and report.md "
                       "(docs/sweeps.md).")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the sweep's folder (holds sweep.json)")
    p.add_argument("--storage", metavar="URL", help=f"storage URL (default: the sweep's own; or ${STORAGE_ENV})")
    p.add_argument("--study", metavar="NAME", help="study name (default: the sweep's own)")
    p.add_argument("--plots", choices=("png", "html", "none"), help="plot format (default: the sweep's)")
    return p


def cmd_sweep_report(args: list[str]) -> None:
    """ftx sweep-report SWEEP_DIR: best params (override line + YAML), trials.csv, plots, report.md."""
    ns = parse(parser(), args)
    sweep_dir = Path(ns.sweep_dir)
    meta_path = sweep_dir / "sweep.json"
    if not meta_path.is_file() and not (ns.storage and ns.study):
        raise RunError(f"{sweep_dir}: no sweep.json (not an ftx sweep directory); "
                       "pass --storage and --study to report on a study elsewhere")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    storage = ns.storage or meta.get("storage")
    if storage and "***" in storage:  # written redacted: the real URL comes from the environment
        storage = os.environ.get(STORAGE_ENV) or _missing_secret(storage)
    import optuna

    study_name = ns.study or meta.get("study")
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise RunError(f"--study: no study {study_name!r} in {describe_storage(storage)}") from None
    out = write_report(study, sweep_dir, plots=ns.plots or meta.get("plots", "png"))
    print(f"sweep report: {out}")
    print((out / "best_overrides.txt").read_text().strip() if (out / "best_overrides.txt").is_file() else
          "no completed trial yet")



def _missing_secret(redacted: str) -> str:
    raise ConfigError(f"--storage: the sweep's storage {redacted} needs its password; "
                      f"set {STORAGE_ENV} to the full URL or pass --storage")
