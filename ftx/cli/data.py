"""`ftx data diff A B`: records added, removed and changed between two data versions."""

from __future__ import annotations

import json

from ftx.cli.args import command_parser, parse
from ftx.data.versions import diff, load

SUBCOMMANDS = {"diff": "records added, removed and changed between two data versions"}


def parser():
    p = command_parser("data", "ftx data diff A B [--json]", "Data versions.",
                       epilog="subcommands:\n" + "".join(f"  {k:<8}{v}\n" for k, v in SUBCOMMANDS.items())
                       + "\n`ftx data diff --help` for a subcommand's flags")
    p.add_argument("subcommand", choices=list(SUBCOMMANDS), metavar="SUBCOMMAND", help="diff")
    return p


def diff_parser():
    p = command_parser("data diff", "ftx data diff A B [--json]",
                       "Records added (+), removed (-) and changed (~) between two data versions.")
    p.add_argument("a", metavar="A", help="a run dir or an `ftx curate --out` dir")
    p.add_argument("b", metavar="B", help="another one")
    p.add_argument("--json", action="store_true", help="print the difference as JSON")
    return p


def cmd_data(args: list[str]) -> None:
    """`ftx data diff A B [--json]`: records added, removed and changed between two data versions."""
    if not args or args[0] in ("-h", "--help"):
        parser().print_help()
        return
    if args[0].startswith("-"):
        parser().error(f"unknown flag {args[0].split('=', 1)[0]!r}")  # the flag, never its value
    if args[0] not in SUBCOMMANDS:
        parser().error(f"unknown subcommand {args[0]!r} (available: {', '.join(SUBCOMMANDS)})")
    ns = parse(diff_parser(), args[1:])
    a, b = load(ns.a), load(ns.b)
    d = diff(a, b)
    if ns.json:
        print(json.dumps({"a": a["id"], "b": b["id"], **d}, indent=2))
        return
    print(f"{a['id']} ({a['records']} records) → {b['id']} ({b['records']} records)"
          + ("; curation config changed" if d["curation_changed"] else ""))
    for kind, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
        for rid in d[kind]:
            print(f"{sign} {rid}")
    print(f"{len(d['added'])} added, {len(d['removed'])} removed, {len(d['changed'])} changed, "
          f"{d['unchanged']} unchanged")
