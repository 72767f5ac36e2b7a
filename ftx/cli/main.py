"""The `ftx` command.

    ftx train   [overrides] [-m] [Hydra flags]  run (or sweep) fine-tuning; a Hydra app
    ftx spec    [overrides] [--data]        print the composed, validated run spec and data plan (--data: counts)
    ftx curate  [overrides] [--out DIR]     run the curation stages only
    ftx data    diff A B [--json]           records added/removed/changed between two data versions
    ftx augment [overrides] --out FILE      synthetic paraphrases/back-translations by the base model
    ftx eval    RUN_DIR [overrides] [--check]  re-evaluate a finished run
    ftx compare RUNS… [--metric M] [--out DIR]  table of runs: differing config keys and metrics
    ftx export  RUN_DIR [--out DIR] [--format safetensors|gguf]  merge an adapter into its base model (GGUF + Ollama)
    ftx chat    RUN_DIR [--base]            talk to the tuned model (and the base beside it) in the terminal
    ftx report  RUN_DIR [--html] [--out DIR]  markdown report with plots for one run
    ftx sweep-report SWEEP_DIR              best trial as an override line, trials.csv, plots (docs/sweeps.md)
    ftx review  export RUN [--against RUN_B] | import FILES… | to-preferences FILES… --out F  blind human review
    ftx init    [DIR]                       write a small working project: conf/ layered over ftx's, sample data

`ftx help CMD` or `ftx CMD --help`: a command's flags. Every user mistake ends as one line on stderr
and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Optional

from ftx.cli.args import strip_local_rank
from ftx.errors import FtxError
from ftx.runs import INTERRUPTED, as_disk_full
from ftx.track.progress import close_bars

COMMANDS = {
    "train": "ftx.cli.train:cmd_train",
    "spec": "ftx.cli.spec:cmd_spec",
    "curate": "ftx.cli.curate:cmd_curate",
    "data": "ftx.cli.data:cmd_data",
    "augment": "ftx.cli.augment:cmd_augment",
    "eval": "ftx.cli.eval:cmd_eval",
    "sweep-report": "ftx.cli.sweep_report:cmd_sweep_report",
    "export": "ftx.cli.export:cmd_export",
    "chat": "ftx.cli.chat:cmd_chat",
    "compare": "ftx.cli.compare:cmd_compare",
    "report": "ftx.cli.report:cmd_report",
    "init": "ftx.cli.init:cmd_init",
    "review": "ftx.cli.review:cmd_review",
}
"""Each command lives in its own module under ftx/cli/, imported only when it runs (`ftx --help` and
`ftx spec` do not load torch)."""


def usage() -> str:
    return "\n\n".join(__doc__.split("\n\n")[1:3]).rstrip()


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (kill, a scheduler's preemption) ends like Ctrl-C: cleanup runs, one line


def interrupted() -> None:
    """The end of an interrupted command: one line, exit 130 (what `finally` blocks wrote is consistent:
    output folders are renamed into place only when complete, locks are released)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting adds no traceback
    except ValueError:  # not the main thread
        pass
    close_bars()  # a bar's final redraw at exit would come after the line
    sys.stdout.flush()
    print(f"ftx: {INTERRUPTED}", file=sys.stderr, flush=True)
    sys.exit(130)


def main(argv: Optional[list[str]] = None) -> None:
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        previous = None
    previous_int = signal.getsignal(signal.SIGINT)  # interrupted() ignores a second Ctrl-C; a caller gets its own back
    try:
        try:
            _main(sys.argv[1:] if argv is None else argv)
        finally:
            sys.stdout.flush()
    except KeyboardInterrupt:
        interrupted()
    except BrokenPipeError:  # `ftx … | head`: the reader left; no traceback, nothing more to print
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit-time flush fails quietly
        except (OSError, ValueError, AttributeError):
            pass
        sys.exit(1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            # An ignored SIGINT would outlive the call in an embedding process (a test runner, a notebook)
            # and be inherited by every child it starts, which then cannot be stopped with Ctrl-C.
            signal.signal(signal.SIGINT, previous_int if previous_int is not None else signal.SIG_DFL)


def _main(argv: list[str]) -> None:
    argv = strip_local_rank(argv)  # the deepspeed launcher puts it before the command; nothing else strips it
    if not argv or argv[0] in ("-h", "--help") or argv == ["help"]:
        print(usage())
        return
    if argv[0] == "help":  # `ftx help CMD` = `ftx CMD --help`
        argv = [argv[1], "--help"]
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
