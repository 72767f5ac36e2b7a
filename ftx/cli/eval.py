"""`ftx eval RUN_DIR [overrides] [--check]`: re-evaluate a finished run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ftx.errors import RunError
from ftx.record.rerun import reevaluate
from ftx.eval.suite import summary_table


def cmd_eval(args: list[str]) -> None:
    flags = [a for a in args if a.startswith("-")]
    rest = [a for a in args if not a.startswith("-")]
    unknown = [f for f in flags if f != "--check"]
    if unknown or not rest or "=" in rest[0]:
        raise RunError(f"usage: ftx eval RUN_DIR [key=value …] [--check]"
                       + (f" (unknown flag {unknown[0]})" if unknown else ""))
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    run_dir = Path(rest[0])
    result = reevaluate(run_dir, rest[1:])
    rep = result["reproduced"]
    lines = summary_table(result)
    lines.append(f"reproduced stored metrics: {'yes' if rep['ok'] else 'NO'} ({rep['compared']} values, "
                 f"max |diff| {rep['max_abs_diff'] if rep['max_abs_diff'] is not None else '-'}, "
                 f"rtol {rep['rtol']})" + (f"; {rep['note']}" if rep.get("note") else "") + "".join(f"\n  {f}" for f in rep["failed"][:10]))
    lines.append(f"written: {run_dir / 'eval' / 'eval.json'}; metrics.json key 'reeval'")
    print("\n".join(lines), flush=True)
    if "--check" in flags and not rep["ok"]:
        sys.exit(1)
