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
import os
import sys
import time
from pathlib import Path
from typing import Optional

from ftx.conf import conf_dir
from ftx.errors import ConfigError, FtxError

CONF_DIR = conf_dir()  # $FTX_CONF, else the packaged ftx/conf

COMMANDS = {
    "train": "ftx.cli:cmd_train",
    "spec": "ftx.cli:cmd_spec",
    "curate": "ftx.data.curate.cli:cmd_curate",
    "data": "ftx.data.versions:cmd_data",
    "augment": "ftx.data.augment:cmd_augment",
    "eval": "ftx.eval.rerun:cmd_eval",
    "sweep-report": "ftx.sweep:cmd_sweep_report",
    "export": "ftx.export:cmd_export",
    "compare": "ftx.compare:cmd_compare",
    "report": "ftx.report:cmd_report",
}


def usage() -> str:
    return __doc__.split("\n\n")[1]


def _strip_local_rank(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a.startswith(("--local_rank", "--local-rank")) and ("=" in a or i + 1 < len(args)):
            os.environ.setdefault("LOCAL_RANK", a.split("=", 1)[1] if "=" in a else args[i + 1])
            i += 1 if "=" in a else 2
            continue
        out.append(a)
        i += 1
    return out


def _split_args(args: list[str]) -> tuple[list[str], list[str], bool]:
    """Separate Hydra overrides from flags; strip the --local_rank a launcher injects."""
    overrides, flags, multirun = [], [], False
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith(("--local_rank", "--local-rank")):
            value = a.split("=", 1)[1] if "=" in a else args[i + 1]
            os.environ.setdefault("LOCAL_RANK", value)
            i += 1 if "=" in a else 2
            continue
        if a in ("-m", "--multirun"):
            multirun = True
            flags.append(a)
        elif a.startswith("-"):
            flags.append(a)
        else:
            overrides.append(a)
        i += 1
    from ftx.runs import check_no_secrets

    check_no_secrets(overrides)
    return overrides, flags, multirun


def compose(overrides: list[str]):
    """Compose conf/ with overrides (Hydra's compose API), errors as one line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException
    import yaml
    from omegaconf.errors import OmegaConfBaseException

    from ftx.spec import explain

    if not CONF_DIR.is_dir():
        raise ConfigError(f"config directory not found: {CONF_DIR} (set FTX_CONF to your conf/ folder)")
    plain = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="ftx"):
            return hydra_compose(config_name="config", overrides=plain)
    except MissingConfigException as e:
        text = str(e)
        missing = e.missing_cfg_file or text.split("'")[1] if "'" in text else text
        group = missing.split("/")[0] if "/" in missing else None
        options = e.options or []
        if group and options:
            raise ConfigError(f"unknown option '{missing.split('/', 1)[1]}' for group '{group}' "
                              f"(available: {', '.join(sorted(options))})") from None
        raise ConfigError(" ".join(text.split())) from None
    except HydraException as e:
        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException):
            raise ConfigError(explain(cause)) from None
        raise ConfigError(str(e).splitlines()[0]) from None
    except OmegaConfBaseException as e:
        raise ConfigError(explain(e)) from None
    except yaml.YAMLError as e:  # a hand-edited experiment or group file
        raise ConfigError(yaml_error(e)) from None


def yaml_error(e, path=None) -> str:
    """'file:line:column: malformed YAML (problem)' from a PyYAML error (`path` when it parsed a string)."""
    mark = getattr(e, "problem_mark", None)
    where = f"{path or mark.name}:{mark.line + 1}:{mark.column + 1}" if mark else str(path or "YAML")
    return f"{where}: malformed YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})"


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


def _check_run_dir(overrides: list[str]) -> None:
    """Create an explicit hydra.run.dir up front: Hydra reports a failed mkdir as a traceback."""
    for o in overrides:
        if o.startswith("hydra.run.dir="):
            path = Path(o.split("=", 1)[1]).expanduser()
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"hydra.run.dir: cannot create {path} ({e.strerror or e})") from None


def cmd_train(args: list[str]) -> None:
    import hydra

    from ftx.spec import build_spec

    overrides, flags, multirun = _split_args(args)
    if multirun:  # a malformed sweep (e.g. empty choice()) is one line, not Hydra's parser report
        importlib.import_module("ftx.sweep").check_overrides(overrides)
    if not multirun:  # validate before Hydra sets anything up; sweeps validate per job
        build_spec(compose(overrides))
        overrides = _distributed_run_dir(overrides)
        _check_run_dir(overrides)

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def _app(cfg):
        return _task(cfg)

    sys.argv = ["ftx-train", *flags, *overrides]
    _app()


def _task(cfg):
    """Hydra's task function: one line for user errors; a sweep's job fails as FAILED, not a crash."""
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ftx.train import run

    # Build-time probes (setuptools' compiler checks run by deepspeed's op builder) log at INFO.
    for noisy in ("compilers", "distutils", "DeepSpeed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return run(cfg)
    except FtxError as e:
        logging.getLogger("ftx").error("%s: %s", e.kind, e)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(f"ftx: {e.kind}: {e}", file=sys.stderr)
        sys.exit(2)


def cmd_spec(args: list[str]) -> None:
    from omegaconf import OmegaConf

    from ftx.spec import as_dict, build_spec, spec_hash

    overrides, flags, _ = _split_args(args)
    spec = build_spec(compose(overrides))
    resolved = as_dict(spec)
    print(OmegaConf.to_yaml(OmegaConf.create(resolved)), end="")
    print(f"# spec hash: {spec_hash(resolved)}")
    from ftx.data.build import describe, describe_counts

    lines = describe(spec.data)
    if "--data" in flags:  # load, split, tokenise and mix the data for real (no model weights)
        from ftx.data.build import prepare
        from ftx.model import load_tokenizer

        lines += describe_counts(prepare(spec.data, spec.curation, load_tokenizer(spec.model)))
    print("".join(f"# {line}\n" for line in lines), end="")


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    argv = _strip_local_rank(argv)  # the deepspeed launcher puts it before the command
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
        from ftx.runs import as_disk_full

        full = as_disk_full(e, "output")
        if full is None:
            raise
        print(f"ftx: run error: {full}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
