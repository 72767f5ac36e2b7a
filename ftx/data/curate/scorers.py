"""Domain-relevance scorers: how much a text looks like the seed set of in-domain examples.

tfidf       cosine similarity of TF-IDF vectors (hashed word 1–2-grams, IDF fitted on the corpus
            and seeds) to the seed centroid, or to the nearest seed (aggregate=max)
embedding   the same with all-MiniLM-L6-v2 sentence embeddings
classifier  logistic regression, seeds vs background (a file, or a sample of the corpus), on TF-IDF
            or embedding features; the score is P(domain)
learned     logistic regression on every label: seeds and labelled positives (dev, feedback) against
            labelled negatives (dev, feedback, background), with unlabelled corpus records as weak
            negatives (PU) while labelled negatives are few; word 1–2-gram + character 3–5-gram TF-IDF
            (optionally stacked with embeddings). Dev rows are scored out of fold (crossfit) for
            calibration, so a threshold read off them is honest although the dev set trains the model.
"""

from __future__ import annotations

import random
from typing import Optional

import numpy as np

from ftx.errors import DataError
from ftx.spec.curation import RelevanceConfig
from ftx.data.curate.embed import embed

HASH_FEATURES = 2**20


class TfidfFeatures:
    """Hashed n-gram TF-IDF: fixed memory however large the corpus (no vocabulary to hold)."""

    def __init__(self, fit_texts: list[str]):
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

        self.hasher = HashingVectorizer(n_features=HASH_FEATURES, ngram_range=(1, 2), alternate_sign=False,
                                        norm=None, stop_words="english", lowercase=True)
        self.tfidf = TfidfTransformer(sublinear_tf=True).fit(self.hasher.transform(fit_texts))

    def __call__(self, texts: list[str]):
        return self.tfidf.transform(self.hasher.transform(texts))


class WordCharFeatures:
    """Hashed word 1–2-gram and character (within word boundaries) 3–5-gram TF-IDF, side by side, each row
    L2-normalised per block; embeddings (unit vectors) are appended when asked for."""

    def __init__(self, fit_texts: list[str], cfg: Optional[RelevanceConfig] = None, embeddings: bool = False):
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

        self.blocks = []
        for kw in ({"ngram_range": (1, 2)}, {"analyzer": "char_wb", "ngram_range": (3, 5)}):
            h = HashingVectorizer(n_features=HASH_FEATURES, alternate_sign=False, norm=None, lowercase=True, **kw)
            self.blocks.append((h, TfidfTransformer(sublinear_tf=True).fit(h.transform(fit_texts))))
        self.embed = EmbeddingFeatures(cfg) if embeddings else None

    def __call__(self, texts: list[str]):
        from scipy.sparse import csr_matrix, hstack

        parts = [t.transform(h.transform(texts)) for h, t in self.blocks]
        if self.embed is not None:
            parts.append(csr_matrix(self.embed(texts)))
        return hstack(parts).tocsr()


class EmbeddingFeatures:
    def __init__(self, cfg: RelevanceConfig):
        self.cfg = cfg

    def __call__(self, texts: list[str]) -> np.ndarray:
        return embed(texts, self.cfg.embedding_model, self.cfg.embedding_batch_size, self.cfg.embedding_precision,
                     self.cfg.embedding_threads)


def _similarity(feats, seeds, aggregate: str) -> np.ndarray:
    """Cosine similarity (rows are unit length) to the seed centroid or the nearest seed."""
    if aggregate == "max":
        sims = feats @ seeds.T
        sims = sims.toarray() if hasattr(sims, "toarray") else sims
        return np.asarray(sims.max(axis=1)).ravel()
    centroid = np.asarray(seeds.mean(axis=0)).ravel()
    centroid /= max(np.linalg.norm(centroid), 1e-12)
    return np.asarray(feats @ centroid).ravel()


