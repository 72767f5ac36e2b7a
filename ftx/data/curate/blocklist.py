"""Stage `blocklist`: drop records containing a listed term (safety / compliance).

Terms match as whole words, case-insensitively; multi-word terms match across any whitespace.
The drop names the term that matched.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from functools import lru_cache

from ftx.data.curate.table import Context, map_batches, texts, verdicts
from ftx.data.sources import file_sha256, resolve_path
from ftx.errors import DataError
from ftx.spec.curation import CurationConfig

VERSION = "1"


def load_terms(cfg: CurationConfig) -> list[str]:
    terms = [t.strip() for t in cfg.blocklist.terms if t.strip()]
    for i, f in enumerate(cfg.blocklist.files):
        path = resolve_path(f)
        if not path.is_file():
            raise DataError(f"curation.blocklist.files[{i}]: file not found: {path}")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                terms.append(line)
    return sorted(set(terms), key=lambda t: (-len(t), t))


@lru_cache(maxsize=4)
def _regex(terms: tuple) -> re.Pattern:
    alts = "|".join(r"\s+".join(re.escape(w) for w in t.split()) for t in terms)
    return re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)


def _batch(batch: dict, terms: list) -> dict:
    n = len(batch["id"])
    out = verdicts(n)
    if not terms:
        return out
    rx = _regex(tuple(terms))
    for i, t in enumerate(texts(batch)):
        m = rx.search(t)
        if m:
            out["_drop"][i], out["_detail"][i] = "blocklist", f"matched {' '.join(m.group(0).split())!r}"
    return out


def fingerprint(cfg: CurationConfig) -> dict:
    files = {f: file_sha256(resolve_path(f)) for f in cfg.blocklist.files if resolve_path(f).is_file()}
    return {"version": VERSION, **asdict(cfg.blocklist), "file_hashes": files}


def run(ds, cfg: CurationConfig, ctx: Context):
    terms = load_terms(cfg)
    return map_batches(ds, _batch, ctx, "blocklist", terms=terms), {"terms": len(terms)}
