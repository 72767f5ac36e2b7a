"""Operational metrics (ftx.eval.ops): per-answer timing and token counts on the tiny model, checked against
direct generation; the latency/token budgets flag a deliberately slowed or wordier tuned model."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

from ftx.errors import ConfigError  # noqa: E402
from ftx.eval import ops  # noqa: E402
from ftx.eval.generate import generation_kwargs  # noqa: E402
from ftx.eval.suite import Evaluator, compare, summary_table  # noqa: E402
from ftx.spec.eval import EvalConfig, GenerationConfig  # noqa: E402
from ftx.spec.run import build_spec  # noqa: E402
from ftx.spec.tree import compose  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ftx.data.build import prepare
    from ftx.engine.model import load_model, load_tokenizer, resolve_model_path

    spec = build_spec(compose(["experiment=tiny_smoke", "curation=none", "eval.latency.prompts=4",
                               "eval.latency.warmup=1", "eval.generation.max_new_tokens=6",
                               "eval.generation.max_examples=4", "eval.max_examples=4",
                               "eval.generation.splits=[val]", "eval.golden.path=null", "eval.offdomain.path=null"]))
    path = resolve_model_path(spec.model)
    tok = load_tokenizer(spec.model, path)
    data = prepare(spec.data, spec.curation, tok, tmp_path_factory.mktemp("run"))
    return spec, tok, data, load_model(spec.model, path).eval()


def test_answers_are_timed_one_by_one_with_the_counts_generate_gives(setup):
    spec, tok, data, model = setup
    ev = Evaluator(spec, tok, data, False)
    items = ev.latency_items
    assert ev.latency_set == "val" and len(items) == 4
    gen_cfg = GenerationConfig(max_new_tokens=6)
    rows = ops.time_answers(model, tok, [it["prompt_ids"] for it in items], gen_cfg, False, warmup=1)
    for it, row in zip(items, rows):
        ids = torch.tensor([it["prompt_ids"]])
        new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **generation_kwargs(tok, gen_cfg))
        n = new.shape[1] - ids.shape[1]
        assert row["generated"] == n and row["prompt_tokens"] == len(it["prompt_ids"])
        assert row["output_tokens"] in (n, n - 1) and row["hit_max"] == (row["output_tokens"] == 6)
        assert 0 < row["ttft_s"] <= row["latency_s"]
    flat = ops.summarize(rows)
    assert flat["ops_latency_p50_s"] <= flat["ops_latency_p90_s"] <= flat["ops_latency_p99_s"] <= max(
        r["latency_s"] for r in rows)
    assert flat["ops_tokens_per_s"] == pytest.approx(sum(r["generated"] for r in rows) / sum(r["latency_s"] for r in rows))
    assert flat["ops_output_tokens_mean"] == pytest.approx(sum(r["output_tokens"] for r in rows) / 4)


def test_latency_budget_flags_a_deliberately_slowed_tuned_model(setup):
    spec, tok, data, model = setup
    ev = Evaluator(spec, tok, data, False)
    base = ev.run(model, "base")
    fast = model.generate

    def slowed(*args, **kwargs):  # every answer takes twice as long (+ the noise floor), whatever the load
        t0 = time.perf_counter()
        out = fast(*args, **kwargs)
        time.sleep(time.perf_counter() - t0 + spec.eval.latency.min_p99_delta_s)
        return out

    model.generate = slowed
    try:
        tuned = ev.run(model, "tuned")
    finally:
        del model.generate
    for side in (base, tuned):
        assert {"ops_latency_p50_s", "ops_latency_p90_s", "ops_latency_p99_s", "ops_ttft_p50_s",
                "ops_output_tokens_mean", "ops_output_tokens_p90", "ops_hit_max_new_tokens_rate",
                "ops_prompt_tokens_mean", "ops_tokens_per_s"} <= set(side)
    out = ev.compare()
    o = out["eval"]["ops"]
    assert o["answers"] == 4 and o["warmup"] == 1 and o["threads"] == torch.get_num_threads()
    assert o["latency_p99_ratio"] > 1.2 and o["latency_regression"]
    assert o["output_tokens_ratio"] == 1.0 and not o["tokens_regression"]  # greedy: the same answers
    assert [f.split(":")[0] for f in out["flags"]] == ["latency"]
    assert "n=4" in out["flags"][0] and "eval.latency.max_p99_ratio 1.2" in out["flags"][0]
    assert out["delta"]["ops_latency_p99_s"] > 0
    table = "\n".join(summary_table({"base": base, "tuned": tuned, **out}))
    assert "ops_latency_p99_s" in table and "operational: 4 answers from val" in table


def _ops(p99: float, tokens: float) -> dict:
    return {"ops_latency_p99_s": p99, "ops_output_tokens_mean": tokens}


@pytest.mark.parametrize("tuned,lat_budget,tok_budget,flags", [
    (_ops(1.1, 10.0), 1.2, 1.5, []),                    # +10% latency within 1.2, same length
    (_ops(1.3, 10.0), 1.2, 1.5, ["latency"]),
    (_ops(1.3, 10.0), None, 1.5, []),                   # null: reported, never flagged
    (_ops(1.0, 16.0), 1.2, 1.5, ["tokens"]),            # 1.6x wordier
    (_ops(2.0, 16.0), 1.2, 1.5, ["latency", "tokens"]),
])
def test_budgets_flag_slower_or_wordier_tuned_models(tuned, lat_budget, tok_budget, flags):
    cfg = EvalConfig()
    cfg.latency.max_p99_ratio, cfg.tokens.max_ratio = lat_budget, tok_budget
    out = compare(_ops(1.0, 10.0), tuned, cfg, False, None, None, ops={"answers": 8})
    assert [f.split(":")[0] for f in out["flags"]] == flags
    assert out["eval"]["ops"]["latency_p99_ratio"] == pytest.approx(tuned["ops_latency_p99_s"])


def test_sub_second_timing_noise_under_the_floor_never_flags():
    cfg = EvalConfig()  # 10 ms → 30 ms: x3, but 20 ms is noise on a loaded CPU, below min_p99_delta_s
    out = compare(_ops(0.010, 10.0), _ops(0.030, 10.0), cfg, False, None, None, ops={"answers": 16})
    assert out["flags"] == [] and not out["eval"]["ops"]["latency_regression"]
    cfg.latency.min_p99_delta_s = 0.0
    out = compare(_ops(0.010, 10.0), _ops(0.030, 10.0), cfg, False, None, None, ops={"answers": 16})
    assert [f.split(":")[0] for f in out["flags"]] == ["latency"]


def test_no_base_measurement_is_said_not_flagged():
    out = compare({}, _ops(5.0, 50.0), EvalConfig(), False, None, None, ops={"answers": 8})
    assert out["flags"] == [] and "base not measured" in out["eval"]["ops"]["status"]


@pytest.mark.parametrize("key", ["eval.latency.max_p99_ratio", "eval.tokens.max_ratio"])
@pytest.mark.parametrize("value", [0, -1.2])
def test_budgets_must_be_positive(key, value):
    with pytest.raises(ConfigError, match=f"{key}: must be > 0"):
        build_spec(compose([f"{key}={value}"]))


def test_timings_are_not_part_of_the_reproduction_check():
    from ftx.record.rerun import reproduction

    rep = reproduction({"tuned": {"val_loss": 1.0, "ops_latency_p99_s": 1.0}},
                       {"tuned": {"val_loss": 1.0, "ops_latency_p99_s": 3.0}}, 1e-3)
    assert rep["ok"] and rep["compared"] == 1


def test_objective_direction_and_validation_know_the_operational_metrics():
    from ftx.spec.eval import OPS_METRICS
    from ftx.spec.run import metric_direction, produced_metrics

    assert metric_direction("tuned/ops_latency_p99_s") == "minimize"
    assert metric_direction("delta/ops_output_tokens_mean") == "minimize"
    assert metric_direction("tuned/ops_tokens_per_s") == "maximize"
    assert set(OPS_METRICS) <= set(produced_metrics(EvalConfig()))
    off = EvalConfig()
    off.latency.prompts = 0
    assert not set(OPS_METRICS) & set(produced_metrics(off))
