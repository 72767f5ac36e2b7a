"""`ftx train [overrides] [-m]`: run (or sweep) fine-tuning; a Hydra app around ftx.pipeline.run."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ftx.cli.args import command_parser, parse
from ftx.cli.main import interrupted
from ftx.cli.multirun import check as check_multirun
from ftx.cli.preflight import check_paths
from ftx.errors import ConfigError, FtxError
from ftx.record.card import write_card
from ftx.runs import earlier_run, usable_dir
from ftx.spec import tree
from ftx.spec.run import build_spec
from ftx.track.sweep import check_overrides


def _distributed_run_dir(overrides: list[str]) -> list[str]:
    """Under torchrun/deepspeed every rank must write to one run directory.

    Rank 0 picks the directory and leaves a note keyed by the launcher process (all ranks share it
    as parent) and the rendezvous port; the other ranks wait for the note and use the same dir.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return overrides
    rank = int(os.environ.get("RANK", "0"))
    if rank > 0:  # only rank 0 writes files into the run dir: no .hydra/, logs to the console
        overrides = overrides + ["hydra.output_subdir=null", "hydra/job_logging=stdout",
                                 "hydra.job_logging.root.level=WARNING"]
    if any(o.startswith("hydra.run.dir=") for o in overrides):
        return overrides
    local = os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or world  # torchrun | deepspeed
    if int(local) != world:
        raise ConfigError("hydra.run.dir: a multi-node run needs it set to one folder on a shared filesystem "
                          "(every node writes checkpoints there), e.g. hydra.run.dir=/shared/runs/exp1")
    note = Path(os.environ.get("TMPDIR", "/tmp")) / f"ftx-rundir-{os.getppid()}-{os.environ.get('MASTER_PORT', '0')}"
    if rank == 0:
        run_dir = (Path("outputs/runs") / time.strftime("%Y-%m-%d") / f"{time.strftime('%H-%M-%S')}-dist{world}").resolve()
        tmp = note.with_name(note.name + f".{os.getpid()}")
        tmp.write_text(str(run_dir))
        tmp.replace(note)  # atomic: another rank never reads half a path
    else:
        import psutil

        # A note older than our launcher is a leftover of an earlier launcher with the same pid and port.
        born = psutil.Process(os.getppid()).create_time() - 1
        deadline = time.time() + 300
        while not (note.exists() and note.stat().st_mtime >= born):
            if time.time() > deadline:
                raise ConfigError(f"rank {rank}: rank 0 never announced its run directory ({note}); "
                                  "pass hydra.run.dir=<folder> to every rank")
            time.sleep(0.2)
        run_dir = Path(note.read_text().strip())
    return overrides + [f"hydra.run.dir={run_dir}"]


def _check_run_dir(overrides: list[str], resume: "str | None") -> None:
    """An explicit hydra.run.dir, checked and created up front (Hydra reports a failed mkdir as a
    traceback, and writes .hydra/ into the dir before the task could refuse it): one that holds an
    earlier run is refused unless `resume` (train.resume) continues it. Rank 0 checks; the other ranks
    join the dir it is writing."""
    for o in overrides:
        if o.startswith("hydra.run.dir="):
            path = usable_dir(o.split("=", 1)[1], "hydra.run.dir")
            if resume == "none" and int(os.environ.get("RANK", "0")) == 0:
                reused = earlier_run(path)
                if reused:
                    raise ConfigError(f"hydra.run.dir: {reused}")


HYDRA_ONLY = ("hydra_help", "shell_completion", "info", "config_path", "config_name", "experimental_rerun")
"""Hydra flags after which ftx does not validate the default config up front: Hydra answers them itself, or they
change which config is composed (the task validates the composed one)."""


def _hydra_actions() -> list:
    """Hydra's own command-line flags (-m, --cfg, --info, --config-dir, …), from Hydra's parser."""
    import copy

    from hydra._internal.utils import get_args_parser

    out = []
    for action in get_args_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue  # the overrides positional and --help are ftx's own
        action = copy.copy(action)
        if action.dest == "config_dir":  # ftx's own meaning: in front of ftx's configs (ftx.spec.tree.layers)
            action.help = ("your folder of config options (data/, experiment/, sweep/ …), searched before ftx's; "
                           "default: $FTX_CONF, else ./conf if it exists")
        if not isinstance(action.help, str):  # --shell-completion's help is rendered lazily by Hydra
            action.help = "install or uninstall shell completion (Hydra's --shell-completion)"
        out.append(action)
    return out


