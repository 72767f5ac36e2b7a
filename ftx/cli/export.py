"""`ftx export RUN_DIR --out DIR`: merge a run's adapter into its base model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ftx.errors import ConfigError
from ftx.record.export import export, locate


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other ftx error
        raise ConfigError(f"ftx export: {message} (usage: ftx export RUN_DIR [--out DIR] [--dtype fp32|bf16] "
                          "[--no-verify])")



def _parse(args: list[str]) -> argparse.Namespace:
    p = _Parser(prog="ftx export", description="merge a run's adapter into its base model")
    p.add_argument("run_dir", help="a finished run directory (or its adapter/ folder)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/merged)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="dtype of the saved weights")
    p.add_argument("--no-verify", action="store_true", help="skip the merged-vs-adapter logits check")
    return p.parse_args(args)



def cmd_export(args: list[str]) -> None:
    ns = _parse(args)
    run_dir, adapter = locate(Path(ns.run_dir))
    out = Path(ns.out).expanduser() if ns.out else run_dir / "merged"
    report = export(run_dir, adapter, out, ns.dtype, verify=not ns.no_verify)
    diff = report.get("max_abs_logit_diff")
    check = f"; merged = base+adapter (max |Δlogit| {diff:.2e})" if diff is not None else ""
    print(f"exported {report['method']} model ({ns.dtype}, safetensors) to {out}{check}")
