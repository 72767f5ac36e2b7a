"""`ftx curate --label`: terminal labelling into a new feedback file, and per-round estimates in the report."""

from __future__ import annotations

import json
import random

import pytest

from ftx.cli.label import default_out, label
from ftx.errors import ConfigError
from tests.helpers import run_main
from tests.unit.test_curate import config, curate, rec
from tests.unit.test_curate_relevance import doc, labelled, write


def _export(tmp_path):
    rows = [{"id": f"r{i}", "source": "s", "role": "domain", "text": f"record number {i}", "score": 0.1 * i,
             "threshold": 0.25, "kept": i >= 3, "label": None} for i in range(5)]
    rows[4]["label"] = 1  # labelled before: kept, not asked again
    return write(tmp_path / "active_learning.jsonl", rows)


def test_answers_go_to_a_new_feedback_file_skips_stay_unlabelled_and_quit_keeps_what_was_answered(tmp_path):
    src = _export(tmp_path)
    answers = iter(["y", "n", "s", "q"])
    asked = []

    def ask(row, i, n):
        asked.append((row["id"], i, n))
        return next(answers)

    said = []
    counts = label(src, None, False, ask, said.append)
    out = default_out(tmp_path / "active_learning.jsonl")
    assert out.name == "active_learning.labelled.jsonl" and counts["out"] == str(out)
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == [1, 0, None, None, 1]
    assert [a[0] for a in asked] == ["r0", "r1", "r2", "r3"] and asked[0][2] == 4
    assert counts == {"asked": 3, "relevant": 1, "irrelevant": 1, "skipped": 1, "already": 1, "left": 1,
                      "out": str(out)}
    assert said[-1] == f"next run: ftx curate curation.relevance.feedback=[{out}]"
    assert json.loads((tmp_path / "active_learning.jsonl").read_text().splitlines()[0])["label"] is None  # untouched


def test_the_feedback_file_is_never_overwritten_and_is_not_the_source(tmp_path):
    src = _export(tmp_path)
    label(src, None, False, lambda *a: "y", lambda s: None)
    with pytest.raises(ConfigError, match="exists .*--overwrite"):
        label(src, None, False, lambda *a: "y", lambda s: None)
    label(src, None, True, lambda *a: "n", lambda s: None)  # --overwrite replaces it
    with pytest.raises(ConfigError):
        label(src, src, True, lambda *a: "y", lambda s: None)  # the export itself is an input


def test_labelled_file_is_read_back_as_feedback_and_the_report_shows_each_round(tmp_path):
    rng = random.Random(3)
    seeds = write(tmp_path / "seeds.jsonl", [{"text": doc(rng, 1.0)} for _ in range(20)])
    dev = write(tmp_path / "dev.jsonl", labelled(1, 80))
    pool = labelled(2, 160)
    records = [rec(r["id"], r["text"]) for r in pool]
    truth = {r["id"]: r["label"] for r in pool}
    feedback = []
    for k in range(2):  # two rounds, each: export, label in the "terminal" (an oracle), pass back
        cfg = config("relevance", relevance={"seeds": [seeds], "dev": [dev], "scorer": "learned",
                                             "active_learning": 10, "feedback": list(feedback)})
        cfg.relevance.threshold.mode = "calibrated"
        cfg.relevance.threshold.target_precision = 0.6
        res, _ = curate(records, cfg)
        export = write(tmp_path / f"al{k}.jsonl", res.stages[0].artifacts["active_learning"])
        label(export, None, False, lambda row, i, n: "y" if truth[row["id"]] else "n", lambda s: None)
        feedback.append(str(default_out(tmp_path / f"al{k}.jsonl")))
    cfg.relevance.feedback = list(feedback)
    res, ledger = curate(records, cfg)
    rounds = res.stages[0].artifacts["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and [r["labels"] for r in rounds] == [80, 90, 100]
    assert all(0 < r["average_precision"] <= 1 and 0 <= r["precision"] <= 1 for r in rounds)
    assert rounds[-1]["average_precision"] == pytest.approx(res.stages[0].artifacts["dev"]["average_precision"])


def test_label_mode_on_the_command_line_refuses_overrides_and_bad_files(tmp_path, capsys):
    code = run_main(["curate", "--label", str(tmp_path / "missing.jsonl")], capsys)
    assert code[0] == 2 and "ftx: " in code[1] and "--label: file not found" in code[1]
    bad = write(tmp_path / "bad.jsonl", [{"foo": 1}])
    code = run_main(["curate", "--label", bad], capsys)
    assert code[0] == 2 and "needs an id and a text" in code[1]
    code = run_main(["curate", "--label", bad, "curation=default"], capsys)
    assert code[0] == 2 and "--label: takes no config overrides" in code[1]


def test_report_markdown_has_a_row_per_round():
    from ftx.data.curate.report import markdown

    art = {"scorer": {"scorer": "learned", "seeds": 20}, "mode": "calibrated", "threshold": 0.4, "applies_to": 10,
           "rounds": [{"round": 0, "labels": 80, "relevant": 30, "average_precision": 0.81, "threshold": 0.5,
                       "fallback": True, "precision": 0.7, "recall": 0.6},
                      {"round": 1, "labels": 90, "relevant": 34, "average_precision": 0.86, "threshold": 0.45,
                       "fallback": False, "precision": 0.82, "recall": 0.7}]}
    stage = {"stage": "relevance", "in": 10, "kept": 8, "dropped": 2, "dropped_by_reason": {"off_domain": 2},
             "modified_by_reason": {}, "docs_per_s": 1, "cached": False, "artifacts": art}
    md = markdown({"records_in": 10, "kept": 8, "dropped": 2, "synthetic": {}, "stages": [stage], "examples": {},
                   "files": []})
    assert "| 0 | 80 (30) | 0.810 | 0.5000 (best-F1 fallback) | 0.700 | 0.600 |" in md
    assert "| 1 | 90 (34) | 0.860 | 0.4500 | 0.820 | 0.700 |" in md