def parser():
    p = command_parser("train", "ftx train [key=value …] [-m] [Hydra flags]",
                       "Run (or, with -m, sweep) fine-tuning: a Hydra app around ftx.pipeline.run.",
                       overrides=True,
                       epilog="Hydra's flags above are passed to Hydra; Hydra's own help (config groups, override "
                              "syntax):\n  ftx train --hydra-help")
    hydra_flags = p.add_argument_group("Hydra flags")
    for action in _hydra_actions():
        hydra_flags._add_action(action)
    return p


def _hydra_argv(p, ns) -> list[str]:
    """The Hydra flags given, as Hydra's parser reads them."""
    argv = []
    for action in p._actions:
        if not action.option_strings or action.dest in ("help", "config_dir"):
            continue  # --config-dir is ftx's: Hydra's would search it after ftx's tree, not before
        value = getattr(ns, action.dest, None)
        if value is None or value is False:
            continue
        flag = max(action.option_strings, key=len)
        argv.append(flag if action.nargs == 0 else f"{flag}={value}")
    return argv


def cmd_train(args: list[str]) -> None:
    p = parser()
    ns = parse(p, args)
    import hydra

    overrides, flags, multirun = ns.overrides, _hydra_argv(p, ns), ns.multirun
    where = tree.layers(ns.config_dir)
    where.activate()  # the user's folder in front of ftx's, for Hydra's run and every sweep job
    modes = [f for f, on in (("-m", multirun), ("--run", getattr(ns, "run", False)), ("--cfg", getattr(ns, "cfg", None)),
                             ("--info", getattr(ns, "info", None)),
                             ("--shell-completion", getattr(ns, "shell_completion", False))) if on]
    if len(modes) > 1:  # Hydra's ValueError traceback otherwise
        raise ConfigError(f"ftx train: {' and '.join(modes)} cannot be combined (Hydra runs one mode at a time: "
                          "-m, --run, --cfg, --info or --shell-completion)")
    if multirun:  # a malformed sweep (e.g. empty choice()) is one line, not Hydra's parser report
        check_overrides(overrides)
        if not any(getattr(ns, k, None) for k in HYDRA_ONLY):
            check_multirun(overrides, ns.config_dir)  # every swept value validated like a single run, before any sweep dir
        for o in overrides:  # Hydra reports a failed mkdir of the sweep dir as a traceback
            if o.startswith("hydra.sweep.dir="):
                usable_dir(o.split("=", 1)[1], "hydra.sweep.dir", create=False)
    if not multirun:  # validate before Hydra sets anything up; sweeps validate per job
        spec = None
        if not any(getattr(ns, k, None) for k in HYDRA_ONLY):
            spec = build_spec(tree.compose(overrides, ns.config_dir))
            check_paths(spec, model=True)
        overrides = _distributed_run_dir(overrides)
        _check_run_dir(overrides, spec.train.resume if spec is not None else None)

    if not where.base.is_dir():
        raise ConfigError(f"config directory not found: {where.base} (set FTX_CONF to your conf/ folder)")

    @hydra.main(config_path=str(where.base), config_name="config", version_base="1.3")
    def _app(cfg):
        return _task(cfg)

    sys.argv = ["ftx-train", *flags, *overrides]
    _app()


def _task(cfg):
    """Hydra's task function: one line for user errors; a sweep's job fails as FAILED, not a crash."""
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ftx.pipeline import run

    # Build-time probes (setuptools' compiler checks run by deepspeed's op builder) log at INFO.
    for noisy in ("compilers", "distutils", "DeepSpeed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return run(cfg, finishers=(write_card,))
    except KeyboardInterrupt:  # Ctrl-C/SIGTERM in a single run: one line, exit 130 (a sweep's sweeper decides)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        logging.getLogger("ftx").error("interrupted")
        interrupted()
    except FtxError as e:
        logging.getLogger("ftx").error("%s: %s", e.kind, e)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(f"ftx: {e.kind}: {e}", file=sys.stderr)
        sys.exit(2)
