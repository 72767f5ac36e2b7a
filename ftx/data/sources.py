"""Reading sources: JSON Lines, JSON, CSV/TSV, Parquet, `datasets` folders, text files or a hub dataset,
with a field mapping → canonical records. Everything but JSON Lines is read by `datasets`' loaders.

A canonical record is a dict:
  id, source, role, synthetic, weight    — provenance and trust (weight None: the role's default,
                                          resolved by plan.assign_weights; trust: a per-record factor)
  messages: [{"role", "content"}, …]      — chat/prompt-response data (None for raw text)
  text: str                               — the text view that curation scores and dedups
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterator, Optional

from ftx import ASSETS
from ftx.data.ledger import Ledger
from ftx.errors import DataError
from ftx.runs import read_jsonl
from ftx.spec.data import SourceConfig



def resolve_path(path: str) -> Path:
    """`asset:demo/x.jsonl` → a file shipped inside ftx; anything else is a local path."""
    if path.startswith("asset:"):
        return ASSETS / path[len("asset:"):]
    return Path(path).expanduser()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file; of a folder, over its files' relative paths and contents (sorted)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def sources_sha256(files: list[Path]) -> str:
    if len(files) == 1:
        return file_sha256(files[0])
    return hashlib.sha256("".join(f"{f}:{file_sha256(f)}\n" for f in files).encode()).hexdigest()


# ---------------------------------------------------------------- formats

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonl.gz": "jsonl", ".ndjson.gz": "jsonl", ".json": "json",
            ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
            ".txt": "text", ".md": "text"}
READABLE = (".jsonl, .jsonl.gz, .json, .csv, .tsv, .parquet, .arrow, a datasets save_to_disk folder, "
            "a folder or glob of .txt/.md files, or a hub dataset id")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}
"""Record-level `split` values (and a DatasetDict's split names) → ftx splits; `auto` and absent: hashed."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suf in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suf):
            return suf
    return path.suffix.lower()


def _is_saved_dataset(path: Path) -> bool:
    return any((path / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _text_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".md"))


def locate(name: str, src: SourceConfig) -> tuple[str, list[Path], str]:
    """(format, files, where) of a source: the format it will be read as, its files (empty for a hub id), and
    the path as errors name it. A missing path, an unreadable format or an empty glob is a one-line DataError."""
    key = name if "." in name else f"data.sources.{name}.path"
    raw, fmt = str(src.path), str(src.format)
    setting = f"data.sources.{name}.format" if "." not in name else "format"
    if fmt == "hub":
        return "hub", [], raw
    if not raw.startswith("asset:") and glob.has_magic(raw):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(raw), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"{key}: no file matches {raw}")
        if fmt == "auto":
            found = {SUFFIXES.get(_suffix(f)) for f in files}
            if None in found or len(found) > 1:
                raise DataError(f"{key}: {raw} matches files of several or unknown formats "
                                f"({', '.join(sorted({_suffix(f) or '(none)' for f in files}))}); "
                                f"narrow the glob, or set {setting}")
            fmt = found.pop()
        return fmt, files, raw
    path = resolve_path(raw)
    if not path.exists():
        if fmt == "auto" and HUB_ID.match(raw) and _suffix(path) not in SUFFIXES:
            return "hub", [], raw
        raise DataError(f"{key}: file not found: {path}")
    if path.is_dir():
        if fmt in ("auto", "arrow") and _is_saved_dataset(path):
            return "arrow", [path], str(path)
        files = _text_files(path) if fmt in ("auto", "text") else []
        if not files:
            raise DataError(f"{key}: {path} is a directory with neither a datasets save_to_disk dataset nor "
                            ".txt/.md files (a folder source is one of those two)")
        return "text", files, str(path)
    if fmt == "auto":
        fmt = SUFFIXES.get(_suffix(path))
        if fmt is None:
            raise DataError(f"{key}: cannot read {path} ({_suffix(path) or 'no extension'}); "
                            f"readable: {READABLE} (or set {setting})")
    return fmt, [path], str(path)


