"""Data versions: a content-addressed id for a curated dataset, and `ftx data diff A B`.

The version id hashes every curated record's content (id → hash of its canonical JSON, without the
scores and clusters curation derives) together with the curation config, so the same records curated
the same way always get the same id, and any changed, added or removed record gives a new one.
`version.json` (in a run's data/ folder and in `ftx curate --out` folders) keeps the per-record
hashes, which is what `ftx data diff` compares.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from ftx.errors import ConfigError, DataError
from ftx.runs import read_jsonl
from ftx.runs import write_json

DERIVED = ("scores", "cluster")
"""Fields curation computes from the content; they would change the hash without changing the data."""
FILE = "version.json"


def record_hash(rec: dict) -> str:
    body = {k: v for k, v in rec.items() if k not in DERIVED}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:16]


def config_hash(curation: Optional[dict]) -> str:
    """Hash of the curation settings that decide the output (the cache location does not)."""
    body = {k: v for k, v in (curation or {}).items() if k not in ("cache_dir", "num_proc", "batch_size")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def compute(records: list[dict], curation: Optional[dict]) -> dict:
    """{id, records, curation_hash, hashes: {record id: content hash}} for curated records."""
    hashes = {str(r["id"]): record_hash(r) for r in records}
    if len(hashes) != len(records):
        raise DataError("data version: record ids are not unique (give each record an id)")
    cfg = config_hash(curation)
    h = hashlib.sha256(cfg.encode())
    for rid in sorted(hashes):
        h.update(f"\n{rid}\t{hashes[rid]}".encode())
    return {"id": "dv-" + h.hexdigest()[:12], "records": len(hashes), "curation_hash": cfg, "hashes": hashes}


def write(out_dir: Path, version: dict) -> None:
    write_json(Path(out_dir) / FILE, version)


def load(path: str | Path) -> dict:
    """A version from a run dir (data/version.json), a curate output dir (version.json, or kept.jsonl
    + config.yaml when older), or a version.json file."""
    p = Path(path)
    for cand in (p, p / FILE, p / "data" / FILE):
        if cand.is_file() and cand.name == FILE:
            return json.loads(cand.read_text(encoding="utf-8"))
    kept = p / "kept.jsonl"
    if kept.is_file():
        from omegaconf import OmegaConf

        cfg = p / "config.yaml"
        curation = OmegaConf.to_container(OmegaConf.load(cfg)).get("curation") if cfg.is_file() else None
        recs = [obj for _, obj in read_jsonl(kept)]
        return compute(recs, curation)
    raise ConfigError(f"ftx data diff: {path} holds no data version (expected a run dir with data/{FILE}, "
                      f"an `ftx curate --out` dir, or a {FILE} file)")


def diff(a: dict, b: dict) -> dict:
    ha, hb = a["hashes"], b["hashes"]
    return {"added": sorted(set(hb) - set(ha)), "removed": sorted(set(ha) - set(hb)),
            "changed": sorted(k for k in set(ha) & set(hb) if ha[k] != hb[k]),
            "unchanged": sum(1 for k in set(ha) & set(hb) if ha[k] == hb[k]),
            "curation_changed": a.get("curation_hash") != b.get("curation_hash")}


