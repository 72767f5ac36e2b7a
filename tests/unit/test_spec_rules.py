"""The spec layer's named rules, fixed-choice enums and what the spec hash leaves out.

Rules run on a plain RunSpec() (no compose): each one is a function of the whole spec.
"""

from __future__ import annotations

import json

import pytest

from ftx.engine.trainer import spec_differences
from ftx.errors import ConfigError
from ftx.spec.choices import Choice
from ftx.spec.lora import LoraMethod
from ftx.spec.run import (RULES, TOOL_ONLY, RunSpec, as_dict, build_spec, rule_dpo_trains_on_whole_pairs,
                          rule_embedded_gguf_needs_no_remote_code,
                          rule_mixout_needs_unpartitioned_weights, rule_objective_is_measured,
                          rule_quantised_weights_cannot_train_in_full, rule_task_selection_needs_generation,
                          metric_direction, spec_hash)
from ftx.spec.tree import compose


def test_rules_are_all_run_by_check():
    assert set(RULES) == {rule_quantised_weights_cannot_train_in_full, rule_mixout_needs_unpartitioned_weights,
                          rule_embedded_gguf_needs_no_remote_code, rule_objective_is_measured,
                          rule_task_selection_needs_generation, rule_dpo_trains_on_whole_pairs}


@pytest.mark.parametrize("key,value", [("data.format.packing", True), ("data.format.raw_text", True),
                                       ("data.mix.domain_ratio", 0.8), ("data.curriculum.strategy", "score"),
                                       ("optimizer.llrd", 0.9)])
def test_rule_dpo_trains_on_whole_pairs(key, value):
    spec = RunSpec()
    group, *path, last = key.split(".")
    node = getattr(spec, group)
    for part in path:
        node = getattr(node, part)
    setattr(node, last, value)
    rule_dpo_trains_on_whole_pairs(spec)  # SFT: allowed
    for objective in ("dpo", "orpo"):  # both preference objectives compare whole replies
        spec.train.objective = objective
        with pytest.raises(ConfigError, match=rf"^{key}: cannot be used with train.objective={objective} \("):
            rule_dpo_trains_on_whole_pairs(spec)
        fresh = RunSpec()
        fresh.train.objective = objective
        rule_dpo_trains_on_whole_pairs(fresh)  # the defaults are fine
        fresh.objective.metric = "tuned/val_pref_accuracy"
        rule_objective_is_measured(fresh)


def test_rule_objective_is_measured():
    spec = RunSpec()
    for ok in ("auto", "tuned/val_contains", "delta/val_loss", "train/seconds", "tuned/test_token_f1"):
        spec.objective.metric = ok
        rule_objective_is_measured(spec)
    spec.objective.metric = "tuned/val_contains"
    spec.eval.generation.enabled = False
    with pytest.raises(ConfigError, match=r"^objective.metric: 'tuned/val_contains' is not produced by this eval "
                                          r"config \(eval.generation.enabled=false\); tuned/ takes: val_loss, "):
        rule_objective_is_measured(spec)
    spec.eval.generation.enabled = True
    spec.objective.metric = "tuned/general_eval_contains"
    with pytest.raises(ConfigError, match=r"\(eval.generation.splits=\[val, test\]\)"):
        rule_objective_is_measured(spec)
    spec.objective.metric = "tuned/golden_pass_rate"
    with pytest.raises(ConfigError, match=r"no golden set"):
        rule_objective_is_measured(spec)
    spec.objective.metric, spec.eval.base_vs_tuned = "delta/val_contains", False
    with pytest.raises(ConfigError, match=r"needs the base model measured"):
        rule_objective_is_measured(spec)


def test_rule_task_selection_needs_generation():
    spec = RunSpec()
    spec.eval.select.metric = "task"
    rule_task_selection_needs_generation(spec)
    spec.eval.generation.splits = ["test"]
    with pytest.raises(ConfigError, match=r"^eval.select.metric: =task .* needs generation on val"):
        rule_task_selection_needs_generation(spec)
    spec.eval.select.metric = "auto"  # auto falls back to the loss
    rule_task_selection_needs_generation(spec)


