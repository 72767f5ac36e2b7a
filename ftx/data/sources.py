"""Reading sources: JSON Lines with a field mapping → canonical records.

A canonical record is a dict:
  id, source, role, synthetic, weight    — provenance and trust (weight None: the role's default,
                                          resolved by plan.assign_weights; trust: a per-record factor)
  messages: [{"role", "content"}, …]      — chat/prompt-response data (None for raw text)
  text: str                               — the text view that curation scores and dedups
"""

from __future__ import annotations

import hashlib
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
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def text_view(messages: Optional[list], text: Optional[str]) -> str:
    if messages:
        return "\n".join(m["content"] for m in messages)
    return text or ""


def _to_record(obj: dict, src: SourceConfig, name: str, where: str) -> dict:
    f = src.fields
    kind = src.kind
    if kind == "auto":
        if f.messages in obj:
            kind = "chat"
        elif f.prompt in obj and f.response in obj:
            kind = "prompt_response"
        elif f.text in obj:
            kind = "text"
        else:
            raise DataError(f"{where}: no field {f.messages!r}, {f.prompt!r}+{f.response!r} or {f.text!r}; "
                            f"fields present: {', '.join(sorted(obj)) or 'none'}"
                            + ("" if "." in name else f" (map yours with data.sources.{name}.fields.*)"))
    messages = None
    text = None
    if kind == "chat":
        msgs = obj.get(f.messages)
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in msgs):
            raise DataError(f"{where}: field {f.messages!r} must be a non-empty list of "
                            "{{role, content}} objects")
        messages = [{"role": m["role"], "content": m["content"]} for m in msgs]
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
    synthetic = bool(src.synthetic or src.role == "synthetic" or obj.get("synthetic", False))
    rec = {"id": str(rid) if rid is not None else None, "source": name, "role": src.role,
           "synthetic": synthetic, "weight": None if src.weight is None else float(src.weight),
           "messages": messages, "text": text}
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
    for extra in ("label", "labels", "category", "intent", "source_id", "answers"):
        if extra in obj:
            rec[extra] = obj[extra]
    return rec


def read_source(name: str, src: SourceConfig, ledger: Optional[Ledger] = None) -> Iterator[dict]:
    """Yield canonical records; bad lines stop with file:line, or land in the ledger (skip)."""
    path = resolve_path(src.path)
    key = name if "." in name else f"data.sources.{name}.path"  # curation passes its own key (seeds, dev…)
    if not path.exists():
        raise DataError(f"{key}: file not found: {path}")
    if path.is_dir():
        raise DataError(f"{key}: {path} is a directory, expected a .jsonl file")
    stage = "load"
    n = 0
    skip = src.on_bad_record == "skip" and ledger is not None

    def bad(lineno: int, e: Exception) -> None:
        if src.max_records is not None and n >= src.max_records:
            return  # past the cap: not read, as if the loop had stopped there
        ledger.record_in(stage, 1)
        ledger.drop(stage, "bad_record", {"id": f"{name}:{lineno}", "source": name}, detail=str(e))

    for lineno, obj in read_jsonl(path, on_error=bad if skip else None):
        if src.max_records is not None and n >= src.max_records:
            break
        try:
            rec = _to_record(obj, src, name, f"{path}:{lineno}")
        except DataError as e:
            if not skip:
                raise
            bad(lineno, e)
            continue
        if rec["id"] is None:
            rec["id"] = f"{name}:{lineno}"
        n += 1
        if ledger is not None:
            ledger.record_in(stage, 1)
            ledger.keep(stage)
        yield rec
    if n == 0:
        raise DataError(f"{key}: {path} holds no records (empty file"
                        f"{' or every line was bad' if src.on_bad_record == 'skip' else ''})")


def load_sources(sources: dict, ledger: Optional[Ledger] = None) -> tuple[list[dict], dict]:
    """All records of all sources, plus {name: {path, sha256, records}} for lineage."""
    records: list[dict] = []
    lineage: dict = {}
    for name, src in sources.items():
        if not getattr(src, "enabled", True):
            continue
        recs = list(read_source(name, src, ledger))
        path = resolve_path(src.path)
        lineage[name] = {"path": str(src.path), "sha256": file_sha256(path), "records": len(recs),
                         "role": src.role}
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
