"""The comparison layer (deltas, forgetting budget, golden and probe flags), prompt files, judges
and the eval group's validation — no model needed."""

from __future__ import annotations

import json

import pytest

from ftx.errors import ConfigError, DataError
from ftx.eval.generate import read_prompt_file
from ftx.eval.judge import ReferenceJudge, load_judge
from ftx.eval.suite import compare, confident_nonsense, summary_table
from ftx.record.rerun import reproduction
from ftx.spec.eval import EvalConfig
from ftx.spec.run import build_spec
from ftx.spec.tree import compose
from tests.helpers import write_jsonl


def _cfg(**kw) -> EvalConfig:
    cfg = EvalConfig()
    for key, value in kw.items():
        group, _, name = key.partition("__")
        setattr(getattr(cfg, group), name, value) if name else setattr(cfg, key, value)
    return cfg


def test_delta_is_tuned_minus_base_on_shared_numeric_keys():
    out = compare({"val_loss": 2.0, "val_token_f1": 0.25, "only_base": 1.0},
                  {"val_loss": 1.5, "val_token_f1": 0.5, "only_tuned": 3.0}, _cfg(), False, None, None)
    assert out["delta"] == {"val_loss": -0.5, "val_token_f1": 0.25}
    assert out["eval"]["precision"] == "fp32" and out["flags"] == []


@pytest.mark.parametrize("tuned,budget,flagged", [
    (2.1, 0.10, False),   # +5% within a 10% budget
    (2.3, 0.10, True),    # +15% over it
    (2.3, None, False),   # no budget: reported, never flagged
    (1.8, 0.0, False),    # got better
])
def test_forgetting_budget_flags_general_loss_rises(tuned, budget, flagged):
    out = compare({"general_eval_loss": 2.0}, {"general_eval_loss": tuned}, _cfg(forgetting__budget=budget),
                  True, None, None)
    f = out["eval"]["forgetting"]
    assert f["relative_change"] == pytest.approx((tuned - 2.0) / 2.0)
    assert f["regression"] is flagged
    assert bool(out["flags"]) is flagged
    if flagged:
        assert out["flags"][0].startswith("forgetting: general_eval_loss 2.0000 -> 2.3000 (+15.0%)")


def test_forgetting_explains_why_it_could_not_be_measured():
    no_general = compare({"val_loss": 1.0}, {"val_loss": 1.0}, _cfg(), False, None, None)
    assert "no general_eval split" in no_general["eval"]["forgetting"]["status"]
    no_base = compare({}, {"general_eval_loss": 1.0}, _cfg(), False, None, None)
    assert "base not measured" in no_base["eval"]["forgetting"]["status"]


def test_golden_min_pass_rate_and_probe_max_rate_flag_the_run():
    golden = {"passed": 2, "total": 4, "match": "contains"}
    probe = {"prompts": 4, "confident_nonsense": 2, "rate": 0.5}
    out = compare({}, {}, _cfg(golden__min_pass_rate=0.75, offdomain__max_rate=0.25), False, golden, probe)
    assert out["eval"]["golden"]["regression"] and out["eval"]["offdomain"]["regression"]
    assert [f.split(":")[0] for f in out["flags"]] == ["golden", "offdomain"]
    ok = compare({}, {}, _cfg(golden__min_pass_rate=0.5, offdomain__max_rate=0.5), False, dict(golden), dict(probe))
    assert ok["flags"] == []


def test_confident_nonsense_needs_higher_loss_and_higher_confidence():
    base = [{"loss_sum": 10.0, "conf_sum": 5.0, "tokens": 10}] * 3
    tuned = [{"loss_sum": 15.0, "conf_sum": 7.0, "tokens": 10},   # +0.5 nats/token, surer: nonsense
             {"loss_sum": 15.0, "conf_sum": 4.0, "tokens": 10},   # worse but less sure: honest confusion
             {"loss_sum": 10.5, "conf_sum": 9.0, "tokens": 10}]   # +0.05 nats/token: within the margin
    assert confident_nonsense(["a", "b", "c"], base, tuned, margin=0.1) == ["a"]
    assert confident_nonsense(["a", "b", "c"], base, tuned, margin=0.01) == ["a", "c"]


def test_summary_table_lists_loss_ppl_and_generation_rows_and_flags():
    metrics = {"base": {"val_loss": 2.0, "val_ppl": 7.389, "val_exact_match": 0.0, "val_token_f1": 0.2,
                        "val_rouge_l": 0.1},
               "tuned": {"val_loss": 1.0, "val_ppl": 2.718, "val_exact_match": 0.5, "val_token_f1": 0.6,
                         "val_rouge_l": 0.7},
               "eval": {"golden": {"passed": 3, "total": 4, "match": "contains", "base_passed": 1}},
               "flags": ["forgetting: too much"]}
    text = "\n".join(summary_table(metrics))
    for row in ("val_loss", "val_ppl", "val_exact_match", "val_token_f1", "val_rouge_l"):
        assert row in text
    assert "val_exact_match                 0.0000      0.5000      0.5000" in text
    assert "golden set: 3/4 passed (contains), base 1/4" in text
    assert "REGRESSION forgetting: too much" in text


