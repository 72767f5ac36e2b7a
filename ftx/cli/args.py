"""The one command-line parser every `ftx` command uses.

    p = command_parser("spec", "ftx spec [key=value …] [--data]", "print the composed run spec",
                       overrides=True)
    p.add_argument("--data", action="store_true", help="…")
    ns = parse(p, args)          # ns.overrides: Hydra overrides, checked for secrets

- a mistake (unknown flag, missing argument, bad choice) is a ConfigError whose one line names the command
  and its usage: `ftx spec: unknown flag '--bogus' (usage: ftx spec [key=value …] [--data])`;
- `-h`/`--help` prints the command's usage and exits 0;
- flags are never abbreviated (`--dat` is not `--data`);
- the launcher's `--local_rank` is removed once, by `strip_local_rank` in ftx.cli.main.
"""

from __future__ import annotations

import argparse
import os

from ftx.errors import ConfigError
from ftx.secrets import check_no_secrets


def strip_local_rank(args: list[str]) -> list[str]:
    """Drop the `--local_rank N` / `--local-rank=N` a launcher injects anywhere; keep it as LOCAL_RANK."""
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


class Parser(argparse.ArgumentParser):
    """argparse with ftx's error style: one ConfigError line naming the command and its usage."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def usage_line(self) -> str:
        return " ".join(self.format_usage().split()).removeprefix("usage: ")

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message} (usage: {self.usage_line()})")


def command_parser(command: str, usage: str, description: str, overrides: bool = False,
                   epilog: str | None = None) -> Parser:
    """The parser of `ftx COMMAND`; `usage` is the line `--help` and every error show.

    overrides=True: the command takes Hydra `key=value` overrides as positionals (ns.overrides).
    """
    p = Parser(prog=f"ftx {command}", usage=usage, description=description, epilog=epilog,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    if overrides:
        p.add_argument("overrides", nargs="*", metavar="key=value",
                       help="Hydra overrides: key=value, +key=value, ++key=value, group=option")
    return p


def add_config_dir(p: argparse.ArgumentParser) -> None:
    """`--config-dir DIR`: the user's folder of config options, searched before ftx's (ftx.spec.tree.layers)."""
    p.add_argument("--config-dir", metavar="DIR", dest="config_dir",
                   help="your folder of config options (data/, experiment/, sweep/ …), searched before ftx's; "
                        "default: $FTX_CONF, else ./conf if it exists")


def add_out(p: argparse.ArgumentParser, help: str, metavar: str = "DIR", required: bool = False) -> None:
    """`--out PATH` and `--overwrite`, the same flags on every command that writes somewhere."""
    p.add_argument("--out", metavar=metavar, required=required, help=help)
    add_overwrite(p)


def add_overwrite(p: argparse.ArgumentParser) -> None:
    """`--overwrite`: replace an existing, non-empty output (without it, ftx refuses to)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output if it exists (it is replaced only once the new one is complete)")


def parse(p: Parser, args: list[str]) -> argparse.Namespace:
    """Parse `args` (flags and positionals in any order); unknown flags are an error."""
    try:
        ns, extra = p.parse_known_intermixed_args(args)
    except ConfigError:  # a missing --out or RUN_DIR after a typo'd flag: the typo is the mistake to name
        unknown = [a for a in args if a.startswith("-") and a != "-" and not p._negative_number_matcher.match(a)
                   and a.split("=", 1)[0] not in p._option_string_actions]
        if unknown:
            _unknown(p, unknown)
        raise
    flags = [a for a in extra if a.startswith("-")]
    if flags:
        _unknown(p, flags)
    if extra:
        p.error(f"unexpected argument{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}")
    if getattr(ns, "overrides", None):
        check_no_secrets(ns.overrides)
    return ns


def _unknown(p: Parser, flags: list[str]):
    names = ", ".join(repr(f.split("=", 1)[0]) for f in flags)
    p.error(f"unknown flag{'s' if len(flags) > 1 else ''} {names}")
