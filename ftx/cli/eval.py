"""`ftx eval RUN_DIR [overrides] [--check]`: re-evaluate a finished run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ftx.cli.args import command_parser, parse
from ftx.record.rerun import reevaluate
from ftx.eval.suite import summary_table


def parser():
    p = command_parser("eval", "ftx eval RUN_DIR [key=value …] [--check]",
                       "Re-evaluate a finished run (its adapter, data and config) and check the stored metrics "
                       "reproduce;\nwrites RUN_DIR/eval/eval.json and the key 'reeval' of metrics.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="a finished run directory")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="eval-time overrides (e.g. eval.golden=…)")
    p.add_argument("--check", action="store_true", help="exit 1 when the stored metrics do not reproduce")
    return p


def cmd_eval(args: list[str]) -> None:
    p = parser()
    ns = parse(p, args)
    if ns.run_dir is None:  # checked here: argparse's intermixed parsing would call key=value required too
        p.error("the following arguments are required: RUN_DIR")
    if "=" in ns.run_dir:
        p.error(f"RUN_DIR comes first, got {ns.run_dir!r}")
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    run_dir = Path(ns.run_dir)
    result = reevaluate(run_dir, ns.overrides)
    rep = result["reproduced"]
    lines = summary_table(result)
    lines.append(f"reproduced stored metrics: {'yes' if rep['ok'] else 'NO'} ({rep['compared']} values, "
                 f"max |diff| {rep['max_abs_diff'] if rep['max_abs_diff'] is not None else '-'}, "
                 f"rtol {rep['rtol']})" + (f"; {rep['note']}" if rep.get("note") else "") + "".join(f"\n  {f}" for f in rep["failed"][:10]))
    lines.append(f"written: {run_dir / 'eval' / 'eval.json'}; metrics.json key 'reeval'")
    print("\n".join(lines), flush=True)
    if ns.check and not rep["ok"]:
        sys.exit(1)
