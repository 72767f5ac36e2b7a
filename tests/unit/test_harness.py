"""eval.harness (ftx/eval/harness.py): task names checked against lm-eval's index (close matches, install
hint), the shipped local task's data, a user's task folder, the forgetting budget on harness deltas, and
objectives on harness metrics. The end-to-end runs are in tests/integration/test_production.py (tiny model)
and tests/integration/test_real_model.py (SmolLM2, slow)."""

from __future__ import annotations

import json
import sys

import pytest

from ftx.errors import ConfigError, RunError
from ftx.eval import harness
from ftx.eval.suite import compare, summary_table
from ftx.spec.eval import EvalConfig, HarnessConfig
from ftx.spec.run import build_spec, metric_direction
from ftx.spec.tree import compose
from tests.helpers import write_yesno_task

sys.path.insert(0, str(harness.SHIPPED))
import ftx_general_qa  # noqa: E402  the shipped task's loader, as lm-eval imports it (by path)

sys.path.remove(str(harness.SHIPPED))


def test_unknown_task_lists_close_matches_or_says_how_to_list():
    known = ["arc_easy", "arc_challenge", "hellaswag", "ftx_general_qa", "mmlu"]
    assert str(harness.unknown_task("helaswag", known)) == (
        "eval.harness.tasks: no lm-eval task or group named 'helaswag'; close matches: hellaswag")
    assert str(harness.unknown_task("arc_chalenge", known)).endswith("close matches: arc_challenge")
    assert str(harness.unknown_task("zzz", known)).endswith(
        "no close match (`lm-eval list tasks` lists them; eval.harness.include_path adds a folder of your own)")


def test_missing_lm_eval_is_one_line_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval → ImportError
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", None)
    monkeypatch.setattr(harness, "_MANAGERS", {})
    monkeypatch.setattr(harness, "_CHECKED", {})
    with pytest.raises(ConfigError) as e:
        harness.check(HarnessConfig(tasks=["ftx_general_qa"]))
    assert str(e.value) == ("eval.harness.tasks: lm-evaluation-harness is not installed; "
                            "pip install 'ftx[lm-eval]'")
    assert harness.check(HarnessConfig()) is None  # off: lm-eval is not needed


def test_shipped_task_resolves_without_indexing_lm_evals_own_tasks(monkeypatch):
    monkeypatch.setattr(harness, "_MANAGERS", {})
    monkeypatch.setattr(harness, "_CHECKED", {})
    tm = harness.check(HarnessConfig(tasks=["ftx_general_qa"]))
    assert "ftx_general_qa" in tm.all_tasks
    assert [defaults for _, defaults in harness._MANAGERS] == [False], "the ~10 s full index was not needed"
    assert harness.check(HarnessConfig(tasks=["ftx_general_qa"])) is tm  # base and tuned reuse the check


def test_shipped_task_is_four_way_choice_over_the_demo_general_set():
    rows = [json.loads(line) for line in ftx_general_qa.SOURCE.read_text().splitlines()]
    docs = ftx_general_qa.docs()
    assert len(docs) == len(rows) == 80
    assert [d["label"] for d in docs[:5]] == [0, 1, 2, 3, 0]
    for d, r in zip(docs, rows):
        assert len(d["choices"]) == len(set(d["choices"])) == 4
        assert r["response"].startswith(d["choices"][d["label"]]) and d["question"] == r["prompt"]
    assert docs[0]["choices"][0] == "The chemical symbol for gold is Au."
    assert ftx_general_qa.first_sentence("It is 3.5 m. Then more.") == "It is 3.5 m."
    # the task file is package data (pyproject's assets/**/* glob) beside the loader it names
    assert (harness.SHIPPED / "ftx_general_qa.yaml").read_text().count("!function ftx_general_qa.load") == 1


def test_a_users_task_folder_is_searched_and_a_bad_folder_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "_MANAGERS", {})
    monkeypatch.setattr(harness, "_CHECKED", {})
    write_yesno_task(tmp_path / "tasks", 6)
    tm = harness.check(HarnessConfig(tasks=["my_yesno", "ftx_general_qa"], include_path=str(tmp_path / "tasks")))
    assert {"my_yesno", "ftx_general_qa"} <= set(tm.all_tasks)
    with pytest.raises(ConfigError, match=r"^eval.harness.include_path: .*/nope is not a folder"):
        harness.check(HarnessConfig(tasks=["my_yesno"], include_path=str(tmp_path / "nope")))
    (tmp_path / "tasks" / "broken.yaml").write_text(
        f"task: broken\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path}/missing.jsonl\n"
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: '{{q}}'\ndoc_to_choice: ['a']\n"
        "doc_to_target: 0\n")
    monkeypatch.setattr(harness, "_MANAGERS", {})
    with pytest.raises(RunError, match=r"^eval.harness.tasks: lm-eval cannot load broken \("):
        harness.check(HarnessConfig(tasks=["broken"], include_path=str(tmp_path / "tasks")))


