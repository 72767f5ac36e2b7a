"""Operational metrics: what serving the model costs, measured the same way on base and tuned.

Each answer is generated alone (batch 1, as one request is served), with the run's generation settings,
after `eval.latency.warmup` untimed generations, in the evaluating process's thread count. Per answer:
wall-clock latency, time to first token (a transformers streamer timestamps the first generated token),
prompt and output tokens, whether it stopped at max_new_tokens. Percentiles state how many answers they
rest on; `budgets` turns the tuned/base ratios into run flags like the forgetting budget.
"""

from __future__ import annotations

import time

from ftx.eval.generate import generation_kwargs, stop_ids
from ftx.eval.heldout import autocast
from ftx.spec.eval import OPS_METRICS, OPS_PREFIX

PREFIX = OPS_PREFIX
"""Operational keys in metrics.json base/tuned (timings: never part of the `ftx eval --check` reproduction)."""


class FirstToken:
    """A generate() streamer recording when the first new token arrives (its first put() is the prompt)."""

    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def time_answers(model, tok, prompt_ids: list[list[int]], gen_cfg, bf16: bool, warmup: int) -> list[dict]:
    """One timed generation per prompt (after `warmup` untimed ones): latency, ttft, token counts."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    kwargs = generation_kwargs(tok, gen_cfg)
    stops = set(stop_ids(tok))
    rows = []
    try:
        with torch.no_grad(), autocast(bf16):
            for i in range(min(warmup, len(prompt_ids))):
                ids = torch.tensor([prompt_ids[i]], device=device)
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
            for p in prompt_ids:
                ids = torch.tensor([p], device=device)
                streamer = FirstToken()
                t0 = time.perf_counter()
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer, **kwargs)
                seconds = time.perf_counter() - t0
                new = out[0, len(p):].tolist()
                stopped = bool(new) and new[-1] in stops
                rows.append({"latency_s": seconds,
                             "ttft_s": (streamer.first - t0) if streamer.first is not None else seconds,
                             "prompt_tokens": len(p), "generated": len(new),
                             "output_tokens": len(new) - int(stopped),
                             "hit_max": not stopped and len(new) >= gen_cfg.max_new_tokens})
    finally:
        if was_training:
            model.train()
    return rows


def summarize(rows: list[dict]) -> dict:
    """The flat `ops_*` metrics of one side."""
    if not rows:
        return {}
    lat = [r["latency_s"] for r in rows]
    ttft = [r["ttft_s"] for r in rows]
    out_tokens = [r["output_tokens"] for r in rows]
    flat = {f"latency_p{q}_s": percentile(lat, q) for q in (50, 90, 99)}
    flat.update(ttft_p50_s=percentile(ttft, 50), ttft_p90_s=percentile(ttft, 90),
                output_tokens_mean=sum(out_tokens) / len(rows), output_tokens_p90=percentile(out_tokens, 90),
                hit_max_new_tokens_rate=sum(r["hit_max"] for r in rows) / len(rows),
                prompt_tokens_mean=sum(r["prompt_tokens"] for r in rows) / len(rows),
                tokens_per_s=sum(r["generated"] for r in rows) / max(sum(lat), 1e-9))
    out = {PREFIX + k: v for k, v in flat.items()}
    assert tuple(out) == OPS_METRICS  # the spec's list (objective.metric validation) is what is written
    return out


def budgets(base: dict, tuned: dict, cfg, detail: dict) -> tuple[dict, list[str]]:
    """The eval `ops` section (n, settings, tuned/base ratios, budgets) and the flags of the two budgets."""
    out, flags = dict(detail), []
    lat_budget, tok_budget = cfg.latency.max_p99_ratio, cfg.tokens.max_ratio
    out.update(latency_budget_p99_ratio=lat_budget, tokens_budget_ratio=tok_budget)
    if not tuned.get(PREFIX + "latency_p99_s"):
        return out, flags
    if not base.get(PREFIX + "latency_p99_s"):
        out["status"] = "base not measured (eval.base_vs_tuned=false)"
        return out, flags
    b, t = base[PREFIX + "latency_p99_s"], tuned[PREFIX + "latency_p99_s"]
    out["latency_p99_ratio"] = ratio = t / b
    floor = cfg.latency.min_p99_delta_s
    out["latency_regression"] = lat_budget is not None and ratio > lat_budget and t - b > floor
    n = detail.get("answers")
    if out["latency_regression"]:
        flags.append(f"latency: p99 {b:.3f}s -> {t:.3f}s (x{ratio:.2f}, n={n}) exceeds eval.latency.max_p99_ratio "
                     f"{lat_budget:g} (and eval.latency.min_p99_delta_s {floor:g}s)")
    bt, tt = base[PREFIX + "output_tokens_mean"], tuned[PREFIX + "output_tokens_mean"]
    tok_ratio = tt / bt if bt else (float("inf") if tt else 1.0)
    out["output_tokens_ratio"] = tok_ratio
    out["tokens_regression"] = tok_budget is not None and tok_ratio > tok_budget
    if out["tokens_regression"]:
        flags.append(f"tokens: mean output {bt:.1f} -> {tt:.1f} tokens/answer (x{tok_ratio:.2f}, n={n}) exceeds "
                     f"eval.tokens.max_ratio {tok_budget:g}")
    return out, flags
