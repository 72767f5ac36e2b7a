"""Stage cache: a stage's output is stored under a key of (its input's key, stage name, stage config).

The first stage's input key is a hash of the records; every later stage's input key is the key of
the stage before it. Changing stage k therefore changes the keys of k and everything after it, and
stages before k are read back from disk (memory-mapped Arrow via `datasets.load_from_disk`) with
their ledger entries replayed. Entries are written to a temporary folder and renamed into place,
so a crash never leaves half an entry; the least recently used entries beyond `KEEP` per stage
are pruned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ftx.runs import read_jsonl

log = logging.getLogger(__name__)
KEEP = 8
FORMAT = "2"  # 2: an unset weight is stored as NaN (was 1.0), so older entries must not be reused


def records_key(records: Iterable[dict]) -> str:
    h = hashlib.sha256(f"ftx-curation-input:{FORMAT}".encode())
    for r in records:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:32]


def stage_key(parent: str, stage: str, fingerprint: dict) -> str:
    material = json.dumps({"parent": parent, "stage": stage, "config": fingerprint, "format": FORMAT},
                          sort_keys=True, default=str)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


@dataclass
class Entry:
    data: object
    """The kept rows (a datasets.Dataset)."""
    drops: list
    """Ledger drop entries: {reason, score, detail, record}."""
    meta: dict
    """modified counts, artifacts, timings."""


class StageCache:
    def __init__(self, root: Optional[str]):
        self.root = Path(root).expanduser() if root else None

    def _dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def load(self, stage: str, key: str) -> Optional[Entry]:
        if self.root is None:
            return None
        d = self._dir(stage, key)
        if not (d / "meta.json").is_file():
            return None
        try:
            from datasets import Dataset, Features, load_from_disk

            meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
            drops = [obj for _, obj in read_jsonl(d / "drops.jsonl")]
            if meta["kept"] == 0:  # datasets cannot reload a zero-row table: rebuild it from its schema
                features = Features.from_dict(meta["features"])
                data = Dataset.from_dict({k: [] for k in features}, features=features)
            else:
                data = load_from_disk(str(d / "data"))
        except Exception as e:  # noqa: BLE001 -- an unreadable entry is recomputed, never fatal
            log.warning("curation cache: ignoring unreadable entry %s (%s)", d, e)
            return None
        os.utime(d / "meta.json")
        return Entry(data, drops, meta)

    def save(self, stage: str, key: str, entry: Entry) -> None:
        if self.root is None:
            return
        final = self._dir(stage, key)
        tmp = final.parent / f".tmp-{key}-{os.getpid()}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if len(entry.data):
                entry.data.save_to_disk(str(tmp / "data"))
            entry.meta["features"] = entry.data.features.to_dict()
            with open(tmp / "drops.jsonl", "w", encoding="utf-8") as f:
                for d in entry.drops:
                    f.write(json.dumps(d, ensure_ascii=False, default=str) + "\n")
            (tmp / "meta.json").write_text(json.dumps(entry.meta, default=str), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except OSError as e:  # a full or read-only disk must not fail the run: the cache is an optimisation
            log.warning("curation cache: could not write %s (%s)", final, e)
            shutil.rmtree(tmp, ignore_errors=True)
            return
        self._prune(final.parent)

    def _prune(self, stage_dir: Path) -> None:
        entries = sorted((p for p in stage_dir.iterdir() if (p / "meta.json").is_file()),
                         key=lambda p: (p / "meta.json").stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