@pytest.mark.parametrize("override, message", [
    ("eval.significance=0", "eval.significance: must be in (0, 1) (0.05 = 5% level), got 0.0"),
    ("eval.significance=1", "eval.significance: must be in (0, 1) (0.05 = 5% level), got 1.0"),
    ("eval.primary=val_bogus", "eval.primary: must be auto or <split>_<metric> with split one of val, test, "
                               "general_eval and metric one of exact_match, contains, token_f1, rouge_l, judge; "
                               "got 'val_bogus'"),
    ("eval.primary=general_eval_contains", "eval.primary: =general_eval_contains: split 'general_eval' is not "
                                           "generated (eval.generation.enabled=true, eval.generation.splits=[val, test])"),
    ("eval.primary=val_judge", "eval.primary: =val_judge needs a judge (eval.judge.kind is none)"),
])
def test_eval_task_settings_fail_as_one_line(override, message):
    with pytest.raises(ConfigError) as e:
        build_spec(compose([override]))
    assert str(e.value) == message


def test_metric_direction_follows_the_metric():
    assert [metric_direction(m) for m in ("tuned/val_loss", "delta/val_ppl", "tuned/val_contains", "train/seconds",
                                          "tuned/golden_pass_rate", "tuned/val_judge_pass", "cost/device_hours",
                                          "tuned/test_token_f1")] == \
        ["minimize", "minimize", "maximize", "minimize", "maximize", "maximize", "minimize", "maximize"]


def test_rule_quantised_weights_cannot_train_in_full():
    spec = RunSpec()
    spec.quant.mode, spec.lora.method = "nf4", "full"
    with pytest.raises(ConfigError, match=r"^quant.mode: =nf4 cannot train with lora.method=full \(quantised weights "
                                          r"are frozen\); use quant=none or a LoRA method$"):
        rule_quantised_weights_cannot_train_in_full(spec)
    spec.lora.method = "lora"
    rule_quantised_weights_cannot_train_in_full(spec)
    spec.quant.mode, spec.lora.method = "none", "full"
    rule_quantised_weights_cannot_train_in_full(spec)


def test_rule_mixout_needs_unpartitioned_weights():
    spec = RunSpec()
    spec.optimizer.mixout, spec.zero.stage = 0.1, 3
    with pytest.raises(ConfigError, match=r"^optimizer.mixout: cannot mix ZeRO-3's partitioned weights; "
                                          r"use zero.stage<=2 or optimizer.mixout=0$"):
        rule_mixout_needs_unpartitioned_weights(spec)
    spec.zero.stage = 2
    rule_mixout_needs_unpartitioned_weights(spec)
    spec.optimizer.mixout, spec.zero.stage = 0.0, 3
    rule_mixout_needs_unpartitioned_weights(spec)


def test_rule_embedded_gguf_needs_no_remote_code():
    spec = RunSpec()
    spec.model.trust_remote_code = True
    with pytest.raises(ConfigError, match=r"^model.trust_remote_code: is not needed for the embedded GGUF model; "
                                          r"leave it false$"):
        rule_embedded_gguf_needs_no_remote_code(spec)
    spec.model.source = "path"
    rule_embedded_gguf_needs_no_remote_code(spec)


def test_rules_run_from_build_spec():
    with pytest.raises(ConfigError, match="^quant.mode: =int8 cannot train with lora.method=full"):
        build_spec(compose(["quant=int8", "lora=full"]))


# ---------------------------------------------------------------- fixed choices