def test_reproduction_uses_relative_tolerance_per_value():
    stored = {"base": {"val_loss": 2.0, "tokens": 10}, "tuned": {"val_loss": 1.0, "val_bleu": 40.0}}
    same = reproduction(stored, {"base": {"val_loss": 2.0005}, "tuned": {"val_loss": 1.0, "val_bleu": 40.0}}, 1e-3)
    assert same["ok"] and same["compared"] == 3
    off = reproduction(stored, {"base": {"val_loss": 2.01}, "tuned": {"val_loss": 1.0, "val_bleu": 40.0}}, 1e-3)
    assert not off["ok"] and off["failed"][0].startswith("base/val_loss")
    assert not reproduction(stored, {}, 1e-3)["ok"], "nothing compared is not a reproduction"


def test_prompt_files_are_checked_line_by_line(tmp_path):
    good = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "prompt": "p", "answers": ["x", "y"]},
                                              {"prompt": "q", "answers": "z"}])
    rows = read_prompt_file(str(good), "eval.golden.path", ("prompt", "answers"))
    assert rows[1] == {"id": "g:2", "prompt": "q", "answers": ["z"]}
    bad = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "p", "answers": ["x"]}, {"prompt": "p", "answer": "x"}])
    with pytest.raises(DataError, match=r"b\.jsonl:2: field 'answers' must be a non-empty list of strings"):
        read_prompt_file(str(bad), "eval.golden.path", ("prompt", "answers"))
    (tmp_path / "m.jsonl").write_text('{"prompt": "p", "response": "r"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"m\.jsonl:2: malformed JSON"):
        read_prompt_file(str(tmp_path / "m.jsonl"), "eval.offdomain.path", ("prompt", "response"))
    with pytest.raises(DataError, match="eval.offdomain.path: file not found"):
        read_prompt_file(str(tmp_path / "nope.jsonl"), "eval.offdomain.path", ("prompt", "response"))


class _Judge:
    name = "const"

    def __init__(self, value):
        self.value = value

    def score(self, items):
        return [self.value for _ in items]


def make_const_judge(cfg, context):
    return _Judge(cfg.threshold)


def test_judges_none_reference_and_plugged_in():
    ctx = {"model_cfg": None, "path": None}
    assert load_judge(_cfg(judge__kind="none").judge, ctx) is None
    ref = load_judge(_cfg(judge__kind="reference").judge, ctx)
    assert isinstance(ref, ReferenceJudge)
    assert ref.score([{"prompt": "", "prediction": "the cat sat on the mat", "answers": ["cat on mat"]},
                      {"prompt": "", "prediction": "dog", "answers": ["cat"]}]) == pytest.approx([6 / 7, 0.0])
    mine = load_judge(_cfg(judge__kind=f"{__name__}:make_const_judge", judge__threshold=0.3).judge, ctx)
    assert mine.score([{}, {}]) == [0.3, 0.3]
    with pytest.raises(ConfigError, match="eval.judge.kind: cannot import 'no_such_mod:x'"):
        load_judge(_cfg(judge__kind="no_such_mod:x").judge, ctx)


@pytest.mark.parametrize("override,needle", [
    ("eval.generation.splits=[val,train]", "eval.generation.splits: must name val, test, general_eval; got 'train'"),
    ("eval.golden.match=fuzzy", "eval.golden.match: must be contains or exact"),
    ("eval.forgetting.budget=-0.1", "eval.forgetting.budget: must be >= 0 or null"),
    ("eval.judge.kind=gpt", "eval.judge.kind: must be none, reference, lm, pairwise or package.module:factory"),
    ("eval.precision=fp16", "eval.precision: must be one of train, bf16, fp32"),
    ("eval.generation.max_new_tokens=0", "eval.generation.max_new_tokens: must be > 0"),
    ("eval.generation.temprature=0.5", "unknown key 'eval.generation.temprature'"),
])
def test_bad_eval_settings_fail_with_one_line(override, needle):
    with pytest.raises(ConfigError) as err:
        build_spec(compose([override]))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_eval_options_compose():
    assert build_spec(compose(["eval=loss_only"])).eval.generation.enabled is False
    judged = build_spec(compose(["eval=judged"])).eval
    assert judged.judge.kind == "lm" and judged.golden.path == "asset:demo/golden.jsonl"
    json.dumps(judged.generation.splits)  # plain list after to_object
