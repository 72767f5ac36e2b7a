"""The `ftx` command.

    ftx train   [overrides] [-m]   run (or sweep) fine-tuning; a Hydra app
    ftx spec    [overrides] [--data]  print the composed, validated run spec and data plan (--data: counts)
    ftx curate  [overrides]        run the curation stages only
    ftx data diff A B              records added/removed/changed between two data versions
    ftx augment [overrides] --out F  synthetic paraphrases/back-translations by the base model
    ftx eval    RUN_DIR            re-evaluate a finished run
    ftx compare RUNS…              table of runs: differing config keys and metrics
    ftx export  RUN_DIR            merge an adapter into its base model
    ftx report  RUN_DIR            markdown report with plots for one run
    ftx sweep-report SWEEP_DIR     best trial as an override line, trials.csv, plots (docs/sweeps.md)

Every user mistake ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

from ftx.cli.args import strip_local_rank
from ftx.errors import FtxError
from ftx.runs import as_disk_full

COMMANDS = {
    "train": "ftx.cli.train:cmd_train",
    "spec": "ftx.cli.spec:cmd_spec",
    "curate": "ftx.cli.curate:cmd_curate",
    "data": "ftx.cli.data:cmd_data",
    "augment": "ftx.cli.augment:cmd_augment",
    "eval": "ftx.cli.eval:cmd_eval",
    "sweep-report": "ftx.cli.sweep_report:cmd_sweep_report",
    "export": "ftx.cli.export:cmd_export",
    "compare": "ftx.cli.compare:cmd_compare",
    "report": "ftx.cli.report:cmd_report",
}
"""Each command lives in its own module under ftx/cli/, imported only when it runs (`ftx --help` and
`ftx spec` do not load torch)."""


def usage() -> str:
    return __doc__.split("\n\n")[1]


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    argv = strip_local_rank(argv)  # the deepspeed launcher puts it before the command
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"ftx: unknown command {cmd!r} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        sys.exit(2)
    module, func = COMMANDS[cmd].split(":")
    try:
        getattr(importlib.import_module(module), func)(rest)
    except FtxError as e:
        print(f"ftx: {e.kind}: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # a full disk anywhere (checkpoints, caches) is the user's to fix, not a bug

        full = as_disk_full(e, "output")
        if full is None:
            raise
        print(f"ftx: run error: {full}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
