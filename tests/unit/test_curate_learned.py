"""The learned relevance scorer: every label teaches it, cross-fitted calibration, the best-F1 fallback."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from ftx.data.curate import scorers
from ftx.data.curate.relevance import calibrate, check_feedback_ids
from ftx.errors import DataError
from ftx.spec.curation import RelevanceConfig
from tests.unit.test_curate import config, curate, drops, rec
from tests.unit.test_curate_relevance import doc, labelled, write

# Two kinds of records share every word of the seeds' vocabulary; only the labels say which kind is wanted.
WANTED = "cache header max-age stale revalidate etag fresh"
UNWANTED = "cache header cookie session login token secure"


def _texts(rng, words, n):
    w = words.split()
    return [" ".join(rng.choice(w) for _ in range(12)) for _ in range(n)]


def test_negatives_change_the_scorer():
    rng = random.Random(0)
    seeds = _texts(rng, WANTED + " " + UNWANTED, 10)  # seeds mix both kinds
    wanted, unwanted = _texts(rng, WANTED, 40), _texts(rng, UNWANTED, 40)
    corpus = wanted + unwanted
    cfg = RelevanceConfig(scorer="learned", pu_below=0)  # no PU: labelled negatives only
    only_pos = scorers.Learned(RelevanceConfig(scorer="learned"), corpus, [(s, 1) for s in seeds], corpus)
    taught = scorers.Learned(cfg, corpus, [(s, 1) for s in seeds] + [(t, 0) for t in unwanted[:10]], [])
    y = np.r_[np.ones(40), np.zeros(40)]
    from sklearn.metrics import average_precision_score

    ap_pos = average_precision_score(y, only_pos(corpus))
    ap_taught = average_precision_score(y, taught(corpus))
    assert ap_taught > 0.95 and ap_taught > ap_pos + 0.1
    assert taught.describe()["negatives"] == 10 and taught.describe()["pu_negatives"] == 0
    assert only_pos.describe()["pu_negatives"] == 80  # no labelled negatives: unlabelled records stand in


def test_weak_negatives_are_scored_by_models_that_did_not_learn_them_as_negatives():
    # A corpus that is all in-domain, as a user's own domain data often is: every record is a weak negative.
    # Scored in-sample, liblinear has pushed each one down (the demo lost 117 of 136 records this way).
    rng = random.Random(1)
    seeds = _texts(rng, WANTED, 15)
    corpus = [t + f" r{i}" for i, t in enumerate(_texts(rng, WANTED, 60))]  # in-domain, each record unique
    cfg = RelevanceConfig(scorer="learned", C=100.0)
    scorer = scorers.Learned(cfg, corpus, [(s, 1) for s in seeds], corpus)
    assert scorer.describe()["pu_negatives"] == 60
    in_sample = scorer.model.predict_proba(scorer.features(corpus))[:, 1]
    served = scorer(corpus)
    assert np.median(served) > np.median(in_sample) + 0.1, (np.median(served), np.median(in_sample))
    # each one is the score of the fold model that left it out, and texts outside the sample use the full model
    k = scorer._pu_fold[corpus[7]]
    assert served[7] == pytest.approx(scorer._pu_models[k].predict_proba(scorer.features([corpus[7]]))[0, 1])
    other = "cache header stale etag fresh max-age"
    assert scorer([other])[0] == pytest.approx(scorer.model.predict_proba(scorer.features([other]))[0, 1])


def test_crossfit_scores_each_dev_row_with_a_model_that_did_not_see_it():
    # pure-noise labels: a model that saw a row memorises it; out-of-fold scores carry no information
    rng = random.Random(1)
    texts = [" ".join(rng.choice("alpha beta gamma delta epsilon zeta eta theta iota kappa".split()) +
                      str(rng.randrange(10 ** 6)) for _ in range(20)) for _ in range(120)]
    y = np.array([rng.randrange(2) for _ in texts])
    dev = list(zip(texts, y.tolist()))
    cfg = RelevanceConfig(scorer="learned")
    in_sample = scorers.Learned(cfg, texts, dev, [])(texts)
    oof = scorers.crossfit(cfg, texts, [], dev, [], 5, None)
    from sklearn.metrics import average_precision_score

    assert average_precision_score(y, in_sample) > 0.95  # a threshold read off these would be a lie
    assert abs(average_precision_score(y, oof) - y.mean()) < 0.2  # chance level
    with pytest.raises(DataError, match="at least 2 relevant"):
        scorers.crossfit(cfg, texts, [], [(texts[0], 1)] + [(t, 0) for t in texts[1:10]], [], 5, None)


def test_unreachable_target_falls_back_to_best_f1_or_stops_when_strict():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0, 1, 0, 1, 1, 0])
    t, curve = calibrate(scores, labels, 0.99, None, "best_f1")
    assert curve["fallback"] is True and "fell back to the best-F1 threshold" in curve["warning"]
    assert t == 0.2  # F1 at 0.2: p 3/5, r 1 → 0.75, the best
    with pytest.raises(DataError, match="target_precision=0.99 is not reachable"):
        calibrate(scores, labels, 0.99, None, "error")


def test_learned_stage_calibrates_out_of_fold_and_flags_the_fallback(tmp_path):
    rng = random.Random(7)
    seeds = write(tmp_path / "seeds.jsonl", [{"text": doc(rng, 1.0)} for _ in range(20)])
    dev = write(tmp_path / "dev.jsonl", labelled(1, 120))
    records = [rec(r["id"], r["text"]) for r in labelled(2, 200)]
    cfg = config("relevance", relevance={"seeds": [seeds], "dev": [dev], "scorer": "learned", "active_learning": 5})
    cfg.relevance.threshold.mode = "calibrated"
    cfg.relevance.threshold.target_precision = 0.999  # unreachable with 120 dev rows at 95% confidence
    res, ledger = curate(records, cfg)
    art = res.stages[0].artifacts
    assert art["dev_scores"] == "out-of-fold" and art["fallback"] is True and "best-F1" in art["warning"]
    assert art["scorer"]["scorer"] == "learned" and art["scorer"]["positives"] == 20 + sum(
        r["label"] for r in labelled(1, 120))
    assert 0 < len(drops(ledger, "relevance")) < 200
    cfg.relevance.threshold.on_unreachable = "error"
    with pytest.raises(DataError, match="not reachable"):
        curate(records, cfg)


def test_bad_label_inputs_are_one_line_errors(tmp_path):
    rng = random.Random(7)
    seeds = write(tmp_path / "seeds.jsonl", [{"text": doc(rng, 1.0)} for _ in range(5)])
    one_class = write(tmp_path / "dev.jsonl", [{"id": str(i), "text": doc(rng, 1.0), "label": 1} for i in range(6)])
    records = [rec(r["id"], r["text"]) for r in labelled(2, 30)]
    cfg = config("relevance", relevance={"seeds": [seeds], "dev": [one_class], "scorer": "learned"})
    cfg.relevance.threshold.mode = "calibrated"
    with pytest.raises(DataError, match="needs both relevant"):
        curate(records, cfg)
    two = write(tmp_path / "dev2.jsonl", [{"id": "a", "text": doc(rng, 1.0), "label": 2}])
    cfg = config("relevance", relevance={"seeds": [seeds], "dev": [two], "scorer": "learned"})
    with pytest.raises(DataError, match=r"curation.relevance.dev\[0\]: record a: label 2 is not a label"):
        curate(records, cfg)
    other = write(tmp_path / "fb.jsonl", [{"id": f"elsewhere-{i}", "text": doc(rng, 1.0), "label": 1} for i in range(4)])
    cfg = config("relevance", relevance={"seeds": [seeds], "feedback": [other], "scorer": "learned"})
    with pytest.raises(DataError, match=r"curation.relevance.feedback\[0\]: 4 of its 4 labelled ids are not in this corpus"):
        curate(records, cfg)
    check_feedback_ids({"k": ["2-1", "2-2", "x"]}, [r["id"] for r in records])  # a few unknown ids are fine
