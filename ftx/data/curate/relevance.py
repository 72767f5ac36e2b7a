"""Stage `relevance`: score every record against the domain seeds; drop those below the threshold.

The threshold is absolute, the top k, or calibrated on a labelled dev set: the lowest score whose
dev precision reaches `target_precision` (sklearn's precision_recall_curve; the curve is saved).
The N records nearest the threshold are exported for labelling (active learning); labelled
exports come back through `feedback`: positives join the seeds, every labelled row the dev set.
Only records whose role is in `roles` can be dropped; others (general data) are scored and kept.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Optional

import numpy as np

from ftx.data.curate import scorers
from ftx.data.curate.table import Context, column, texts, verdicts, with_columns
from ftx.data.sources import file_sha256, read_source, resolve_path, text_view
from ftx.errors import DataError
from ftx.spec.curation import CurationConfig, RelevanceConfig
from ftx.spec.data import SourceConfig
from ftx.data.curate.embed import use_bf16

VERSION = "1"
POSITIVE = {"1", "true", "yes", "relevant", "domain", "in", "pos", "positive"}
NEGATIVE = {"0", "false", "no", "irrelevant", "off", "off_domain", "out", "neg", "negative"}


def _files(cfg: RelevanceConfig) -> dict:
    return {"seeds": cfg.seeds, "background": cfg.background, "dev": cfg.dev, "feedback": cfg.feedback}


def _read(path: str, key: str) -> list[dict]:
    if not resolve_path(path).is_file():
        raise DataError(f"{key}: file not found: {resolve_path(path)}")
    return list(read_source(key, SourceConfig(path=path)))


def _label(rec: dict, key: str):
    v = rec.get("label")
    if v is None:
        return None
    s = str(v).strip().lower()
    if s in POSITIVE:
        return 1
    if s in NEGATIVE:
        return 0
    raise DataError(f"{key}: record {rec['id']}: label {v!r} is not a label (use 1/0, true/false, "
                    "relevant/irrelevant; null = unlabelled)")


def load_sets(cfg: RelevanceConfig) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """(seed texts, background texts, labelled dev pairs) from the configured files."""
    seeds, background, dev = [], [], []
    for i, p in enumerate(cfg.seeds):
        seeds += [text_view(r["messages"], r["text"]) for r in _read(p, f"curation.relevance.seeds[{i}]")]
    for i, p in enumerate(cfg.background):
        background += [text_view(r["messages"], r["text"]) for r in _read(p, f"curation.relevance.background[{i}]")]
    for name in ("dev", "feedback"):
        for i, p in enumerate(getattr(cfg, name)):
            key = f"curation.relevance.{name}[{i}]"
            for r in _read(p, key):
                y = _label(r, key)
                if y is None:
                    continue
                t = text_view(r["messages"], r["text"])
                dev.append((t, y))
                if name == "feedback" and y == 1:
                    seeds.append(t)
    return seeds, background, dev


def wilson_lower(successes: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion."""
    from scipy.stats import norm

    z = norm.ppf(confidence)
    n = np.maximum(n, 1)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def calibrate(scores: np.ndarray, labels: np.ndarray, target: float,
              confidence: Optional[float] = None) -> tuple[float, dict]:
    """Lowest threshold (max recall) whose dev precision — or its Wilson lower bound at `confidence` —
    reaches the target."""
    from sklearn.metrics import precision_recall_curve

    if labels.sum() == 0 or labels.sum() == len(labels):
        raise DataError("curation.relevance.dev: the dev set needs both relevant (1) and irrelevant (0) labels "
                        f"(got {int(labels.sum())} of {len(labels)} relevant)")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    predicted = np.array([(scores >= t).sum() for t in thresholds])
    bound = precision[:-1] if confidence is None else \
        wilson_lower(np.rint(precision[:-1] * predicted), predicted, confidence)
    ok = np.flatnonzero(bound >= target)
    if not len(ok):
        best = int(np.argmax(bound))
        how = "precision" if confidence is None else f"precision lower bound at confidence {confidence}"
        raise DataError(f"curation.relevance.threshold.target_precision={target} is not reachable on the dev set "
                        f"({len(labels)} labelled; best {how} {bound[best]:.3f} at score {thresholds[best]:.3f}); "
                        "lower the target or threshold.confidence, or label more dev records")
    i = ok[np.argmax(recall[:-1][ok])]
    curve = {"precision": precision.tolist(), "recall": recall.tolist(), "thresholds": thresholds.tolist()}
    return float(thresholds[i]), curve


