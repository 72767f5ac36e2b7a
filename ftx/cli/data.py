"""`ftx data diff A B`: records added, removed and changed between two data versions."""

from __future__ import annotations

import json

from ftx.data.versions import diff, load
from ftx.errors import ConfigError


def cmd_data(args: list[str]) -> None:
    """`ftx data diff A B [--json]`: records added, removed and changed between two data versions."""
    if not args or args[0] in ("-h", "--help"):
        print(cmd_data.__doc__)
        return
    if args[0] != "diff":
        raise ConfigError(f"ftx data: unknown subcommand {args[0]!r} (available: diff)")
    paths = [a for a in args[1:] if not a.startswith("-")]
    flags = [a for a in args[1:] if a.startswith("-")]
    if len(paths) != 2 or any(f != "--json" for f in flags):
        raise ConfigError("usage: ftx data diff A B [--json] (A, B: run dirs or `ftx curate --out` dirs)")
    a, b = load(paths[0]), load(paths[1])
    d = diff(a, b)
    if "--json" in flags:
        print(json.dumps({"a": a["id"], "b": b["id"], **d}, indent=2))
        return
    print(f"{a['id']} ({a['records']} records) → {b['id']} ({b['records']} records)"
          + ("; curation config changed" if d["curation_changed"] else ""))
    for kind, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
        for rid in d[kind]:
            print(f"{sign} {rid}")
    print(f"{len(d['added'])} added, {len(d['removed'])} removed, {len(d['changed'])} changed, "
          f"{d['unchanged']} unchanged")
