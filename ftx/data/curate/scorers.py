"""Domain-relevance scorers: how much a text looks like the seed set of in-domain examples.

tfidf       cosine similarity of TF-IDF vectors (hashed word 1–2-grams, IDF fitted on the corpus
            and seeds) to the seed centroid, or to the nearest seed (aggregate=max)
embedding   the same with all-MiniLM-L6-v2 sentence embeddings
classifier  logistic regression, seeds vs background (a file, or a sample of the corpus), on TF-IDF
            or embedding features; the score is P(domain)
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


class EmbeddingFeatures:
    def __init__(self, cfg: RelevanceConfig):
        self.cfg = cfg

    def __call__(self, texts: list[str]) -> np.ndarray:
        return embed(texts, self.cfg.embedding_model, self.cfg.embedding_batch_size, self.cfg.embedding_precision)


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
