"""Domain relevance: scorers, thresholds (absolute, top-k, calibrated), active learning and feedback."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from ftx.data.curate.pipeline import curate as curate_to_dir
from ftx.data.curate.relevance import calibrate
from ftx.data.ledger import Ledger
from ftx.errors import DataError
from tests.unit.test_curate import HTTP, config, curate, drops, rec

DOMAIN = ("http request response header status code server client cache proxy cookie redirect etag "
          "content-type accept method get post put delete tls url query body chunked keep-alive "
          "authorization bearer cors origin host port gateway 404 304 max-age vary").split()
OTHER = ("recipe flour oven butter sugar garden tomato football goal striker league season tennis "
         "racket painting canvas museum poem novel chapter mountain river forest bicycle pedal "
         "guitar chord melody violin orchestra yoga breakfast coffee tea harvest").split()
FILLER = "the a of to and in is for with on that this it as".split()


def doc(rng: random.Random, p_domain: float, n: int = 24) -> str:
    words = [rng.choice(DOMAIN) if rng.random() < p_domain else rng.choice(OTHER) for _ in range(n)]
    out = []
    for w in words:
        out.append(w)
        if rng.random() < 0.4:
            out.append(rng.choice(FILLER))
    return " ".join(out)


def labelled(seed: int, n: int) -> list[dict]:
    """Documents with a random share of domain words; relevant when most words are domain words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p = rng.random()
        rows.append({"id": f"{seed}-{i}", "text": doc(rng, p), "label": int(p >= 0.5)})
    return rows


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def seeds(tmp_path) -> str:
    rng = random.Random(7)
    return write(tmp_path / "seeds.jsonl", [{"text": doc(rng, 1.0)} for _ in range(20)])


def test_calibrated_threshold_meets_target_precision_on_held_out_data(tmp_path, seeds):
    dev = write(tmp_path / "dev.jsonl", labelled(1, 300))
    held_out = labelled(2, 1000)
    records = [rec(r["id"], r["text"], label=r["label"]) for r in held_out]
    for target in (0.8, 0.9):
        cfg = config("relevance", relevance={"seeds": [seeds], "dev": [dev], "active_learning": 0})
        cfg.relevance.threshold.mode = "calibrated"
        cfg.relevance.threshold.target_precision = target
        ledger = Ledger()
        out = tmp_path / f"out{target}"
        kept = curate_to_dir(records, cfg, ledger, out)
        precision = sum(r["label"] for r in kept) / len(kept)
        recall = sum(r["label"] for r in kept) / sum(r["label"] for r in records)
        assert precision >= target, (target, precision)
        assert recall > 0.5, "calibration must not buy precision by keeping almost nothing"
        report = json.loads((out / "report.json").read_text())
        art = report["stages"][0]["artifacts"]
        assert art["mode"] == "calibrated" and art["dev"]["precision"] >= target
        curve = json.loads((out / "pr_curve.json").read_text())
        assert len(curve["precision"]) == len(curve["thresholds"]) + 1
        assert (out / "pr_curve.png").stat().st_size > 1000 and (out / "hist_relevance.png").is_file()
        # every held-out record below the threshold is in the ledger with its score
        for d in drops(ledger, "relevance").values():
            assert d["reason"] == "off_domain" and d["score"] < art["threshold"]


def test_calibration_reports_unreachable_targets_and_one_class_dev_sets():
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    t, curve = calibrate(scores, np.array([0, 1, 0, 1]), 0.6)  # precision at 0.1: 1/2, at 0.2: 2/3
    assert t == 0.2 and curve["thresholds"]
    with pytest.raises(DataError, match="confidence 0.95"):  # 2 of 2 right is too little evidence for 0.9
        calibrate(scores, np.array([0, 0, 1, 1]), 0.9, 0.95)
    with pytest.raises(DataError, match="target_precision=0.99 is not reachable"):
        calibrate(np.array([0.9, 0.1, 0.5]), np.array([0, 1, 1]), 0.99)
    with pytest.raises(DataError, match="needs both relevant"):
        calibrate(scores, np.ones(4, dtype=int), 0.9)


