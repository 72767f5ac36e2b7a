"""Judging runs by the task metric: paired tests (McNemar, paired bootstrap) on known cases, a damaged
tuned model flagged with a significant regression, the auto objective, sweeps never picking a flagged
trial, checkpoints chosen by the task metric on the tiny model, and accepted answers carried from the
sources through curation and formatting into every generation metric."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from ftx.eval.metrics import aggregate
from ftx.eval.paired import bootstrap, describe, mcnemar, paired, task_comparison
from ftx.eval.suite import compare, summary_table
from ftx.pipeline import resolve_objective
from ftx.spec.eval import EvalConfig
from ftx.spec.run import build_spec
from ftx.spec.tree import compose
from tests.helpers import write_jsonl

# ---------------------------------------------------------------- the tests themselves


def test_mcnemar_exact_p_on_a_known_table():
    # 8 examples right before and wrong after, 1 the other way round, 11 unchanged:
    # two-sided exact binomial on 9 discordant pairs, P(X <= 1) * 2 = 2 * (1 + 9) / 2**9
    base = [1] * 8 + [0] + [1] * 5 + [0] * 6
    tuned = [0] * 8 + [1] + [1] * 5 + [0] * 6
    r = mcnemar(base, tuned)
    assert (r["lost"], r["won"]) == (8, 1)
    assert r["p"] == pytest.approx(2 * 10 / 512)
    assert mcnemar([1, 0, 1], [1, 0, 1])["p"] == 1.0  # no discordant pair: no evidence either way


def test_paired_uses_mcnemar_for_binary_and_bootstrap_for_continuous():
    b = paired([1] * 8 + [0] * 12, [0] * 8 + [0] * 12, alpha=0.05)
    assert b["test"] == "mcnemar" and b["p"] == pytest.approx(2 / 2 ** 8) and b["verdict"] == "regression"
    c = paired([0.5, 0.4, 0.6, 0.5], [0.2, 0.1, 0.3, 0.25], alpha=0.05)
    assert c["test"] == "bootstrap" and c["diff"] == pytest.approx(-0.2875)


def test_bootstrap_is_seeded_covers_the_mean_and_detects_no_change():
    rng = random.Random(1)
    base = [rng.random() for _ in range(60)]
    tuned = [x + 0.1 + rng.gauss(0, 0.05) for x in base]
    r1, r2 = bootstrap(base, tuned, 0.05, seed=3), bootstrap(base, tuned, 0.05, seed=3)
    assert r1 == r2
    mean = sum(t - b for b, t in zip(base, tuned)) / 60
    assert r1["ci"][0] < mean < r1["ci"][1] and r1["ci"][0] > 0 and r1["p"] < 0.001
    noise = [rng.gauss(0, 0.1) for _ in range(60)]
    sym = bootstrap([0.0] * 120, noise + [-x for x in noise], 0.05)  # mean exactly 0: nothing to see
    assert sym["p"] > 0.5 and sym["ci"][0] < 0 < sym["ci"][1]
    assert bootstrap([0.2, 0.3], [0.1, 0.2], 0.05) == {"p": 0.0, "ci": [pytest.approx(-0.1)] * 2}


def test_paired_verdicts_and_the_flag_text():
    r = paired([1] * 24 + [0] * 46, [1] * 12 + [0] * 58, alpha=0.05)
    text = describe("val_contains", r)
    assert text.startswith("val_contains 0.34 → 0.17 (paired, p=") and text.endswith(", n=70)")
    up = paired([0] * 70, [1] * 11 + [0] * 59, alpha=0.05)
    assert up["verdict"] == "improvement" and "95% CI [+0." in describe("val_exact_match", up)
    small = paired([1, 0, 1, 0], [0, 0, 1, 0], alpha=0.05)  # one lost example out of four is no evidence
    assert small["verdict"] == "none"


# ---------------------------------------------------------------- a damaged tuned model is flagged

QA = [(f"What port does service {i} listen on?", [f"{1000 + i}", f"port {1000 + i}"]) for i in range(40)]


def _rows(side_preds):
    preds, answers = side_preds, [a for _, a in QA]
    _summary, per = aggregate(preds, answers)
    return [{"set": "val", "id": f"q{i}", "prediction": p, "answers": a, **s}
            for i, (p, a, s) in enumerate(zip(preds, answers, per))]


def test_a_tuned_model_answering_with_shuffled_answers_is_flagged():
    """Base answers 30 of 40 right; the 'tuned' model answers with the answers of other questions (a model
    trained on shuffled answers): containment drops significantly and the run is flagged."""
    base_preds = [f"It listens on port {a[0]}." if i < 30 else "I do not know." for i, (_, a) in enumerate(QA)]
    shuffled = [QA[(i + 7) % len(QA)][1][0] for i in range(len(QA))]
    tuned_preds = [f"Port {s}." for s in shuffled]
    base_rows, tuned_rows = _rows(base_preds), _rows(tuned_preds)
    base_flat = {"val_loss": 2.0, **{f"val_{k}": v for k, v in aggregate(base_preds, [a for _, a in QA])[0].items()}}
    tuned_flat = {"val_loss": 1.0, **{f"val_{k}": v for k, v in aggregate(tuned_preds, [a for _, a in QA])[0].items()}}
    task = task_comparison(base_rows, tuned_rows, 0.05)
    assert task["val_contains"]["test"] == "mcnemar" and task["val_token_f1"]["test"] == "bootstrap"
    out = compare(base_flat, tuned_flat, EvalConfig(), False, None, None, task)
    # token F1 / ROUGE-L barely move: the short "Port N." shares "port" with the accepted answer (the format
    # was learned, the knowledge lost); containment sees it, McNemar on 30 lost examples calls it significant
    assert [f.split(" ")[0] for f in out["flags"]] == ["val_contains"]
    assert task["val_exact_match"]["verdict"] == "none"
    assert out["flags"][0].startswith("val_contains 0.75 → 0.00 (paired, p=")
    assert task["val_contains"]["p"] < 1e-6 and task["val_contains"]["n"] == 40
    metrics = {"base": base_flat, "tuned": tuned_flat, **out}
    lines = summary_table(metrics)
    assert any(line.startswith("REGRESSION val_contains 0.75 → 0.00 (paired, p=") for line in lines)
    # and a sweep objective on the task metric is told: on_regression=penalize pushes it below any clean run
    spec = build_spec(compose(["objective.on_regression=penalize"]))
    ev = SimpleNamespace(primary="val_contains", has_answers=True)
    obj = resolve_objective(spec, metrics, ev)
    assert obj["metric"] == "tuned/val_contains" and obj["flagged"] and obj["value"] < -1 < 0 <= obj["raw"]


def test_an_improvement_is_reported_with_its_interval_not_flagged():
    base_preds = ["I do not know."] * 40
    tuned_preds = [a[0] if i < 20 else "no idea" for i, (_, a) in enumerate(QA)]
    task = task_comparison(_rows(base_preds), _rows(tuned_preds), 0.05)
    out = compare({}, {}, EvalConfig(), False, None, None, task)
    assert out["flags"] == []
    notes = out["eval"]["task"]["improvements"]
    assert any(n.startswith("val_exact_match 0.00 → 0.50 (+0.50, 95% CI [+0.") for n in notes)
    assert "IMPROVED " + notes[0] in summary_table({"tuned": {}, **out})


# ---------------------------------------------------------------- the objective


def test_default_objective_is_the_task_metric_when_answers_exist():
    spec = build_spec(compose([]))
    assert (spec.objective.metric, spec.objective.direction) == ("auto", "auto")
    metrics = {"tuned": {"val_loss": 2.5, "val_contains": 0.25}, "flags": []}
    with_answers = resolve_objective(spec, metrics, SimpleNamespace(primary="val_contains", has_answers=True))
    assert with_answers["metric"] == "tuned/val_contains" and with_answers["direction"] == "maximize"
    assert with_answers["raw"] == 0.25 and with_answers["value"] == pytest.approx(0.25 - 2.5e-6)
    without = resolve_objective(spec, metrics, SimpleNamespace(primary="val_contains", has_answers=False))
    assert (without["metric"], without["direction"], without["value"]) == ("tuned/val_loss", "minimize", 2.5)
    # loss breaks ties between equal task scores, never outweighs one example
    a = resolve_objective(spec, {"tuned": {"val_loss": 2.0, "val_contains": 0.25}}, with_answers_ev())
    b = resolve_objective(spec, {"tuned": {"val_loss": 3.0, "val_contains": 0.25}}, with_answers_ev())
    c = resolve_objective(spec, {"tuned": {"val_loss": 90.0, "val_contains": 0.26}}, with_answers_ev())
    assert c["value"] > a["value"] > b["value"]
    explicit = build_spec(compose(["objective.metric=delta/val_loss"]))
    assert resolve_objective(explicit, {"delta": {"val_loss": -0.5}}, None)["direction"] == "minimize"


def with_answers_ev():
    return SimpleNamespace(primary="val_contains", has_answers=True)


def test_a_job_whose_auto_objective_disagrees_with_the_study_fails_as_one_line():
    from ftx.errors import RunError

    spec = build_spec(compose(["++sweep.direction=minimize"]))
    with pytest.raises(RunError, match=r"^objective.metric: resolved to tuned/val_contains \(maximize, .*study "
                                       r"minimizes; set objective.metric"):
        resolve_objective(spec, {"tuned": {"val_loss": 1.0, "val_contains": 0.5}}, with_answers_ev())


# ---------------------------------------------------------------- sweeps never pick a flagged trial


def _job(run_dir: Path, value: float, flags: list, on_regression="fail"):
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"flags": flags, "objective": {
        "metric": "tuned/val_contains", "value": value, "on_regression": on_regression}}))
    ret = JobReturn()
    ret.status, ret._return_value = JobStatus.COMPLETED, value
    ret.hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(run_dir)}}})
    return ret


@pytest.mark.parametrize("on_regression", ["fail", "penalize"])
def test_the_sweeper_never_reports_a_flagged_trial_as_best(tmp_path, on_regression):
    import optuna

    from hydra_plugins.ftx_sweeper import _study
    from hydra_plugins.ftx_sweeper.sweeper import FtxSweeper

    sweeper = FtxSweeper(direction="maximize")
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    flagged_value = 0.9 if on_regression == "fail" else 0.9 - (0.9 + 1)  # what the job returns when penalised
    for i, (value, flags) in enumerate([(0.4, []), (flagged_value, ["val_contains 0.60 → 0.20 (paired, p=0.001, "
                                                                    "n=40)"]), (0.5, [])]):
        trial = study.ask(dist)
        sweeper._tell(study, trial, _job(tmp_path / str(i), value, flags, on_regression))
    assert study.best_trial.number == 2 and study.best_value == 0.5
    t1 = study.trials[1]
    assert t1.user_attrs["flagged"] and (t1.state.name == "FAIL") == (on_regression == "fail")
    assert _study.progress(study)[2] == []  # a flagged verdict does not eat hydra.sweeper.max_failures
    if on_regression == "fail":
        assert _study.counts(study) == {"complete": 2, "flagged": 1}


# ---------------------------------------------------------------- checkpoints chosen by the task metric


def test_best_checkpoint_is_chosen_by_the_task_metric_on_the_tiny_model(tmp_path):
    """eval_loss keeps falling for 6 steps; the task metric peaks at step 2: the Trainer keeps step 2."""
    from transformers import EarlyStoppingCallback

    from ftx.data import format as fmt
    from ftx.engine.model import load_model, load_tokenizer
    from ftx.engine.trainer import make_trainer_class, training_arguments
    from ftx.eval.select import select_callback
    from tests.helpers import TINY

    tok, model = load_tokenizer(TINY), load_model(TINY)
    spec = build_spec(compose(["experiment=tiny_smoke", "train.max_steps=6", "train.eval_steps=2",
                               "train.save_steps=2", "train.keep_best=true", "train.save_total_limit=1"]))
    recs = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}?"},
                                         {"role": "assistant", "content": f"answer {i} " * 5}]} for i in range(16)]
    ex = [fmt.encode(r, tok, spec.data.format)[0] for r in recs]
    args = training_arguments(spec, tmp_path, False, "eval_val_contains")
    assert (args.metric_for_best_model, args.greater_is_better, args.load_best_model_at_end) == \
        ("eval_val_contains", True, True)
    scores = iter([0.5, 0.25, 0.125])  # steps 2, 4, 6
    seen, logged = [], []

    def score(m):
        seen.append(m)
        return next(scores)

    trainer = make_trainer_class()(model=model, args=args, train_dataset=ex[:12], eval_dataset=ex[12:],
                                   data_collator=fmt.Collator(tok.pad_token_id),
                                   callbacks=[select_callback(score, "eval_val_contains", logged.append),
                                              EarlyStoppingCallback(5)])
    trainer.train()
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-2") and trainer.state.best_metric == 0.5
    assert [e["eval_val_contains"] for e in logged] == [0.5, 0.25, 0.125] and seen[0] is not None
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]  # loss alone would have kept the last step


# ---------------------------------------------------------------- answers through curation and formatting


def test_answers_survive_curation_and_formatting_into_every_generation_metric(tmp_path):
    """Records with accepted answers go through curation stages and the chat format; the evaluator's prompts
    carry those answers (not only the response text), and each generation metric scores an accepted
    answer that is not the response as right; the golden set's answers are scored the same way."""
    from ftx.data.build import prepare
    from ftx.engine.model import load_tokenizer
    from ftx.eval.suite import Evaluator
    from tests.helpers import TINY

    rng = random.Random(0)
    words = ["amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kelp",
             "lantern", "meadow", "nickel", "orchid", "pebble", "quartz", "raven", "saffron", "tundra", "umber",
             "velvet", "willow", "xenon", "yarrow", "zephyr", "copper", "marble", "thistle", "obsidian"]

    def name():
        return " ".join(rng.sample(words, 3))

    recs = []
    for i in range(60):
        svc = name()
        recs.append({"id": f"port-{i}", "prompt": f"Which TCP port does the {svc} daemon use by default?",
                     "response": f"The service number {i} ({svc}, {name()}) listens on TCP port {2000 + i} "
                                 f"when {name()} is not set.",
                     "answers": [f"port {2000 + i}", f"{2000 + i}/tcp"]})
    write_jsonl(tmp_path / "qa.jsonl", recs)
    write_jsonl(tmp_path / "golden.jsonl", [{"id": "g1", "prompt": "Port of service 1?", "answers": ["2001/tcp"]}])
    spec = build_spec(compose(["experiment=tiny_smoke", "curation=default",
                               f"curation.cache_dir={tmp_path}/cache",
                               "curation.stages=[normalize,quality,pii,exact_dedup,near_dedup]",
                               f"data.sources.http.path={tmp_path}/qa.jsonl",
                               f"eval.golden.path={tmp_path}/golden.jsonl", "eval.offdomain.path=null"]))
    tok = load_tokenizer(TINY)
    data = prepare(spec.data, spec.curation, tok, tmp_path / "run")
    assert data.val and all(ex["id"] in data.answers for ex in data.val)
    ev = Evaluator(spec, tok, data, False)
    assert ev.has_answers and ev.primary == "val_contains"  # short accepted answers: contains
    for item in ev.prompts["val"]:
        i = int(item["id"].split("-")[1])
        assert item["answers"][0].startswith(f"The service number {i} (")
        assert item["answers"][1:] == [f"port {2000 + i}", f"{2000 + i}/tcp"]
    items = ev.prompts["val"]
    summary, per = aggregate([f"{it['answers'][2]}" for it in items], [it["answers"] for it in items])
    for metric in ("exact_match", "contains", "token_f1", "rouge_l"):
        assert summary[metric] == 1.0, metric
    without = aggregate([f"{it['answers'][2]}" for it in items], [it["answers"][:1] for it in items])[0]
    assert without["exact_match"] == 0.0  # the response text alone would not accept the short answer
    assert ev.golden[0]["answers"] == ["2001/tcp"]


def test_ftx_compare_ranks_by_the_resolved_objective_and_never_marks_a_flagged_run_best(tmp_path):
    from ftx.record.compare import compare as compare_runs
    from tests.unit.test_track_reports import make_run

    flag = "val_contains 0.60 → 0.20 (paired, p=0.001, n=40)"
    for name, value, flags in (("a", 0.30, []), ("b", 0.90, [flag]), ("c", 0.50, [])):
        run = make_run(tmp_path / name, direction="auto", extra_cfg={"objective": {"metric": "auto",
                                                                                   "direction": "auto"}})
        (run / "metrics.json").write_text(json.dumps({
            "tuned": {"val_loss": 1.0, "val_contains": value}, "flags": flags,
            "objective": {"metric": "tuned/val_contains", "direction": "maximize", "value": value}}))
    c = compare_runs([str(tmp_path)])
    assert (c.rank_metric, c.direction) == ("objective/value", "maximize")
    assert c.labels[c.best] == "c"
    assert list(c.table["flags"]) == ["", flag, ""]
