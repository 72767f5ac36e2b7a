"""`ftx compare RUNS…`: a table of runs — the config keys that differ and their metrics."""

from __future__ import annotations

from pathlib import Path

from ftx.cli.args import add_out, command_parser, parse
from ftx.record.compare import compare, default_out, plot_curves
from ftx.runs import atomic_write_text, output_dir


def parser():
    p = command_parser("compare", "ftx compare RUNS… [--metric M] [--direction minimize|maximize] [--metrics a,b] "
                       "[--out DIR]", __doc__.split(": ", 1)[1].strip())
    p.add_argument("runs", nargs="+", metavar="RUNS", help="run directories, sweep directories or globs")
    p.add_argument("--metric", help="rank by this metric path (default: the runs' objective)")
    p.add_argument("--direction", choices=("minimize", "maximize"))
    p.add_argument("--metrics", help="comma-separated metric columns (default: objective and losses)")
    add_out(p, "folder for compare.csv and loss_curves.png, new or empty unless --overwrite "
               "(default: ./compare, or SWEEP_DIR/compare for one sweep dir)")
    return p


def cmd_compare(args: list[str]) -> None:
    a = parse(parser(), args)
    import pandas as pd

    c = compare(a.runs, a.metrics.split(",") if a.metrics else None, a.metric, a.direction)
    out = Path(a.out) if a.out else default_out(a.runs)
    with output_dir(out, "--out", overwrite=a.overwrite, inputs=[Path(p) for p in c.table["path"]],
                    command="ftx compare") as tmp:
        atomic_write_text(tmp / "compare.csv", c.table.to_csv(index=False))
        png = plot_curves(c, tmp / "loss_curves.png")
    png = out / png.name if png else png
    shown = c.table.drop(columns=["path"])
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 60):
        print(shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))
    if not c.keys:
        print("(all runs share the same config)")
    if c.best is not None:
        print(f"best: {c.labels[c.best]} ({c.rank_metric} = {c.runs[c.best].get(c.rank_metric):.4g}, {c.direction})")
    else:
        print(f"best: none (no run has {c.rank_metric})")
    print(f"wrote {out / 'compare.csv'}" + (f" and {png}" if png else ""))
