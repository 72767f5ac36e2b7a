"""`ftx export RUN_DIR --out DIR`: merge a run's adapter into its base model."""

from __future__ import annotations

from pathlib import Path

from ftx.cli.args import add_out, command_parser, parse
from ftx.record.export import export, locate
from ftx.runs import output_dir


def parser():
    p = command_parser("export", "ftx export RUN_DIR [--out DIR] [--dtype fp32|bf16] [--no-verify]",
                       "Merge a run's adapter into its base model and save it as safetensors.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory (or its adapter/ folder)")
    add_out(p, "output folder, new or empty unless --overwrite (default: RUN_DIR/merged)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="dtype of the saved weights")
    p.add_argument("--no-verify", action="store_true", help="skip the merged-vs-adapter logits check")
    return p


def cmd_export(args: list[str]) -> None:
    ns = parse(parser(), args)
    run_dir, adapter = locate(Path(ns.run_dir))
    out = Path(ns.out).expanduser() if ns.out else run_dir / "merged"
    with output_dir(out, "--out", overwrite=ns.overwrite, inputs=[run_dir, adapter], command="ftx export") as tmp:
        report = export(run_dir, adapter, tmp, ns.dtype, verify=not ns.no_verify)
    diff = report.get("max_abs_logit_diff")
    check = f"; merged = base+adapter (max |Δlogit| {diff:.2e})" if diff is not None else ""
    print(f"exported {report['method']} model ({ns.dtype}, safetensors) to {out}{check}")