def detail(acc: float, n: int = 20) -> dict:
    return {"seconds": 1.0, "tasks": {"ftx_general_qa": {
        "metrics": {"acc": acc, "acc_norm": acc}, "stderr": {}, "examples": n, "of": 80, "num_fewshot": 0,
        "version": 1.0, "higher_is_better": {"acc": True, "acc_norm": True}}}}


@pytest.mark.parametrize("budget,flagged", [(None, False), (0.05, True), (0.2, False)])
def test_a_harness_drop_beyond_the_budget_is_a_forgetting_flag(budget, flagged):
    cfg = EvalConfig()
    cfg.harness.tasks = ["ftx_general_qa"]
    cfg.forgetting.harness_max_drop = budget
    base = {"harness_ftx_general_qa_acc": 0.6, "harness_ftx_general_qa_acc_norm": 0.6}
    tuned = {"harness_ftx_general_qa_acc": 0.5, "harness_ftx_general_qa_acc_norm": 0.5}
    out = compare(base, tuned, cfg, False, None, None, bench={"base": detail(0.6), "tuned": detail(0.5)})
    row = out["eval"]["harness"]["tasks"]["ftx_general_qa"]
    assert row["metric"] == "acc" and row["delta"] == pytest.approx(-0.1) and row["regression"] is flagged
    assert out["delta"]["harness_ftx_general_qa_acc"] == pytest.approx(-0.1)
    assert out["eval"]["forgetting"]["harness"]["ftx_general_qa"]["regression"] is flagged
    expected = [f"forgetting: harness ftx_general_qa acc 0.6000 -> 0.5000 (-0.1000, n=20) exceeds "
                f"eval.forgetting.harness_max_drop {budget:g}"] if flagged else []
    assert out["flags"] == expected
    lines = summary_table({"base": base, "tuned": tuned, **out})
    assert any(line.startswith("harness_ftx_general_qa_acc ") for line in lines)
    assert f"lm-eval ftx_general_qa: acc 0.6000 -> 0.5000 on 20 examples (-0.1000; budget " \
           f"{'none' if budget is None else format(budget, 'g')})" in lines


def test_objective_on_a_harness_metric_is_accepted_and_maximised():
    spec = build_spec(compose(["eval.harness.tasks=[ftx_general_qa]", "objective.metric=tuned/harness_ftx_general_qa_acc"]))
    assert spec.objective.metric == "tuned/harness_ftx_general_qa_acc"
    assert metric_direction("tuned/harness_ftx_general_qa_acc") == "maximize"
    assert metric_direction("tuned/harness_wikitext_word_perplexity") == "minimize"
    with pytest.raises(ConfigError, match="objective.metric: 'tuned/harness_ftx_general_qa_acc' is not produced"):
        build_spec(compose(["objective.metric=tuned/harness_ftx_general_qa_acc"]))  # harness off


def test_evaluate_scores_a_peft_model_and_leaves_rng_and_train_mode_as_they_were(tiny_smoke_spec):
    import random

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from ftx.engine import model as model_mod

    path = model_mod.resolve_model_path(tiny_smoke_spec.model)
    tok = model_mod.load_tokenizer(tiny_smoke_spec.model, path)
    model = get_peft_model(model_mod.load_model(tiny_smoke_spec.model, path), LoraConfig(r=2, target_modules="all-linear"))
    model.train()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = random.random(), np.random.rand(), torch.rand(1)
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    flat, detail = harness.evaluate(model, tok, HarnessConfig(tasks=["ftx_general_qa"], limit=4, batch_size=4), False)
    assert (random.random(), np.random.rand(), torch.rand(1)) == (expected[0], expected[1], expected[2])
    assert model.training, "the Trainer gets the model back in train mode"
    assert set(flat) == {"harness_ftx_general_qa_acc", "harness_ftx_general_qa_acc_norm"}
    assert (flat["harness_ftx_general_qa_acc"] * 4).is_integer() and detail["tasks"]["ftx_general_qa"]["examples"] == 4