class Scorer:
    """Fitted once per run on the corpus and the seeds; scores any list of texts."""

    def __init__(self, cfg: RelevanceConfig, seeds: list[str], corpus: list[str], background: list[str],
                 seed: int = 0):
        if not seeds:
            raise DataError("curation.relevance.seeds: the seed files hold no text")
        self.cfg = cfg
        uses_tfidf = cfg.scorer == "tfidf" or (cfg.scorer == "classifier" and cfg.features == "tfidf")
        self.features = TfidfFeatures(corpus + seeds) if uses_tfidf else EmbeddingFeatures(cfg)
        self.seed_feats = self.features(seeds)
        self.model = None
        if cfg.scorer == "classifier":
            from sklearn.linear_model import LogisticRegression

            neg = background or self._sample(corpus, set(seeds), cfg.background_sample, seed)
            if not neg:
                raise DataError("curation.relevance: the classifier needs background (off-domain) texts; "
                                "set curation.relevance.background or give it a corpus")
            X = self._stack(self.seed_feats, self.features(neg))
            y = np.r_[np.ones(len(seeds)), np.zeros(len(neg))]
            self.model = LogisticRegression(class_weight="balanced", max_iter=2000, C=4.0).fit(X, y)
            self.n_background = len(neg)

    @staticmethod
    def _sample(corpus: list[str], exclude: set, k: int, seed: int) -> list[str]:
        pool = [t for t in corpus if t not in exclude]
        return random.Random(seed).sample(pool, min(k, len(pool)))

    @staticmethod
    def _stack(a, b):
        if hasattr(a, "tocsr"):
            from scipy.sparse import vstack

            return vstack([a, b]).tocsr()
        return np.vstack([a, b])

    def __call__(self, texts: list[str], chunk: int = 20_000) -> np.ndarray:
        out = []
        for i in range(0, len(texts), chunk):
            feats = self.features(texts[i:i + chunk])
            if self.model is not None:
                out.append(self.model.predict_proba(feats)[:, 1])
            else:
                out.append(_similarity(feats, self.seed_feats, self.cfg.aggregate))
        return np.concatenate(out) if out else np.zeros(0)

    def describe(self) -> dict:
        d = {"scorer": self.cfg.scorer, "aggregate": self.cfg.aggregate if self.model is None else None,
             "seeds": int(self.seed_feats.shape[0])}
        if self.model is not None:
            d.update(features=self.cfg.features, background=self.n_background)
        return d


def fit(cfg: RelevanceConfig, seeds: list[str], corpus: list[str], background: Optional[list[str]] = None,
        seed: int = 0) -> Scorer:
    return Scorer(cfg, seeds, corpus, background or [], seed)


