"""`ftx report RUN_DIR`: a markdown (or HTML) report with plots for one run."""

from __future__ import annotations

from pathlib import Path

from ftx.cli.args import add_out, command_parser, parse
from ftx.record.report import write_report
from ftx.runs import output_dir


def parser():
    p = command_parser("report", "ftx report RUN_DIR [--html] [--out DIR]",
                       "A markdown report with plots for one run (and, with --html, a self-contained HTML page).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    p.add_argument("--html", action="store_true", help="also write a self-contained report.html")
    add_out(p, "output folder, new or empty unless --overwrite (default: RUN_DIR/report)")
    return p


def cmd_report(args: list[str]) -> None:
    a = parse(parser(), args)
    run = Path(a.run_dir)
    out = Path(a.out) if a.out else run / "report"
    with output_dir(out, "--out", overwrite=a.overwrite, inputs=[run], command="ftx report") as tmp:
        written = write_report(run, a.html, tmp)
    print(f"wrote {out / written.name}")