def _quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _root_message(e: BaseException) -> str:
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants
        return bool(constants.HF_HUB_OFFLINE)
    except Exception:
        return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def _load_table(fmt: str, files: list[Path], where: str, key: str):
    """A datasets.Dataset, or a DatasetDict (a save_to_disk dict, a hub dataset), for a tabular source."""
    datasets = _quiet_datasets()
    try:
        if fmt == "hub":
            try:
                return datasets.load_dataset(where)
            except Exception as e:
                if _hub_offline():
                    raise DataError(f"{key}: hub dataset {where!r} is not in the local cache and this machine is "
                                    "offline (HF_HUB_OFFLINE=1); download it once online, or give a local file") from None
                raise DataError(f"{key}: hub dataset {where!r} could not be loaded ({_root_message(e)})") from None
        if fmt == "arrow":
            if files[0].is_dir():
                return datasets.load_from_disk(str(files[0]))
            return datasets.concatenate_datasets([datasets.Dataset.from_file(str(f)) for f in files])
        paths = [str(f) for f in files]
        if fmt in ("csv", "tsv"):
            import pandas as pd

            sep = "\t" if fmt == "tsv" else ","
            columns = list(pd.read_csv(paths[0], sep=sep, nrows=0).columns)
            features = datasets.Features({c: datasets.Value("string") for c in columns})  # cells as written
            return datasets.load_dataset("csv", data_files=paths, split="train", sep=sep, features=features,
                                         keep_default_na=False)
        return datasets.load_dataset(fmt, data_files=paths, split="train")
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{where}: cannot read as {fmt} ({_root_message(e)})") from None


def _check_columns(features, src: SourceConfig, name: str, where: str) -> None:
    """The mapped columns exist and hold the right type, checked once for the whole table."""
    import datasets

    f, cols = src.fields, dict(features)
    present = ", ".join(cols) or "none"
    kind = src.kind
    if kind == "auto":
        kind = ("preference" if f.chosen in cols or f.rejected in cols else "chat" if f.messages in cols else "prompt_response" if f.prompt in cols and f.response in cols
                else "text" if f.text in cols else None)
        if kind is None:
            raise DataError(f"{where}: no column {f.messages!r}, {f.prompt!r}+{f.response!r} or {f.text!r}; "
                            f"columns: {present}" + ("" if "." in name else f" (map yours with data.sources.{name}.fields.*)"))
    if kind == "preference":  # each record is checked on its own (_to_record): a prompt string or messages
        for col in (f.chosen, f.rejected):
            if col not in cols:
                raise DataError(f"{where}: a preference source needs both {f.chosen!r} and {f.rejected!r} "
                                f"columns; missing {col!r}; columns: {present}")
        if f.prompt not in cols and f.messages not in cols:
            raise DataError(f"{where}: a preference source needs a {f.prompt!r} or {f.messages!r} column; "
                            f"columns: {present}")
        return
    needed = {"chat": [f.messages], "prompt_response": [f.prompt, f.response], "text": [f.text]}[kind]
    for col in needed:
        if col not in cols:
            raise DataError(f"{where}: missing column {col!r}; columns: {present}")
        feat = cols[col]
        if kind == "chat":
            ok = isinstance(feat, (datasets.Sequence, datasets.List, list)) or type(feat).__name__ == "LargeList"
        else:
            ok = isinstance(feat, datasets.Value) and feat.dtype in ("string", "large_string")
        if not ok:
            want = "a list of {role, content}" if kind == "chat" else "string"
            got = feat.dtype if isinstance(feat, datasets.Value) else type(feat).__name__
            raise DataError(f"{where}: column {col!r} is {got}, expected {want}")


def _rows(name: str, src: SourceConfig, fmt: str, files: list[Path], where: str, key: str) -> Iterator[tuple]:
    """(where, object, default id, split from the container) for each record of a non-JSONL source."""
    if fmt == "text":
        datasets = _quiet_datasets()
        try:
            ds = datasets.load_dataset("text", data_files=[str(f) for f in files], split="train", sample_by="document")
        except Exception as e:
            bad = next((f for f in files if not _utf8(f)), None)
            raise DataError(f"{bad}: not valid UTF-8; re-encode the file as UTF-8" if bad else
                            f"{where}: cannot read as text ({_root_message(e)})") from None
        base = Path(where) if Path(where).is_dir() else Path(os.path.commonpath([str(f.parent) for f in files]))
        for f, row in zip(files, ds):
            rel = f.relative_to(base).as_posix() if f.is_relative_to(base) else str(f)
            yield str(f), {src.fields.text: row["text"]}, f"{name}:{rel}", None
        return
    table = _load_table(fmt, files, where, key)
    parts = list(table.items()) if hasattr(table, "keys") and not hasattr(table, "features") else [(None, table)]
    for part, ds in parts:
        at = where if part is None else f"{where}[{part}]"
        _check_columns(ds.features, src, name, at)
        for i, row in enumerate(ds, start=1):
            yield f"{at}:row {i}", row, f"{name}:{i}" if part is None else f"{name}:{part}:{i}", \
                SPLIT_NAMES.get(part) if part else None


