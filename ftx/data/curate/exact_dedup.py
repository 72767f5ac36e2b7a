"""Stage `exact_dedup`: drop records whose normalised text equals an earlier record's.

Normalised = casefolded (optional), punctuation removed (optional), whitespace collapsed. The
first record in input order is kept; each duplicate names it. Kept records get a content cluster
id (unless an earlier stage already set one) so the splitter keeps equal content in one split.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict

from ftx.data.curate.table import Context, column, map_batches, texts, verdicts, with_columns
from ftx.spec.curation import CurationConfig

VERSION = "1"
PUNCT = re.compile(r"[^\w\s]")


def key(text: str, lowercase: bool, ignore_punctuation: bool) -> str:
    if lowercase:
        text = text.casefold()
    if ignore_punctuation:
        text = PUNCT.sub(" ", text)
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()


def _keys(batch: dict, lowercase: bool, ignore_punctuation: bool) -> dict:
    return {"_key": [key(t, lowercase, ignore_punctuation) for t in texts(batch)]}


def fingerprint(cfg: CurationConfig) -> dict:
    return {"version": VERSION, **asdict(cfg.exact_dedup)}


def run(ds, cfg: CurationConfig, ctx: Context):
    c = cfg.exact_dedup
    keyed = map_batches(ds, _keys, ctx, "exact_dedup", lowercase=c.lowercase, ignore_punctuation=c.ignore_punctuation)
    keys, ids, clusters = column(keyed, "_key"), column(keyed, "id"), column(keyed, "cluster")
    out = verdicts(len(keys))
    first: dict[str, str] = {}
    for i, k in enumerate(keys):
        if k in first:
            out["_drop"][i], out["_score"][i] = "exact_duplicate", 1.0
            out["_detail"][i] = f"duplicate of {first[k]}"
        else:
            first[k] = ids[i]
    out["cluster"] = [c or f"x{k[:16]}" for c, k in zip(clusters, keys)]
    dups = sum(1 for d in out["_drop"] if d)
    return with_columns(keyed.remove_columns("_key"), out, ctx, "exact_dedup"), {"duplicates": dups,
                                                                                 "distinct": len(first)}
