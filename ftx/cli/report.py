"""`ftx report RUN_DIR`: a markdown (or HTML) report with plots for one run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ftx.errors import ConfigError
from ftx.record.report import write_report


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(f"ftx report: {message} (usage: ftx report RUN_DIR [--html] [--out DIR])")



def cmd_report(args: list[str]) -> None:
    p = _Parser(prog="ftx report")
    p.add_argument("run_dir")
    p.add_argument("--html", action="store_true", help="also write a self-contained report.html")
    p.add_argument("--out", help="output folder (default: RUN_DIR/report)")
    a = p.parse_args(args)
    print(f"wrote {write_report(Path(a.run_dir), a.html, Path(a.out) if a.out else None)}")