@pytest.mark.parametrize("override, message", [
    ("lora.method=x", "lora.method: must be one of lora, dora, rslora, full; got 'x'"),
    ("objective.direction=up", "objective.direction: must be auto, minimize or maximize; got 'up'"),
    ("quant.compute_dtype=fp16", "quant.compute_dtype: must be auto, bf16 or fp32; got 'fp16'"),
    ("train.objective=kto", "train.objective: must be sft, cpt, dpo or orpo; got 'kto'"),
    ("tracking.backend=mlflow", "tracking.backend: must be none or wandb; got 'mlflow'"),
    ("optimizer.name=adam", "optimizer.name: must be one of adamw_torch, adamw_torch_fused, adamw_bnb_8bit, paged_adamw_8bit, sgd; "
                            "got 'adam'"),
    ("data.sources.http.on_bad_record=warn", "data.sources.http.on_bad_record: must be error or skip; got 'warn'"),
    ("data.sources.http.kind=csv", "data.sources.http.kind: must be one of auto, chat, prompt_response, text, preference; "
                                   "got 'csv'"),
    ("curation.near_dedup.unit=byte", "curation.near_dedup.unit: must be word or char, got 'byte'"),
    ("curation.near_dedup.keep=last", "curation.near_dedup.keep: must be first or longest, got 'last'"),
    ("curation.relevance.embedding_precision=fp16",
     "curation.relevance.embedding_precision: must be auto, fp32 or bf16; got 'fp16'"),
    ("curation.relevance.threshold.mode=auto",
     "curation.relevance.threshold.mode: must be absolute, top_k or calibrated; got 'auto'"),
    ("model.dtype=7", "model.dtype: must be one of auto, bf16, fp32; got '7'"),
])
def test_bad_choice_keeps_its_message(override, message):
    with pytest.raises(ConfigError) as e:
        build_spec(compose([override]))
    assert str(e.value) == message


def test_choices_behave_as_their_values():
    spec = build_spec(compose(["lora=full"]))
    assert isinstance(spec.lora.method, Choice) and spec.lora.method == "full"
    assert f"{spec.lora.method}" == str(spec.lora.method) == "full"
    assert {"full": 1}[spec.lora.method] == 1 and json.dumps(spec.lora.method) == '"full"'
    assert all(m.name == m.value for m in LoraMethod)
    resolved = as_dict(spec)
    assert type(resolved["lora"]["method"]) is str and type(resolved["train"]["precision"]) is str


# ---------------------------------------------------------------- tool-only settings and the hash

def _resolved(**changes) -> dict:
    spec = RunSpec()
    for key, value in changes.items():
        group, *path, name = key.split("__")
        node = getattr(spec, group)
        for p in path:
            node = getattr(node, p)
        setattr(node, name, value)
    return as_dict(spec)


def test_tool_only_keys():
    assert TOOL_ONLY == ("data.augment", "eval.reproduce_rtol")


@pytest.mark.parametrize("change", [{"data__augment__per_record": 3}, {"eval__reproduce_rtol": 0.5},
                                    {"data__augment__kinds": ["paraphrase"]}])
def test_tool_only_settings_leave_hash_and_resume_check_alone(change):
    base, changed = _resolved(), _resolved(**change)
    assert base != changed
    assert spec_hash(changed) == spec_hash(base)
    assert spec_differences(base, changed) == []


def test_a_training_setting_changes_hash_and_resume_check():
    base, changed = _resolved(), _resolved(lora__r=16)
    assert spec_hash(changed) != spec_hash(base)
    assert spec_differences(base, changed) == ["lora.r"]


@pytest.mark.parametrize("build, message", [
    (lambda: __import__("ftx.spec.lora", fromlist=["x"]).LoraConfig(method="x"),
     "lora.method: must be one of lora, dora, rslora, full; got 'x'"),
    (lambda: __import__("ftx.spec.quant", fromlist=["x"]).QuantConfig(compute_dtype="bf17"),
     "quant.compute_dtype: must be auto, bf16 or fp32; got 'bf17'"),
])
def test_a_config_built_in_python_gets_the_composed_message_for_a_bad_choice(build, message):
    """Choice fields are validated by OmegaConf while composing; a config made in Python (no compose)
    gets the same one line from its check()."""
    with pytest.raises(ConfigError) as e:
        build().check()
    assert str(e.value) == message