def _utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def text_view(messages: Optional[list], text: Optional[str]) -> str:
    if messages:
        return "\n".join(m["content"] for m in messages)
    return text or ""


ROLES = ("system", "user", "assistant")
SHAREGPT = {"human": "user", "gpt": "assistant", "system": "system"}
"""ShareGPT's `{"from", "value"}` turns (e.g. fields.messages=conversations): its speaker names → roles."""


def _messages(msgs, field: str, where: str) -> list[dict]:
    """A chat record's turns as [{role, content}]: OpenAI-style {role, content}, or ShareGPT-style
    {from, value} with human/gpt/system; any other shape or role is a DataError naming the turn."""
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: field {field!r} must be a non-empty list of {{role, content}} objects")
    out = []
    for i, m in enumerate(msgs, start=1):
        if isinstance(m, dict) and "role" not in m and "from" in m and "value" in m:  # ShareGPT
            m = {"role": SHAREGPT.get(m["from"], m["from"]), "content": m["value"]}
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise DataError(f"{where}: field {field!r}, turn {i}: expected a {{role, content}} object with string "
                            f"values (or ShareGPT's {{from, value}}), got {json.dumps(m)[:80]}")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: field {field!r}, turn {i}: role {m['role']!r} is not one of "
                            f"{', '.join(ROLES)} (ShareGPT's human/gpt are read as user/assistant)")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _reply(value, key: str, where: str) -> str:
    """One side of a pair: a string, or a single assistant message (TRL's conversational form)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("content") if value[0].get("role", "assistant") == "assistant" else None
    if isinstance(value, dict):
        value = value.get("content") if value.get("role", "assistant") == "assistant" else None
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be the reply as a string or one assistant message "
                        f"{{role: assistant, content}}, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field {key!r} is empty; a preference pair needs two non-empty replies")
    return value


def _preference(obj: dict, f, where: str) -> tuple[list, str]:
    """A preference pair → (prompt messages + the chosen reply, the rejected reply). The pair is one record,
    so it is curated, split and decontaminated as one: it can never straddle splits."""
    missing = [k for k in (f.chosen, f.rejected) if obj.get(k) is None]
    if missing:
        raise DataError(f"{where}: preference record without {' and '.join(repr(k) for k in missing)}; a pair "
                        f"needs both {f.chosen!r} and {f.rejected!r} (fields present: {', '.join(sorted(obj))})")
    chosen, rejected = _reply(obj[f.chosen], f.chosen, where), _reply(obj[f.rejected], f.rejected, where)
    if chosen.strip() == rejected.strip():
        raise DataError(f"{where}: {f.chosen!r} and {f.rejected!r} are the same text; a preference pair must "
                        "differ (drop the record, or keep it as SFT data with a 'response' field)")
    if isinstance(obj.get(f.prompt), str) and obj[f.prompt].strip():
        prompt = []
        if f.system and isinstance(obj.get(f.system), str):
            prompt.append({"role": "system", "content": obj[f.system]})
        prompt.append({"role": "user", "content": obj[f.prompt]})
    elif isinstance(obj.get(f.messages), list) and obj[f.messages]:
        prompt = _messages(obj[f.messages], f.messages, where)
        if prompt[-1]["role"] == "assistant":
            raise DataError(f"{where}: field {f.messages!r} of a preference pair is the conversation before the "
                            f"reply, so its last message cannot be the assistant's ({f.chosen!r}/{f.rejected!r} "
                            "are the replies)")
    else:
        raise DataError(f"{where}: preference record without a prompt: give {f.prompt!r} (a string) or "
                        f"{f.messages!r} (the conversation before the reply)")
    return prompt + [{"role": "assistant", "content": chosen}], rejected


def _to_record(obj: dict, src: SourceConfig, name: str, where: str) -> dict:
    f = src.fields
    kind = src.kind
    if kind == "auto":
        if f.chosen in obj or f.rejected in obj:
            kind = "preference"
        elif f.messages in obj:
            kind = "chat"
        elif f.prompt in obj and f.response in obj:
            kind = "prompt_response"
        elif f.text in obj:
            kind = "text"
        else:
            hint = f" (ShareGPT turns? set data.sources.{name}.fields.messages=conversations)" \
                if "conversations" in obj and "." not in name else \
                ("" if "." in name else f" (map yours with data.sources.{name}.fields.*)")
            raise DataError(f"{where}: no field {f.messages!r}, {f.prompt!r}+{f.response!r} or {f.text!r}; "
                            f"fields present: {', '.join(sorted(obj)) or 'none'}" + hint)
    messages = None
    text = None
    rejected = None
    if kind == "preference":
        messages, rejected = _preference(obj, f, where)
    elif kind == "chat":
        messages = _messages(obj.get(f.messages), f.messages, where)
    elif kind == "prompt_response":
        for key in (f.prompt, f.response):
            if key not in obj:
                raise DataError(f"{where}: missing field {key!r}; fields present: {', '.join(sorted(obj))}")
            if not isinstance(obj[key], str):
                raise DataError(f"{where}: field {key!r} must be a string, got {type(obj[key]).__name__}")
        messages = []
        if f.system and isinstance(obj.get(f.system), str):
            messages.append({"role": "system", "content": obj[f.system]})
        messages += [{"role": "user", "content": obj[f.prompt]},
                     {"role": "assistant", "content": obj[f.response]}]
    else:
        if f.text not in obj:
            raise DataError(f"{where}: missing field {f.text!r}; fields present: {', '.join(sorted(obj))}")
        if not isinstance(obj[f.text], str):
            raise DataError(f"{where}: field {f.text!r} must be a string, got {type(obj[f.text]).__name__}")
        text = obj[f.text]
    rid = obj.get(f.id) if f.id else None
    declared = obj.get(f.split) if f.split else None
    if declared is not None and declared != "auto" and declared != "":
        if not isinstance(declared, str) or declared.lower() not in SPLIT_NAMES:
            raise DataError(f"{where}: field {f.split!r} must be one of auto, {', '.join(SPLIT_NAMES)}; got {declared!r}")
    synthetic = bool(src.synthetic or src.role == "synthetic" or obj.get("synthetic", False))
    rec = {"id": str(rid) if rid is not None else None, "source": name, "role": src.role,
           "synthetic": synthetic, "weight": None if src.weight is None else float(src.weight),
           "messages": messages, "text": text}
    if rejected is not None:
        rec["rejected"] = rejected
    if str(src.split) != "auto":
        rec["split"] = str(src.split)
    elif declared not in (None, "", "auto"):
        rec["split"] = SPLIT_NAMES[declared.lower()]
    if f.weight:
        trust = obj.get(f.weight, 1.0)
        if isinstance(trust, bool) or not isinstance(trust, (int, float)) or trust < 0:
            raise DataError(f"{where}: field {f.weight!r} (data.sources.{name}.fields.weight) must be a number >= 0, "
                            f"got {trust!r}")
        rec["trust"] = float(trust)
    # Pre-computed scores/clusters (e.g. from an earlier curation) travel with the record.
    if isinstance(obj.get("scores"), dict):
        rec["scores"] = {k: float(v) for k, v in obj["scores"].items() if isinstance(v, (int, float))}
    if isinstance(obj.get("cluster"), (str, int)):
        rec["cluster"] = str(obj["cluster"])
    for extra in ("label", "labels", "category", "intent", "source_id", "answers", "rater", "review_id"):
        if extra in obj:
            rec[extra] = obj[extra]
    return rec


def read_source(name: str, src: SourceConfig, ledger: Optional[Ledger] = None,
                located: Optional[tuple] = None) -> Iterator[dict]:
    """Yield canonical records; bad records stop with file:line (file:row), or land in the ledger (skip)."""
    key = name if "." in name else f"data.sources.{name}.path"  # curation passes its own key (seeds, dev…)
    fmt, files, where = located or locate(name, src)
    stage = "load"
    n = 0
    skip = src.on_bad_record == "skip" and ledger is not None

    def bad(rid: str, e: Exception) -> None:
        if src.max_records is not None and n >= src.max_records:
            return  # past the cap: not read, as if the loop had stopped there
        ledger.record_in(stage, 1)
        ledger.drop(stage, "bad_record", {"id": rid, "source": name}, detail=str(e))

    def jsonl_rows():
        for path in files:
            on_error = (lambda lineno, e, p=path: bad(f"{name}:{lineno}" if len(files) == 1 else f"{name}:{p.name}:{lineno}", e))
            for lineno, obj in read_jsonl(path, on_error=on_error if skip else None):
                yield f"{path}:{lineno}", obj, (f"{name}:{lineno}" if len(files) == 1 else f"{name}:{path.name}:{lineno}"), None

    rows = jsonl_rows() if fmt == "jsonl" else _rows(name, src, fmt, files, where, key)
    for at, obj, default_id, container_split in rows:
        if src.max_records is not None and n >= src.max_records:
            break
        try:
            rec = _to_record(obj, src, name, at)
        except DataError as e:
            if not skip:
                raise
            bad(default_id, e)
            continue
        if rec["id"] is None:
            rec["id"] = default_id
        if container_split and "split" not in rec:
            rec["split"] = container_split
        n += 1
        if ledger is not None:
            ledger.record_in(stage, 1)
            ledger.keep(stage)
        yield rec
    if n == 0:
        raise DataError(f"{key}: {where} holds no records (empty file"
                        f"{' or every line was bad' if src.on_bad_record == 'skip' else ''})")


def absolutize(sources: dict, cwd: Optional[Path] = None) -> dict:
    """Make every local relative source path absolute (against `cwd`, the folder the run started in), so a
    run directory stands alone; `asset:` paths and hub ids stay. Returns {name: path as written} of those
    changed, kept on each source as `path_as_written` for the lineage."""
    cwd = Path(cwd or os.getcwd())
    changed = {}
    for name, src in sources.items():
        raw = str(src.path)
        if raw.startswith("asset:") or str(src.format) == "hub":
            continue
        expanded = Path(os.path.expanduser(raw))
        if expanded.is_absolute() and raw == str(expanded):
            continue
        if not expanded.is_absolute() and not (cwd / expanded).exists() and not glob.has_magic(raw) \
                and HUB_ID.match(raw) and _suffix(expanded) not in SUFFIXES:
            continue  # a hub id
        src.path = str(expanded if expanded.is_absolute() else (cwd / expanded).absolute())
        src.path_as_written = raw
        changed[name] = raw
    return changed


def load_sources(sources: dict, ledger: Optional[Ledger] = None) -> tuple[list[dict], dict]:
    """All records of all sources, plus {name: {path, sha256, records}} for lineage."""
    records: list[dict] = []
    lineage: dict = {}
    for name, src in sources.items():
        if not getattr(src, "enabled", True):
            continue
        located = locate(name, src)
        recs = list(read_source(name, src, ledger, located))
        fmt, files, where = located
        lineage[name] = {"path": str(src.path), "format": fmt, "records": len(recs), "role": src.role,
                         "sha256": sources_sha256(files) if files else None}
        as_written = getattr(src, "path_as_written", None)
        if as_written and as_written != str(src.path):
            lineage[name]["path_as_written"] = as_written
        if str(src.split) != "auto":
            lineage[name]["split"] = str(src.split)
        records.extend(recs)
    seen: dict = {}
    for rec in records:
        if rec["id"] in seen:
            rec["id"] = f"{rec['source']}:{rec['id']}"
        seen[rec["id"]] = True
    return records, lineage


def carry_answers(sources: dict) -> bool:
    """Whether any enabled domain source's records carry accepted `answers` (what objective.metric=auto keys
    on before a sweep starts; a run decides on its own held-out records)."""
    for name, src in sources.items():
        if getattr(src, "enabled", True) and src.role != "general":
            if any(r.get("answers") for r in read_source(name, src, None)):
                return True
    return False
