"""Records ⇄ an Arrow table (HF `datasets`), and the helpers stages share.

Canonical fields become typed columns; anything else a source carried (label, answers, …) rides
along as JSON in `extra`, so Arrow never has to unify heterogeneous user fields. Each stage adds
verdict columns (`_drop` reason or "", `_score`, `_detail`, `_mod`) that the pipeline turns into
ledger entries and then removes. Per-stage scores live in `s_<name>` columns until the end.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
from datasets import Dataset, Features, List, Value

from ftx.data.sources import text_view

CORE = ("id", "source", "role", "synthetic", "weight", "messages", "text")
VERDICT = ("_drop", "_score", "_detail", "_mod")
FEATURES = Features({
    "id": Value("string"), "source": Value("string"), "role": Value("string"), "synthetic": Value("bool"),
    "weight": Value("float64"), "messages": List({"role": Value("string"), "content": Value("string")}),
    "text": Value("string"), "extra": Value("string"), "cluster": Value("string"),
})
NAN = float("nan")
PARALLEL_MIN_ROWS = 20_000
"""Below this many rows per worker, process start-up costs more than it saves."""


@dataclass
class Context:
    """What a stage may use besides its own config: workers, batch size, a scratch folder."""

    num_proc: int = 1
    batch_size: int = 1000
    workdir: Optional[Path] = None
    info: dict = field(default_factory=dict)

    def procs(self, n_rows: int) -> Optional[int]:
        want = min(self.num_proc, max(1, n_rows // PARALLEL_MIN_ROWS))
        return want if want > 1 else None

    def scratch(self, name: str) -> Optional[str]:
        if self.workdir is None:
            return None
        return str(self.workdir / f"{name}-{uuid.uuid4().hex[:8]}.arrow")


def column(ds: Dataset, name: str) -> list:
    """A whole column as a Python list (indices mapping respected), without per-row access."""
    return ds.with_format("arrow")[name].to_pylist()


def matrix(ds: Dataset, name: str, width: int, dtype) -> np.ndarray:
    """A fixed-width list column as a 2-D numpy array."""
    arr = ds.with_format("arrow")[name].combine_chunks()
    return arr.flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(-1, width)


def to_dataset(records: Iterable[dict]) -> Dataset:
    rows = []
    for r in records:
        row = {k: r.get(k) for k in CORE}
        row["synthetic"] = bool(row["synthetic"])
        row["weight"] = NAN if row["weight"] is None else float(row["weight"])  # None: the role's default, later
        extra = {k: v for k, v in r.items() if k not in CORE and k not in ("cluster", "scores")}
        row["extra"] = json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
        row["cluster"] = r.get("cluster") or ""
        rows.append(row)
    return Dataset.from_list(rows, features=FEATURES)


def score_columns(ds: Dataset) -> list[str]:
    return [c for c in ds.column_names if c.startswith("s_")]


def row_to_record(row: dict) -> dict:
    """A table row → the canonical record dict, with `cluster` and `scores` (and extras) restored."""
    rec = {k: row.get(k) for k in CORE}
    if rec["weight"] is not None and rec["weight"] != rec["weight"]:
        rec["weight"] = None
    if row.get("extra"):
        rec.update(json.loads(row["extra"]))
    rec["cluster"] = row.get("cluster") or None
    rec["scores"] = {k[2:]: float(row[k]) for k in row if k.startswith("s_") and row[k] is not None
                     and row[k] == row[k]}
    return rec


def iter_records(ds: Dataset, batch_size: int = 1000) -> Iterable[dict]:
    for batch in ds.iter(batch_size=batch_size):
        keys = list(batch)
        for i in range(len(batch[keys[0]]) if keys else 0):
            yield row_to_record({k: batch[k][i] for k in keys})


def texts(batch: dict) -> list[str]:
    return [text_view(m, t) for m, t in zip(batch["messages"], batch["text"])]


def rewrite(messages: Optional[list], text: Optional[str], fn: Callable[[str], tuple[str, set]]):
    """Apply `fn(str) -> (new, reasons)` to a text record or to every message of a chat record."""
    reasons: set = set()
    if messages:
        out = []
        for m in messages:
            new, why = fn(m["content"])
            reasons |= why
            out.append({"role": m["role"], "content": new})
        return out, text, reasons
    new, why = fn(text or "")
    return messages, new, why


def verdicts(n: int) -> dict:
    """Per-row verdict columns: drop reason ("" = kept), score (NaN = none), detail, modified reasons (comma-joined).

    Never None: Arrow infers a column's type from the first batch, so every batch must agree.
    """
    return {"_drop": [""] * n, "_score": [NAN] * n, "_detail": [""] * n, "_mod": [""] * n}


def map_batches(ds: Dataset, fn: Callable, ctx: Context, name: str, **fn_kwargs) -> Dataset:
    """`datasets.map` in batches (multi-process for large inputs), results written to the scratch folder.

    A fresh fingerprint is passed so datasets does not hash the function and its arguments: our own
    stage cache decides reuse, and hashing large arguments costs more than the stage.
    """
    return ds.map(fn, batched=True, batch_size=ctx.batch_size, num_proc=ctx.procs(len(ds)), fn_kwargs=fn_kwargs,
                  load_from_cache_file=False, cache_file_name=ctx.scratch(name), desc=name,
                  new_fingerprint=uuid.uuid4().hex)


def with_columns(ds: Dataset, columns: dict, ctx: Context, name: str) -> Dataset:
    """Add/replace whole columns computed outside `map` (global stages: dedup, relevance)."""
    for key, values in columns.items():
        if key in ds.column_names:
            ds = ds.remove_columns(key)
        ds = ds.add_column(key, values, new_fingerprint=uuid.uuid4().hex)
    return ds


WORD = re.compile(r"\w+", re.UNICODE)
FENCE = re.compile(r"^\s*(```|~~~)")
PROMPT = re.compile(r"^\s*(\$|%|>>>|In \[\d*\]:|[\w.-]+@[\w.-]+:\S*[$#]|\w+>)\s")
CPP = re.compile(r"^\s*(#(include|define|undef|if|ifdef|ifndef|elif|else|endif|pragma)\b|#!/)")
OPTION = re.compile(r"^\s*(-{1,2}[\w?@][\w-]*|[A-Z_]{2,}=)\S*([ =,][^ ]+){0,3}\s*$")
IDENT = re.compile(r"^\s*[\w$@.:/<>\[\]-]*([_./:<\[]|[a-z][A-Z]|\(\d?\))[\w$@.:/<>\[\]()-]*\s*$")  # a lone identifier
CODE_END = re.compile(r"([;{}\]]|\)\s*[;{]?|\\|:=.*)\s*$")
COLUMN_GAP = re.compile(r"(?<![.!?:;,])\s{2,}(?=\S)")  # column-aligned table rows (not the two spaces after a sentence)
TABLE = re.compile(r"^\s*([|│┃┌┐└┘├┤┬┴┼╭╰═║╔╚╠]|\+[-=+]{3,})")
CODE_SIGN = re.compile(r"[(){}\[\];=<>|&*]|->|::|\w\.\w+\(")
SYNOPSIS = re.compile(r"[\[|]\s*-{1,2}\w")  # command grammar: `[ -v ]`, `[-a | --all]`, `| -C`


def _indent(line: str) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def _codeish(line: str) -> bool:
    """A line that reads as code wherever it stands: preprocessor, statement or brace line."""
    s = line.strip()
    return bool(CPP.match(s)) or (bool(CODE_END.search(s)) and bool(CODE_SIGN.search(s)) and
                                  not s.endswith((".)", "?)", "!)")) and len(s.split()) <= 14)


def code_lines(text: str) -> list[bool]:
    """Per line: is it code (or an option table) rather than prose?

    Fenced ``` / ~~~ blocks; table rows (markdown `|`, box drawing, `+---+`); interactive sessions (`$ `,
    `>>> `, `In [1]:` prompts and their output up to a blank line); reST `::` literal blocks; preprocessor,
    statement, brace and grammar lines; lone identifiers (`checkout.workers`, `open()`); option-table
    entries (a `--flag <arg>` or identifier line and the indented description under it); indented
    blocks that hold a code line or do not read as prose (commands, paths); paragraphs that are
    mostly code. Indented prose (quotes, poems, continued paragraphs) stays prose. Blank lines: False."""
    lines = text.split("\n")
    n = len(lines)
    code = [False] * n
    indents = [_indent(l) for l in lines]
    margin = min((indents[i] for i in range(n) if lines[i].strip()), default=0)
    in_fence = session = comment = False
    literal = None  # indent of the line that opened a reST literal block
    for i, line in enumerate(lines):
        if FENCE.match(line):
            in_fence = not in_fence
            code[i] = True
            continue
        if in_fence:
            code[i] = True
            continue
        if not line.strip():
            session = False
            continue
        ind = indents[i]
        if literal is not None:
            if ind > literal:
                code[i] = True
                continue
            literal = None
        if line.rstrip().endswith("::"):
            literal = ind
        if PROMPT.match(line) or session:  # a prompt, its continuation lines and its output
            code[i] = session = True
            continue
        opens = line.lstrip().startswith("/*")
        if comment or opens:  # a C block comment (`/* … */`, its ` * ` lines): part of the code around it
            code[i] = True
            comment = "*/" not in (line.split("/*", 1)[1] if opens else line)
            continue
        code[i] = (bool(TABLE.match(line)) or len(COLUMN_GAP.findall(line.strip())) >= 3 or _codeish(line) or bool(IDENT.match(line))
                   or (bool(OPTION.match(line)) and len(line.split()) <= 4) or len(SYNOPSIS.findall(line)) >= 2)
    # an indented block is code as a whole when it holds a code line or does not read as prose
    # (commands, paths, identifiers); indented prose (option descriptions, quotes) stays prose
    i = 0
    while i < n:
        if lines[i].strip() and indents[i] > margin and not code[i]:
            j = i
            while j < n and lines[j].strip() and indents[j] > margin:
                j += 1
            block = lines[i:j]
            head = i - 1  # an option table entry: `--flag <arg>` / `name.key` line, then its description
            while head >= 0 and (not lines[head].strip() or indents[head] >= indents[i]):
                head -= 1
            entry = head >= 0 and ((code[head] and _term(lines[head])) or _bare_term(lines[head]))
            hanging = head >= 0 and bool(HANGING.match(lines[head]))  # `EINVAL An invalid …` / its indented rest
            if entry or hanging or any(code[i:j]) or _plain_share(block) < PLAIN_PROSE:
                code[i:j] = [True] * (j - i)
                if hanging:
                    code[head] = True
            i = j
        else:
            i += 1
    # a paragraph that is mostly code lines is a code block (its wrapped argument lines included)
    i = 0
    while i < n:
        if lines[i].strip():
            j = i
            while j < n and lines[j].strip():
                j += 1
            if 2 * sum(code[i:j]) >= j - i and j - i > 1:  # ... but a sentence in it stays prose
                code[i:j] = [c or not (_plain_share([l]) >= PLAIN_PROSE and l.rstrip().endswith((".", "!", "?", ":")))
                             for c, l in zip(code[i:j], lines[i:j])]
            i = j
        else:
            i += 1
    return code


def _term(line: str) -> bool:
    """The term line of a definition list (option tables, man-page field and flag lists): `--flag <arg>`,
    `name.key`, `ru_maxrss (since Linux 2.6.32)`, `CLONE_NEWNS (since Linux 2.4.19)` — an identifier
    or option, with an annotation at most; not a sentence."""
    return bool(OPTION.match(line) or IDENT.match(line)) or (len(line.split()) <= 6 and _plain_share([line]) < PLAIN_PROSE)


def _bare_term(line: str) -> bool:
    """A term of a definition list written as plain words (`stage`, `objectmode`, `create`): short, no sentence."""
    s = line.strip()
    return len(s.split()) <= 3 and not s.endswith((".", ",", ";", ":", "!", "?"))


HANGING = re.compile(r"^\s*[A-Z][A-Z0-9_]{2,}(\s+\([^)]*\))?\s+\S")  # a man-page tag with its text on the line


PLAIN = re.compile(r"^[(\"']?[A-Za-z][a-z]*(['-][a-z]+)*[)\"']?[,.;:!?)]*$")
PLAIN_PROSE = 0.6


def _plain_share(lines: list[str]) -> float:
    """Share of tokens that are plain words (prose is mostly words; commands and code are not)."""
    toks = " ".join(lines).split()
    return sum(bool(PLAIN.match(t)) for t in toks) / max(len(toks), 1)


def prose_lines(text: str) -> list[str]:
    """The lines of `text` that are not code (see code_lines)."""
    return [l for l, c in zip(text.split("\n"), code_lines(text)) if not c and not FENCE.match(l)]


def rewrite_batch(batch: dict, fn: Callable[[str], tuple[str, set]]) -> dict:
    """Verdict columns for a stage that rewrites text: messages/text rewritten by `fn`, `_mod` says why."""
    out = verdicts(len(batch["id"]))
    out["messages"], out["text"] = list(batch["messages"]), list(batch["text"])
    for i in range(len(batch["id"])):
        msgs, text, why = rewrite(batch["messages"][i], batch["text"][i], fn)
        out["messages"][i], out["text"][i], out["_mod"][i] = msgs, text, ",".join(sorted(why))
    return out