def dev_metrics(scores: np.ndarray, labels: np.ndarray, t: float) -> dict:
    pred = scores >= t
    tp = int((pred & (labels == 1)).sum())
    return {"n": int(len(labels)), "relevant": int(labels.sum()), "predicted_relevant": int(pred.sum()),
            "precision": tp / max(int(pred.sum()), 1), "recall": tp / max(int(labels.sum()), 1)}


def fingerprint(cfg: CurationConfig) -> dict:
    hashes = {k: [file_sha256(resolve_path(p)) if resolve_path(p).is_file() else None for p in v]
              for k, v in _files(cfg.relevance).items()}
    fp = {"version": VERSION, **asdict(cfg.relevance), "file_hashes": hashes}
    if "embedding" in (cfg.relevance.scorer, cfg.relevance.features):
        fp["bf16"] = use_bf16(cfg.relevance.embedding_precision)  # "auto" resolves per machine
    return fp


def run(ds, cfg: CurationConfig, ctx: Context):
    r, t = cfg.relevance, cfg.relevance.threshold
    seeds, background, dev = load_sets(r)
    corpus = texts({"messages": column(ds, "messages"), "text": column(ds, "text")})
    scorer = scorers.fit(r, seeds, corpus, background)
    scores = scorer(corpus)
    applies = np.array([role in r.roles for role in column(ds, "role")], dtype=bool)
    art: dict = {"scorer": scorer.describe(), "mode": t.mode}
    dev_s = scorer([x for x, _ in dev]) if dev else np.zeros(0)
    dev_y = np.array([y for _, y in dev], dtype=int)
    if t.mode == "calibrated":
        threshold, art["pr_curve"] = calibrate(dev_s, dev_y, t.target_precision, t.confidence)
        art["target_precision"], art["confidence"] = t.target_precision, t.confidence
    elif t.mode == "top_k":
        cand = np.flatnonzero(applies)
        order = cand[np.lexsort((cand, -scores[cand]))]
        threshold = float(scores[order[min(t.top_k, len(order)) - 1]]) if len(order) else 0.0
    else:
        threshold = float(t.value)
    keep = scores >= threshold
    if t.mode == "top_k":
        keep = np.zeros(len(scores), dtype=bool)
        keep[order[:t.top_k]] = True
    keep |= ~applies
    art["threshold"] = threshold
    if len(dev):
        art["dev"] = dev_metrics(dev_s, dev_y, threshold)
        if "pr_curve" not in art and 0 < dev_y.sum() < len(dev_y):  # the curve is worth seeing in any mode
            from sklearn.metrics import precision_recall_curve

            p, rc, th = precision_recall_curve(dev_y, dev_s)
            art["pr_curve"] = {"precision": p.tolist(), "recall": rc.tolist(), "thresholds": th.tolist()}
    out = verdicts(len(scores))
    out["s_relevance"] = scores.astype(float).tolist()
    for i in np.flatnonzero(~keep):
        out["_drop"][i], out["_score"][i] = "off_domain", float(scores[i])
        out["_detail"][i] = f"relevance {scores[i]:.3f} < {threshold:.3f} ({r.scorer}, {t.mode})"
    if r.active_learning:
        cand = np.flatnonzero(applies)
        near = cand[np.argsort(np.abs(scores[cand] - threshold), kind="stable")[:r.active_learning]]
        ids, roles, sources = column(ds, "id"), column(ds, "role"), column(ds, "source")
        art["active_learning"] = [{"id": ids[i], "source": sources[i], "role": roles[i], "text": corpus[i],
                                   "score": float(scores[i]), "threshold": threshold, "kept": bool(keep[i]),
                                   "label": None} for i in near]
    lo, hi = float(min(scores.min(initial=0.0), 0.0)), float(max(scores.max(initial=1.0), 1.0))
    bins = np.linspace(lo, hi, 31)
    art["histograms"] = {"relevance": {
        "bins": bins.tolist(), "threshold": threshold,
        "kept": np.histogram(scores[keep & applies], bins)[0].tolist(),
        "dropped": np.histogram(scores[~keep], bins)[0].tolist(),
        "exempt": np.histogram(scores[~applies], bins)[0].tolist()}}
    art["applies_to"] = int(applies.sum())
    json.dumps(art)  # artifacts are cached as JSON: fail here, not in the cache writer
    return with_columns(ds, out, ctx, "relevance"), art
