"""Stage `semantic_dedup`: paraphrases removed on sentence embeddings (off unless listed in `curation.stages`).

Records are embedded (ftx.data.curate.embed: MiniLM by default, cached per text), scikit-learn's
`NearestNeighbors(metric="cosine")` finds every pair within `radius` (cosine distance), and
representatives are chosen greedily in preference order (`keep: first|longest`, as near_dedup): each
record not yet assigned is kept and its unassigned neighbours within the radius are assigned to it, so a
record is only ever dropped for a kept record it is itself close to (no chaining). A drop names its
representative and their cosine similarity; `action: tag` keeps them all with the representative's
cluster id, so the splitter keeps paraphrases in one split.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import numpy as np

from ftx.data.curate import embed as embed_mod
from ftx.data.curate.near_dedup import assign
from ftx.data.curate.table import Context, column, texts, verdicts, with_columns
from ftx.spec.curation import CurationConfig

VERSION = "1"
KEY = "curation.semantic_dedup.embedding_model"


def pairs_within(vectors: np.ndarray, radius: float) -> list[tuple[int, int, float]]:
    """(i, j, cosine similarity) for every i < j within `radius` cosine distance (sklearn radius neighbours)."""
    from sklearn.neighbors import NearestNeighbors

    if len(vectors) < 2:
        return []
    nn = NearestNeighbors(radius=radius, metric="cosine").fit(vectors)
    dist, idx = nn.radius_neighbors(vectors, return_distance=True)
    out = []
    for i, (d, js) in enumerate(zip(dist, idx)):
        out += [(i, int(j), float(1.0 - dj)) for j, dj in zip(js, d) if j > i]
    return out


def fingerprint(cfg: CurationConfig) -> dict:
    c = cfg.semantic_dedup
    model = str(embed_mod.model_path(c.embedding_model, KEY))
    return {"version": VERSION, "model": model, "bf16": embed_mod.use_bf16(c.embedding_precision),
            **{k: v for k, v in asdict(c).items() if k not in ("embedding_batch_size", "embedding_threads")}}


def run(ds, cfg: CurationConfig, ctx: Context):
    c = cfg.semantic_dedup
    text_list = texts({"messages": column(ds, "messages"), "text": column(ds, "text")})
    ids, clusters = column(ds, "id"), column(ds, "cluster")
    n = len(ids)
    vectors = embed_mod.embed(text_list, c.embedding_model, c.embedding_batch_size, c.embedding_precision,
                              c.embedding_threads, key=KEY)
    pairs = pairs_within(vectors, c.radius)
    order = sorted(range(n), key=lambda i: (-len(text_list[i]), i)) if c.keep == "longest" else list(range(n))
    assigned = assign(n, pairs, order)
    out = verdicts(n)
    out["cluster"] = list(clusters)
    for i, (rep, sim) in assigned.items():
        cid = clusters[rep] or "s" + hashlib.sha1(ids[rep].encode("utf-8")).hexdigest()[:16]
        out["cluster"][rep] = out["cluster"][i] = cid
        if c.action == "drop":
            out["_drop"][i], out["_score"][i] = "semantic_duplicate", sim
            out["_detail"][i] = f"semantic duplicate of {ids[rep]} (cosine {sim:.3f} >= {1 - c.radius:.3f})"
    return with_columns(ds, out, ctx, "semantic_dedup"), {
        "pairs_within_radius": len(pairs), "assigned": len(assigned),
        "dropped": sum(1 for d in out["_drop"] if d)}