class Learned:
    """P(domain) from a logistic regression on every label (see the module docstring).

    `labelled` are (text, 1|0) pairs from seeds, dev, feedback and background; `unlabelled` a sample of
    the corpus used as weak negatives (weight `pu_weight`) while fewer than `pu_below` labelled negatives
    exist. Features are fitted (unsupervised IDF) on the corpus and the labelled texts."""

    def __init__(self, cfg: RelevanceConfig, corpus: list[str], labelled: list[tuple[str, int]],
                 unlabelled: list[str], features=None):
        texts = [t for t, _ in labelled]
        self.cfg = cfg
        if features is None:
            features = EmbeddingFeatures(cfg) if cfg.features == "embedding" else \
                WordCharFeatures(corpus + texts, cfg, cfg.features == "tfidf+embedding")
        self.features = features
        self.n_pos = sum(y for _, y in labelled)
        self.n_neg = len(labelled) - self.n_pos
        if not self.n_pos:
            raise DataError("curation.relevance.seeds: no positive examples (seeds or label 1) to learn from")
        self.pu = unlabelled if (self.n_neg < cfg.pu_below and unlabelled) else []
        if not self.n_neg and not self.pu:
            raise DataError("curation.relevance: the learned scorer needs negatives: label some dev or "
                            "active-learning records 0, give curation.relevance.background, or a corpus")
        self.labelled = labelled
        self.model = self._fit(labelled, self.pu)
        self._pu_set = frozenset(self.pu)
        self._pu_fold: dict[str, int] = {}
        self._pu_models: list = []

    def _fit(self, labelled: list[tuple[str, int]], pu: list[str]):
        from sklearn.linear_model import LogisticRegression

        X = self.features([t for t, _ in labelled] + pu)
        y = np.r_[[y for _, y in labelled], np.zeros(len(pu))]
        w = np.r_[np.ones(len(labelled)), np.full(len(pu), self.cfg.pu_weight)]
        # balanced classes over the weighted counts
        pos, neg = w[y == 1].sum(), w[y == 0].sum()
        w = np.where(y == 1, w * (pos + neg) / (2 * pos), w * (pos + neg) / (2 * neg))
        # liblinear dual coordinate descent: its cost follows the non-zeros, not the 2M hashed dimensions
        return LogisticRegression(C=self.cfg.C, solver="liblinear", dual=True, max_iter=3000).fit(X, y, sample_weight=w)

    def _pu_oof(self) -> None:
        """Fold models for the weak negatives: a corpus record the model was fitted on as a negative is scored
        by a model that did not see it. Scored in-sample, the unlabelled records of a mostly in-domain corpus
        come out below the threshold read off the dev set and are dropped (the demo: 117 of 136)."""
        if self._pu_models or not self.pu:
            return
        folds = min(self.cfg.crossfit_folds, len(self.pu))
        for i, t in enumerate(self.pu):
            self._pu_fold.setdefault(t, i % folds)
        for k in range(folds):
            self._pu_models.append(self._fit(self.labelled, [t for t in self.pu if self._pu_fold[t] != k]))

    def __call__(self, texts: list[str], chunk: int = 20_000) -> np.ndarray:
        out = [self.model.predict_proba(self.features(texts[i:i + chunk]))[:, 1] for i in range(0, len(texts), chunk)]
        scores = np.concatenate(out) if out else np.zeros(0)
        if self.pu:
            hits = [i for i, t in enumerate(texts) if t in self._pu_set]
            if hits:
                self._pu_oof()
                X = self.features([texts[i] for i in hits])
                folds = np.array([self._pu_fold[texts[i]] for i in hits])
                for k, m in enumerate(self._pu_models):
                    sel = np.flatnonzero(folds == k)
                    if len(sel):
                        scores[np.asarray(hits)[sel]] = m.predict_proba(X[sel])[:, 1]
        return scores

    def describe(self) -> dict:
        return {"scorer": "learned", "features": self.cfg.features, "positives": self.n_pos,
                "negatives": self.n_neg, "pu_negatives": len(self.pu), "pu_weight": self.cfg.pu_weight if self.pu else None,
                "C": self.cfg.C, "seeds": self.n_pos}


def crossfit(cfg: RelevanceConfig, corpus: list[str], fixed: list[tuple[str, int]], dev: list[tuple[str, int]],
             unlabelled: list[str], folds: int, features, seed: int = 0) -> np.ndarray:
    """Out-of-fold scores of the dev rows: each scored by a model trained on everything but its fold."""
    from sklearn.model_selection import StratifiedKFold

    y = np.array([l for _, l in dev])
    k = int(min(folds, np.bincount(y, minlength=2).min()))
    if k < 2:
        raise DataError("curation.relevance.dev: the dev set needs at least 2 relevant (1) and 2 irrelevant (0) "
                        f"labels to cross-fit (got {int(y.sum())} of {len(y)} relevant)")
    out = np.zeros(len(dev))
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        m = Learned(cfg, corpus, fixed + [dev[i] for i in train], unlabelled, features)
        out[test] = m([dev[i][0] for i in test])
    return out