def test_absolute_and_top_k_thresholds_and_roles(seeds):
    rng = random.Random(3)
    records = [rec(f"d{i}", doc(rng, 0.9)) for i in range(5)] + [rec(f"o{i}", doc(rng, 0.05)) for i in range(5)]
    records += [rec("g", doc(rng, 0.0), role="general"), rec("s", doc(rng, 0.0), role="synthetic", synthetic=True)]
    res, ledger = curate(records, config("relevance", relevance={"seeds": [seeds]}))
    assert {r["id"] for r in res.kept} == {"d0", "d1", "d2", "d3", "d4", "g"}
    assert set(drops(ledger, "relevance")) == {"o0", "o1", "o2", "o3", "o4", "s"}
    cfg = config("relevance", relevance={"seeds": [seeds], "roles": ["domain"]})
    cfg.relevance.threshold.mode, cfg.relevance.threshold.top_k = "top_k", 3
    res, ledger = curate(records, cfg)
    kept = {r["id"]: r["scores"]["relevance"] for r in res.kept}
    domain_kept = {k: v for k, v in kept.items() if k not in ("g", "s")}
    assert "g" in kept and "s" in kept and len(domain_kept) == 3  # roles=[domain]: only domain can drop
    dropped = drops(ledger, "relevance")
    assert len(dropped) == 7 and max(d["score"] for d in dropped.values()) <= min(domain_kept.values())


def test_classifier_scorer_separates_domain_from_background(tmp_path, seeds):
    rng = random.Random(5)
    background = write(tmp_path / "bg.jsonl", [{"text": doc(rng, 0.0)} for _ in range(40)])
    records = [rec(f"d{i}", doc(rng, 0.85)) for i in range(10)] + [rec(f"o{i}", doc(rng, 0.1)) for i in range(10)]
    cfg = config("relevance", relevance={"seeds": [seeds], "scorer": "classifier", "background": [background]})
    cfg.relevance.threshold.value = 0.4
    res, ledger = curate(records, cfg)
    assert {r["id"] for r in res.kept} == {f"d{i}" for i in range(10)}
    assert min(r["scores"]["relevance"] for r in res.kept) > max(d["score"] for d in drops(ledger, "relevance").values())
    assert all(0 <= r["scores"]["relevance"] <= 1 for r in res.kept)
    # with no background file, a sample of the corpus stands in as negatives
    # (PU learning: in-domain corpus records are negatives too, so scores drop; the ranking survives)
    cfg.relevance.background = []
    cfg.relevance.threshold.mode, cfg.relevance.threshold.top_k = "top_k", 10
    res2, _ = curate(records, cfg)
    assert sum(r["id"].startswith("d") for r in res2.kept) >= 9


def test_active_learning_export_and_feedback_loop(tmp_path, seeds):
    rows = labelled(11, 120)
    truth = {r["id"]: r["label"] for r in rows}
    records = [rec(r["id"], r["text"]) for r in rows]
    cfg = config("relevance", relevance={"seeds": [seeds], "active_learning": 12})
    cfg.relevance.threshold.value = 0.2
    out = tmp_path / "run1"
    curate_to_dir(records, cfg, Ledger(), out)
    export = [json.loads(l) for l in (out / "active_learning.jsonl").read_text().splitlines()]
    assert len(export) == 12 and all(e["label"] is None and e["threshold"] == 0.2 for e in export)
    margin = max(abs(e["score"] - 0.2) for e in export)
    report = json.loads((out / "report.json").read_text())
    assert report["stages"][0]["artifacts"]["active_learning_exported"] == 12
    # the export starts with the record nearest the threshold (then trades closeness for diversity)
    from ftx.data.curate.relevance import load_sets
    from ftx.data.curate.scorers import fit

    s, _, _ = load_sets(cfg.relevance)
    texts = [r["text"] for r in records]
    scores = fit(cfg.relevance, s, texts)(texts)
    assert abs(export[0]["score"] - 0.2) == pytest.approx(min(abs(scores - 0.2)))
    assert margin <= max(abs(scores - 0.2))
    # a person labels the export; the next run takes positives as seeds and all labels as dev data
    for e in export:
        e["label"] = truth[e["id"]]
    feedback = write(tmp_path / "labelled.jsonl", export)
    cfg2 = config("relevance", relevance={"seeds": [seeds], "feedback": [feedback], "active_learning": 0})
    cfg2.relevance.threshold.value = 0.2
    curate_to_dir(records, cfg2, Ledger(), tmp_path / "run2")
    art = json.loads((tmp_path / "run2" / "report.json").read_text())["stages"][0]["artifacts"]
    assert art["scorer"]["seeds"] == 20 + sum(e["label"] for e in export)
    assert art["dev"]["n"] == 12


