"""Stage `relevance`: score every record against the domain seeds; drop those below the threshold.

The threshold is absolute, the top k, or calibrated on a labelled dev set: the lowest score whose
dev precision reaches `target_precision` (sklearn's precision_recall_curve; the curve is saved).
The N records nearest the threshold are exported for labelling (active learning); labelled
exports come back through `feedback`: positives join the seeds, every labelled row the dev set.
The `learned` scorer trains on every label (negatives too) and calibrates on out-of-fold dev scores.
An unreachable target precision falls back to the best-F1 threshold (flagged) unless on_unreachable=error.
Only records whose role is in `roles` can be dropped; others (general data) are scored and kept.
"""

from __future__ import annotations

import json
import logging
import random
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

VERSION = "3"  # 3: per-round active-learning estimates (learned scorer)
log = logging.getLogger(__name__)
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


def load_labels(cfg: RelevanceConfig) -> dict:
    """The configured label files: seeds [text], background [text], dev and feedback [(id, text, 1|0), ...]
    (unlabelled rows left out), feedback_rows {file key: labelled ids}."""
    out = {"seeds": [], "background": [], "dev": [], "feedback": [], "feedback_ids": {}}
    for i, p in enumerate(cfg.seeds):
        out["seeds"] += [text_view(r["messages"], r["text"]) for r in _read(p, f"curation.relevance.seeds[{i}]")]
    for i, p in enumerate(cfg.background):
        out["background"] += [text_view(r["messages"], r["text"])
                              for r in _read(p, f"curation.relevance.background[{i}]")]
    for name in ("dev", "feedback"):
        for i, p in enumerate(getattr(cfg, name)):
            key = f"curation.relevance.{name}[{i}]"
            rows = []
            for r in _read(p, key):
                y = _label(r, key)
                if y is not None:
                    rows.append((r["id"], text_view(r["messages"], r["text"]), y))
            out[name] += rows
            if name == "feedback":
                out["feedback_ids"][key] = [rid for rid, _, _ in rows]
    return out


def load_sets(cfg: RelevanceConfig) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """(seed texts, background texts, labelled dev pairs) for the similarity scorers: feedback positives join
    the seeds, every labelled feedback row the dev set."""
    L = load_labels(cfg)
    seeds = L["seeds"] + [t for _, t, y in L["feedback"] if y == 1]
    return seeds, L["background"], [(t, y) for _, t, y in L["dev"] + L["feedback"]]


def check_feedback_ids(feedback_ids: dict, corpus_ids: list[str]) -> None:
    """A feedback file whose labelled ids are mostly not in this corpus was exported from another one."""
    known = set(map(str, corpus_ids))
    for key, ids in feedback_ids.items():
        missing = sum(str(i) not in known for i in ids)
        if ids and 2 * missing > len(ids):
            raise DataError(f"{key}: {missing} of its {len(ids)} labelled ids are not in this corpus "
                            "(an export from another corpus or data config?)")


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
              confidence: Optional[float] = None, on_unreachable: str = "error") -> tuple[float, dict]:
    """Lowest threshold (max recall) whose dev precision — or its Wilson lower bound at `confidence` —
    reaches the target. Unreachable: raise (`error`), or take the threshold of best dev F1 (`best_f1`;
    the curve dict then says `fallback: true` and why)."""
    from sklearn.metrics import precision_recall_curve

    if labels.sum() == 0 or labels.sum() == len(labels):
        raise DataError("curation.relevance.dev: the dev set needs both relevant (1) and irrelevant (0) labels "
                        f"(got {int(labels.sum())} of {len(labels)} relevant)")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    predicted = np.array([(scores >= t).sum() for t in thresholds])
    bound = precision[:-1] if confidence is None else \
        wilson_lower(np.rint(precision[:-1] * predicted), predicted, confidence)
    ok = np.flatnonzero(bound >= target)
    curve = {"precision": precision.tolist(), "recall": recall.tolist(), "thresholds": thresholds.tolist()}
    if not len(ok):
        best = int(np.argmax(bound))
        how = "precision" if confidence is None else f"precision lower bound at confidence {confidence}"
        found = (f"curation.relevance.threshold.target_precision={target} is not reachable on the dev set "
                 f"({len(labels)} labelled; best {how} {bound[best]:.3f} at score {thresholds[best]:.3f})")
        if on_unreachable != "best_f1":
            raise DataError(f"{found}; lower the target or threshold.confidence, or label more dev records")
        p, r = precision[:-1], recall[:-1]
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
        i = int(np.argmax(f1))
        curve.update(fallback=True, warning=f"{found}: fell back to the best-F1 threshold {thresholds[i]:.4f} "
                     f"(dev precision {p[i]:.3f}, recall {r[i]:.3f}); threshold.on_unreachable=error stops instead")
        return float(thresholds[i]), curve
    i = ok[np.argmax(recall[:-1][ok])]
    return float(thresholds[i]), curve


