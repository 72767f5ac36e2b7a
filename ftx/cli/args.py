"""Command-line arguments shared by the commands: Hydra overrides vs flags, the launcher's --local_rank."""

from __future__ import annotations

import os

from ftx.secrets import check_no_secrets


def strip_local_rank(args: list[str]) -> list[str]:
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


def split_args(args: list[str]) -> tuple[list[str], list[str], bool]:
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
    check_no_secrets(overrides)
    return overrides, flags, multirun
