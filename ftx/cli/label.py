"""`ftx curate --label FILE [--out FEEDBACK]`: label records in the terminal, y / n / skip, one at a time.

FILE is an `active_learning.jsonl` export (or any JSONL with `id` and `text`/`messages`). Each row without
a label is shown (id, score against the threshold, the text) and answered y (relevant, 1), n (not, 0),
s (skip: stays unlabelled) or q (stop; everything answered so far is written). The result — every row,
answered ones with `label` filled — goes to a new feedback file (default: FILE's name with
`.labelled.jsonl`, beside it), never over an existing one, and the next run reads it with
`curation.relevance.feedback=[that file]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from ftx.data.sources import text_view
from ftx.errors import DataError
from ftx.runs import atomic_write_text, output_file, read_jsonl

ANSWERS = {"y": 1, "n": 0, "s": None}
MAX_SHOWN = 2000  # characters of a record shown; the rest is summarised


def default_out(src: Path) -> Path:
    name = src.name[:-len(".jsonl")] if src.name.endswith(".jsonl") else src.name
    return src.with_name(f"{name}.labelled.jsonl")


def _text(row: dict) -> str:
    return text_view(row.get("messages"), row.get("text"))


def read_rows(src: Path) -> list[dict]:
    if not src.is_file():
        raise DataError(f"--label: file not found: {src}")
    rows = []
    for lineno, row in read_jsonl(src):
        if "id" not in row or not isinstance(_text(row), str) or not _text(row):
            raise DataError(f"{src}:{lineno}: a row to label needs an id and a text (or messages); "
                            f"found fields {', '.join(sorted(row)) or 'none'}")
        rows.append(row)
    if not rows:
        raise DataError(f"--label: {src} holds no rows")
    return rows


def rich_ask(console) -> Callable[[dict, int, int], str]:
    """The terminal prompt: the record in a panel, then y/n/s/q."""
    from rich.panel import Panel
    from rich.prompt import Prompt

    def ask(row: dict, i: int, n: int) -> str:
        text = _text(row)
        shown = text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"\n… ({len(text) - MAX_SHOWN} more characters)"
        sub = []
        if isinstance(row.get("score"), (int, float)) and isinstance(row.get("threshold"), (int, float)):
            sub.append(f"score {row['score']:.4f} vs threshold {row['threshold']:.4f}")
        if "kept" in row:
            sub.append("kept" if row["kept"] else "dropped")
        console.print(Panel(shown, title=f"[{i}/{n}] {row['id']}", subtitle=", ".join(sub) or None,
                            highlight=False))
        return Prompt.ask("relevant to the domain?  [y]es / [n]o / [s]kip / [q]uit", choices=["y", "n", "s", "q"],
                          console=console, show_choices=False)

    return ask


def label(src: Path, out: Optional[Path], overwrite: bool, ask: Callable[[dict, int, int], str],
          say: Callable[[str], None] = print) -> dict:
    """Ask about every unlabelled row of `src`; write all rows (answers filled in) to `out`. Returns counts."""
    src = Path(src).expanduser()
    out = Path(out).expanduser() if out else default_out(src)
    rows = read_rows(src)
    todo = [r for r in rows if r.get("label") is None]
    counts = {"asked": 0, "relevant": 0, "irrelevant": 0, "skipped": 0, "already": len(rows) - len(todo),
              "left": 0}
    with output_file(out, "--out", overwrite=overwrite, inputs=[src]) as target:  # checked before asking
        stopped = False
        for i, row in enumerate(todo, 1):
            if stopped:
                counts["left"] += 1
                continue
            try:
                a = ask(row, i, len(todo)).strip().lower()[:1]
            except (EOFError, KeyboardInterrupt):
                a = "q"
            if a == "q":
                stopped = True
                counts["left"] += 1
                continue
            counts["asked"] += 1
            y = ANSWERS.get(a)
            if y is None:
                counts["skipped"] += 1
                continue
            row["label"] = y
            counts["relevant" if y else "irrelevant"] += 1
        atomic_write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    labelled = counts["relevant"] + counts["irrelevant"]
    say(f"{labelled} labelled ({counts['relevant']} relevant, {counts['irrelevant']} not), {counts['skipped']} "
        f"skipped, {counts['left']} not reached, {counts['already']} labelled before → {out}")
    say(f"next run: ftx curate curation.relevance.feedback=[{out}]")
    counts["out"] = str(out)
    return counts