def select_for_labelling(scores: np.ndarray, threshold: float, candidates: np.ndarray, k: int,
                         corpus: list[str], pool: int = 10) -> np.ndarray:
    """k records to label: uncertain (nearest the threshold) and diverse. From the k*pool records nearest the
    threshold, greedily take the one maximising (1 - cosine to the nearest already chosen, word TF-IDF) ×
    (its closeness to the threshold, 1 at the threshold → 0 at the pool's edge): not k near-copies."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    order = candidates[np.argsort(np.abs(scores[candidates] - threshold), kind="stable")[:k * pool]]
    if len(order) <= k:
        return order
    gap = np.abs(scores[order] - threshold)
    closeness = 1 - gap / max(float(gap.max()), 1e-12) * 0.9
    X = TfidfVectorizer(sublinear_tf=True).fit_transform([corpus[i] for i in order])
    chosen = [0]
    nearest = np.asarray((X @ X[0].T).todense()).ravel()
    for _ in range(k - 1):
        gain = (1 - nearest) * closeness
        gain[chosen] = -1
        j = int(np.argmax(gain))
        chosen.append(j)
        nearest = np.maximum(nearest, np.asarray((X @ X[j].T).todense()).ravel())
    return order[chosen]


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


def _learned(r: RelevanceConfig, ids, corpus: list[str], seed: int = 0):
    """The learned scorer fitted on every label, and the dev + feedback rows with out-of-fold scores."""
    L = load_labels(r)
    if ids is not None:
        check_feedback_ids(L["feedback_ids"], ids)
    fixed = [(t, 1) for t in L["seeds"]] + [(t, 0) for t in L["background"]]
    dev = [(t, y) for _, t, y in L["dev"] + L["feedback"]]
    seen = {t for t, _ in fixed + dev}
    pool = [t for t in corpus if t not in seen]
    unlabelled = random.Random(seed).sample(pool, min(r.background_sample, len(pool)))
    scorer = scorers.Learned(r, corpus, fixed + dev, unlabelled)
    dev_s = np.zeros(0)
    if dev:
        dev_y = np.array([y for _, y in dev])
        if 0 < dev_y.sum() < len(dev_y):
            dev_s = scorers.crossfit(r, corpus, fixed, dev, unlabelled, r.crossfit_folds, scorer.features, seed)
            scorer.rounds = _rounds(r, corpus, fixed, L, unlabelled, scorer.features, dev_s, seed)
        else:
            dev_s = scorer([t for t, _ in dev])
    return scorer, dev, dev_s


def _rounds(r: RelevanceConfig, corpus, fixed, L: dict, unlabelled, features, final_oof, seed: int) -> list[dict]:
    """Active-learning rounds, one per feedback file (in order): for round k, the labels known then (dev +
    the first k feedback files), their out-of-fold AP, and precision/recall at the threshold calibrated
    on them — so a user sees whether the last round still moved the estimate."""
    from sklearn.metrics import average_precision_score

    t = r.threshold
    sizes = [len(v) for v in L["feedback_ids"].values()]
    base = [(x, y) for _, x, y in L["dev"]]
    fb = [(x, y) for _, x, y in L["feedback"]]
    out = []
    for k in range(len(sizes) + 1):
        dev = base + fb[:sum(sizes[:k])]
        y = np.array([v for _, v in dev])
        if not (1 < y.sum() < len(y) - 1):
            continue
        oof = final_oof if k == len(sizes) else scorers.crossfit(r, corpus, fixed, dev, unlabelled,
                                                                  r.crossfit_folds, features, seed)
        row = {"round": k, "labels": len(dev), "relevant": int(y.sum()),
               "average_precision": float(average_precision_score(y, oof))}
        if t.mode == "calibrated":
            thr, curve = calibrate(oof, y, t.target_precision, t.confidence, "best_f1")
            row.update(threshold=thr, fallback=bool(curve.get("fallback", False)))
            m = dev_metrics(oof, y, thr)
            row.update(precision=m["precision"], recall=m["recall"])
        out.append(row)
    return out


def fit(cfg: CurationConfig, ids: list, corpus: list[str], check_ids: bool = True):
    """The scorer, fitted once on the seeds, labels and `corpus`, with its dev scores, dev labels, the
    artifacts so far and the threshold (None for top_k, which needs every corpus score). Both engines
    call this: local on the whole corpus, ray on the whole corpus or its first curation.ray.fit_sample texts."""
    r, t = cfg.relevance, cfg.relevance.threshold
    if r.scorer == "learned":
        scorer, dev, dev_s = _learned(r, ids if check_ids else None, corpus)
    else:
        L = load_labels(r)
        if check_ids:
            check_feedback_ids(L["feedback_ids"], ids)
        seeds = L["seeds"] + [x for _, x, y in L["feedback"] if y == 1]
        background, dev = L["background"], [(x, y) for _, x, y in L["dev"] + L["feedback"]]
        scorer = scorers.fit(r, seeds, corpus, background)
        dev_s = scorer([x for x, _ in dev]) if dev else np.zeros(0)
    art: dict = {"scorer": scorer.describe(), "mode": t.mode}
    dev_y = np.array([y for _, y in dev], dtype=int)
    if r.scorer == "learned" and len(dev):
        art["dev_scores"] = "out-of-fold" if 0 < dev_y.sum() < len(dev_y) else "in-sample"
        if getattr(scorer, "rounds", None):
            art["rounds"] = scorer.rounds
    threshold = None
    if t.mode == "calibrated":
        threshold, art["pr_curve"] = calibrate(dev_s, dev_y, t.target_precision, t.confidence, t.on_unreachable)
        art["target_precision"], art["confidence"] = t.target_precision, t.confidence
        art["fallback"] = bool(art["pr_curve"].pop("fallback", False))
        if art["fallback"]:
            art["warning"] = art["pr_curve"].pop("warning")
            log.warning("relevance: %s", art["warning"])
    elif t.mode != "top_k":
        threshold = float(t.value)
    return scorer, dev_s, dev_y, art, threshold


def off_domain(score: float, threshold: float, r: RelevanceConfig) -> str:
    """The drop detail of an off-domain record."""
    return f"relevance {score:.3f} < {threshold:.3f} ({r.scorer}, {r.threshold.mode})"


def dev_artifacts(art: dict, dev_s: np.ndarray, dev_y: np.ndarray, threshold: float) -> None:
    """Dev-set precision/recall (and the PR curve in any mode) at the threshold, into `art`."""
    if len(dev_y):
        art["dev"] = dev_metrics(dev_s, dev_y, threshold)
        if 0 < dev_y.sum() < len(dev_y):
            from sklearn.metrics import average_precision_score

            art["dev"]["average_precision"] = float(average_precision_score(dev_y, dev_s))
        if "pr_curve" not in art and 0 < dev_y.sum() < len(dev_y):  # the curve is worth seeing in any mode
            from sklearn.metrics import precision_recall_curve

            p, rc, th = precision_recall_curve(dev_y, dev_s)
            art["pr_curve"] = {"precision": p.tolist(), "recall": rc.tolist(), "thresholds": th.tolist()}


def run(ds, cfg: CurationConfig, ctx: Context):
    r, t = cfg.relevance, cfg.relevance.threshold
    corpus = texts({"messages": column(ds, "messages"), "text": column(ds, "text")})
    scorer, dev_s, dev_y, art, threshold = fit(cfg, column(ds, "id"), corpus)
    scores = scorer(corpus)
    applies = np.array([role in r.roles for role in column(ds, "role")], dtype=bool)
    if t.mode == "top_k":
        cand = np.flatnonzero(applies)
        order = cand[np.lexsort((cand, -scores[cand]))]
        threshold = float(scores[order[min(t.top_k, len(order)) - 1]]) if len(order) else 0.0
    keep = scores >= threshold
    if t.mode == "top_k":
        keep = np.zeros(len(scores), dtype=bool)
        keep[order[:t.top_k]] = True
    keep |= ~applies
    art["threshold"] = threshold
    dev_artifacts(art, dev_s, dev_y, threshold)
    out = verdicts(len(scores))
    out["s_relevance"] = scores.astype(float).tolist()
    for i in np.flatnonzero(~keep):
        out["_drop"][i], out["_score"][i] = "off_domain", float(scores[i])
        out["_detail"][i] = off_domain(float(scores[i]), threshold, r)
    if r.active_learning:
        cand = np.flatnonzero(applies)
        near = select_for_labelling(scores, threshold, cand, r.active_learning, corpus)
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
