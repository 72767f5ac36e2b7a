"""The pairwise judge's bookkeeping: both orders, position flips, win rate with its interval, the spec rules,
the Evaluator's pairwise_judge.jsonl and agreement with human reviews on import. Fake judges with known
preferences; the LM judge itself is checked against a direct computation in test_eval_model.py."""

from __future__ import annotations

import json

import pytest

from ftx.errors import ConfigError
from ftx.eval.judge import both_orders
from ftx.eval.paired import wilson
from ftx.record import review
from tests.helpers import answer_all, predicted_run, write_jsonl


class Longer:
    """Prefers the longer answer whatever the order."""

    def compare(self, items):
        return [0.9 if len(it["first"]) > len(it["second"]) else 0.1 for it in items]


class FirstAlways:
    """Pure position bias: always the answer shown first."""

    def compare(self, items):
        return [0.8] * len(items)


def pairs(n=10):
    return [{"set": "val", "id": f"v{i}", "prompt": f"Q{i}", "answers": ["r"],
             "tuned": "a long tuned answer" if i < 7 else "x", "base": "short" if i < 7 else "a long base answer"}
            for i in range(n)]


def test_a_consistent_judge_never_flips_and_its_win_rate_counts_items():
    rows, s = both_orders(Longer(), pairs())
    assert (s["win"], s["loss"], s["tie"], s["items"]) == (7, 3, 0, 10)
    assert s["position_flip_rate"] == 0 and s["first_position_rate"] == 0.5
    assert s["win_rate"] == 0.7 and s["win_rate_ci"] == wilson(7, 10)
    assert rows[0] == {"set": "val", "id": "v0", "p_tuned_first": 0.9, "p_base_first": 0.1, "verdict": "tuned",
                       "flipped": False}


def test_a_position_biased_judge_flips_every_verdict_and_wins_nothing():
    rows, s = both_orders(FirstAlways(), pairs())
    assert s["position_flip_rate"] == 1.0 and s["first_position_rate"] == 1.0
    assert (s["win"], s["tie"], s["loss"]) == (0, 10, 0) and all(r["flipped"] for r in rows)


def test_identical_answers_are_ties_the_judge_is_not_asked_about():
    asked = []

    class Spy(Longer):
        def compare(self, items):
            asked.extend(it["first"] for it in items)
            return super().compare(items)

    ps = pairs(4) + [{"set": "val", "id": "same", "prompt": "Q", "answers": ["r"], "tuned": "Same ", "base": "Same"}]
    rows, s = both_orders(Spy(), ps)
    assert len(asked) == 8 and "Same" not in [a.strip() for a in asked]
    assert rows[-1] == {"set": "val", "id": "same", "verdict": "tie", "flipped": False, "identical": True}
    assert (s["items"], s["identical"], s["win"], s["tie"], s["position_flip_rate"]) == (5, 1, 4, 1, 0.0)
    assert both_orders(Spy(), ps[-1:])[1]["position_flip_rate"] is None


def test_spec_rules_for_the_pairwise_judge():
    from ftx.spec.eval import EvalConfig, JudgeConfig

    EvalConfig(judge=JudgeConfig(kind="pairwise")).check()
    with pytest.raises(ConfigError, match=r"eval.judge.kind: =pairwise compares the base .* eval.base_vs_tuned=true"):
        EvalConfig(judge=JudgeConfig(kind="pairwise"), base_vs_tuned=False).check()
    with pytest.raises(ConfigError, match=r"eval.primary: =val_judge needs a judge that scores each answer"):
        EvalConfig(judge=JudgeConfig(kind="pairwise"), primary="val_judge").check()


def test_evaluator_runs_a_pairwise_judge_on_base_vs_tuned_and_writes_its_verdicts(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ftx.eval import suite

    ev = suite.Evaluator.__new__(suite.Evaluator)
    ev.cfg = SimpleNamespace(judge=SimpleNamespace(kind="my.mod:make"))
    ev.out_dir, ev._judge = tmp_path, Longer()
    row = lambda side, p, i: {"set": "val", "id": f"v{i}", "prompt": "Q", "answers": ["r"], "prediction": p}
    ev.results = {"base": {"rows": [row("b", "short", i) for i in range(4)] + [
                      {**row("b", "x", 9), "set": "offdomain"}]},
                  "tuned": {"rows": [row("t", "much longer" if i else "s", i) for i in range(4)] + [
                      {**row("t", "x", 9), "set": "offdomain"}]}}
    s = ev._pairwise()
    assert (s["items"], s["win"], s["loss"]) == (4, 3, 1)  # the off-domain probe is not judged
    lines = [json.loads(x) for x in (tmp_path / "pairwise_judge.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in lines] == ["base", "tuned", "tuned", "tuned"]
    ev._judge = SimpleNamespace(score=lambda items: [1.0] * len(items))  # a pointwise judge: nothing pairwise
    assert ev._pairwise() is None


def test_import_reports_how_often_the_pairwise_judge_agrees_with_the_reviewers(tmp_path):
    run = predicted_run(tmp_path, n=5, sets=("val",))
    write_jsonl(run / "pairwise_judge.jsonl", [{"set": "val", "id": f"val{i}", "verdict": "tuned" if i < 4 else "base",
                                                "flipped": False} for i in range(5)])
    review.export(run, tmp_path / "rev", seed=3)
    ans = answer_all(tmp_path / "rev" / "items.jsonl", tmp_path / "a.jsonl", "ann",
                     lambda it: "left" if it["left"].endswith("detailed") else "right")  # the tuned every time
    r = review.import_reviews([ans], run)
    assert r["judge_agreement"] == {"items": 5, "agree": 4, "rate": 0.8, "ci": wilson(4, 5)}
    other = predicted_run(tmp_path, "b", n=5, sets=("val",))  # tuned vs another run's tuned: no judge verdicts apply
    key = review.export(run, tmp_path / "rev2", against=other, seed=3)
    assert review.pairwise_verdicts(run, key) is None