def test_bad_labels_and_missing_seed_files_are_one_line_errors(tmp_path, seeds):
    bad = write(tmp_path / "dev.jsonl", [{"text": HTTP[0], "label": "maybe"}, {"text": HTTP[1], "label": 0}])
    cfg = config("relevance", relevance={"seeds": [seeds], "dev": [bad]})
    with pytest.raises(DataError, match=r"curation.relevance.dev\[0\]: record .*label 'maybe' is not a label"):
        curate([rec(1, HTTP[0])], cfg)
    cfg = config("relevance", relevance={"seeds": [str(tmp_path / "nope.jsonl")]})
    with pytest.raises(DataError, match=r"curation.relevance.seeds\[0\]: file not found"):
        curate([rec(1, HTTP[0])], cfg)


def test_embedding_scorer_drops_off_domain(tmp_path):
    seeds = write(tmp_path / "seeds.jsonl", [{"text": t} for t in HTTP])
    records = [rec("a", "Which response header tells a browser how long it may cache a page?"),
               rec("b", "The server replied with a redirect to the new URL of the page."),
               rec("c", "Knead the dough for ten minutes, then let it rise in a warm place."),
               rec("d", "The striker scored twice in the second half of the final.")]
    cfg = config("relevance", relevance={"seeds": [seeds], "scorer": "embedding"})
    cfg.relevance.threshold.value = 0.3
    res, ledger = curate(records, cfg)
    assert {r["id"] for r in res.kept} == {"a", "b"}
    assert set(drops(ledger, "relevance")) == {"c", "d"}
    assert all(-1 <= r["scores"]["relevance"] <= 1 for r in res.kept)


def test_absolute_threshold_with_a_dev_set_still_reports_precision_recall_and_curve(tmp_path, seeds):
    dev = write(tmp_path / "dev.jsonl", labelled(4, 100))
    records = [rec(r["id"], r["text"]) for r in labelled(5, 50)]
    cfg = config("relevance", relevance={"seeds": [seeds], "dev": [dev], "active_learning": 0})
    curate_to_dir(records, cfg, Ledger(), tmp_path / "o")
    art = json.loads((tmp_path / "o" / "report.json").read_text())["stages"][0]["artifacts"]
    assert art["mode"] == "absolute" and art["dev"]["n"] == 100 and 0 <= art["dev"]["precision"] <= 1
    assert (tmp_path / "o" / "pr_curve.png").is_file()


def test_active_learning_picks_diverse_records_not_near_copies():
    from ftx.data.curate.relevance import select_for_labelling

    rng = random.Random(3)
    copies = ["the cache server answers the request with a stale response header"] * 30
    others = [doc(rng, 0.5) for _ in range(70)]
    corpus = copies + others
    scores = np.r_[np.full(30, 0.50), 0.5 + np.linspace(0.01, 0.2, 70)]  # the copies sit right at the threshold
    picked = select_for_labelling(scores, 0.5, np.arange(100), 10, corpus)
    assert len(set(picked)) == 10 and sum(i < 30 for i in picked) == 1
    nearest_only = np.argsort(np.abs(scores - 0.5), kind="stable")[:10]
    assert all(i < 30 for i in nearest_only)  # what picking by uncertainty alone would have exported
