"""The evaluation suite of one run: the same measurements on the base model (before training) and the
tuned model (after), then the comparison — deltas, forgetting, golden set, off-domain probe, flags.

    ev = Evaluator(spec, tok, data, bf16, out_dir=run_dir)   # reads prompt files: bad ones fail early
    metrics["base"] = ev.run(model, "base")                    # LoRA B=0: the wrapped model is the base
    ...train...
    metrics["tuned"] = ev.run(model, "tuned")
    metrics.update(ev.compare())                               # delta, eval{…}, flags
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

from ftx import memory
from ftx.eval import generate as gen
from ftx.eval import harness
from ftx.eval import preference
from ftx.eval import ops as ops_mod
from ftx.eval.heldout import loss_pass, own_precision, summarize
from ftx.eval.metrics import aggregate, contains, exact_match
from ftx.eval.judge import both_orders, load_judge
from ftx.eval.paired import describe, task_comparison
from ftx.spec.eval import parse_primary

log = logging.getLogger("ftx")
GEN_METRICS = ("exact_match", "contains", "token_f1", "rouge_l", "bleu")


class Evaluator:
    def __init__(self, spec, tok, data, bf16: bool, out_dir: Optional[Path] = None,
                 model_path: Optional[str] = None):
        from ftx.data.format import Collator

        self.spec, self.cfg, self.tok, self.data = spec, spec.eval, tok, data
        self.bf16 = bf16 if self.cfg.precision == "train" else self.cfg.precision == "bf16"
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.collator = Collator(tok.pad_token_id)
        self.model_context = {"model_cfg": spec.model, "path": model_path}
        self._judge = None
        g = self.cfg.generation
        self.prompts: dict[str, list[dict]] = {}
        if g.enabled:
            index = getattr(data, "answers", {})  # carried by the prepared data: no re-reading the sources
            for split in g.splits:
                items = gen.split_prompts(gen.cap(getattr(data, split), g.max_examples), tok, index)
                if items:
                    self.prompts[split] = items
        self.primary, self.primary_reason = resolve_primary(self.cfg, self.prompts)
        val_ids = {it["id"] for it in self.prompts.get("val", [])} or {ex.get("id") for ex in data.val}
        self.has_answers = any(i in index for i in val_ids) if g.enabled else False
        """The validation records carry accepted `answers`: objective.metric=auto judges by the task metric."""
        self.golden: list[dict] = []
        if gen.optional_path(self.cfg.golden.path):
            rows = gen.cap(gen.read_prompt_file(self.cfg.golden.path, "eval.golden.path", ("prompt", "answers")),
                           g.max_examples)
            self.golden = [{"id": r["id"], "prompt": r["prompt"], "answers": r["answers"],
                            "prompt_ids": gen.chat_prompt_ids(r["prompt"], tok, spec.data.format)} for r in rows]
        self.probe: list[dict] = []
        self.probe_dropped: list[str] = []
        if gen.optional_path(self.cfg.offdomain.path):
            rows = gen.cap(gen.read_prompt_file(self.cfg.offdomain.path, "eval.offdomain.path",
                                                ("prompt", "response")), g.max_examples)
            self.probe, self.probe_dropped = gen.probe_examples(rows, tok, spec.data.format)
            for ex, r in zip(self.probe, [r for r in rows if r["id"] not in self.probe_dropped]):
                ex.update(prompt=r["prompt"], answers=[r["response"]],
                          prompt_ids=gen.chat_prompt_ids(r["prompt"], tok, spec.data.format))
        self.results: dict[str, dict] = {}
        self.seconds: dict[str, dict] = {}
        self.latency_set, self.latency_items = latency_prompts(self.cfg.latency.prompts, self.prompts, self.golden)
        self.threads: dict[str, int] = {}
        harness.check(self.cfg.harness)  # before any model loads: unknown task names, lm-eval missing, no data
        self.harness: dict[str, dict] = {}
        """side → lm-eval's per-task detail (eval.harness)."""

    # -- one side ---------------------------------------------------------------------------------
    def run(self, model, side: str) -> dict:
        """Every measurement on `model`; returns the flat summary for metrics.json[side]."""
        t0 = time.perf_counter()
        self._gen_seconds = 0.0
        with own_precision(model):
            flat = self._run(model, side)
            if self.latency_items:
                t1 = time.perf_counter()
                flat.update(self._time_answers(model, side))
                self._latency_seconds = time.perf_counter() - t1
            if self.cfg.harness.tasks:
                with memory.stage(f"{side}_harness"):
                    values, self.harness[side] = harness.evaluate(model, self.tok, self.cfg.harness, self.bf16)
                flat.update(values)  # the same dict as self.results[side]["flat"]: compare() sees them
        total = time.perf_counter() - t0
        self.seconds[side] = {"total": round(total, 2), "generation": round(self._gen_seconds, 2)}
        if self.latency_items:
            self.seconds[side]["latency"] = round(self._latency_seconds, 2)
        if side in self.harness:
            self.seconds[side]["harness"] = self.harness[side]["seconds"]
        return flat

    def _time_answers(self, model, side: str) -> dict:
        """The operational metrics of `side` (ftx.eval.ops): the same prompts and settings for base and tuned."""
        import torch

        self.threads[side] = torch.get_num_threads()
        rows = ops_mod.time_answers(model, self.tok, [it["prompt_ids"] for it in self.latency_items],
                                    self.cfg.generation, self.bf16, self.cfg.latency.warmup)
        return ops_mod.summarize(rows)

    def _run(self, model, side: str) -> dict:
        cap = self.cfg.max_examples or None
        chunk = self.spec.train.loss_chunk_positions(memory.vocab_size(model.config))
        flat: dict = {}
        for split in ("val", "test", "general_eval"):
            examples = getattr(self.data, split)[:cap]
            if examples:
                r = summarize(loss_pass(model, examples, self.collator, self.cfg.batch_size, self.bf16,
                                        chunk))
                flat[f"{split}_loss"], flat[f"{split}_ppl"] = r["loss"], r["ppl"]
        pair_margins = {}
        for split in ("val", "test"):  # preference pairs (records with a `rejected` reply)
            pairs = getattr(self.data, "pairs", {}).get(split, [])[:cap]
            if pairs:
                pair_margins[split] = preference.margins(model, pairs, self.collator, self.cfg.batch_size, self.bf16)
                flat.update({f"{split}_{k}": v for k, v in preference.summarize(pair_margins[split]).items()})
        probe_per = loss_pass(model, self.probe, self.collator, self.cfg.batch_size, self.bf16,
                              chunk)
        if probe_per:
            r = summarize(probe_per)
            flat.update({f"offdomain_{k}": r[k] for k in ("loss", "ppl", "confidence", "accuracy")})
        rows: list[dict] = []
        sets = dict(self.prompts)
        if self.golden:
            sets["golden"] = self.golden
        if self.probe and self.cfg.offdomain.generate:
            sets["offdomain"] = self.probe
        for name, items in sets.items():
            t0 = time.perf_counter()
            with memory.stage(f"{side}_generate"):
                preds = gen.generate(model, self.tok, [it["prompt_ids"] for it in items], self.cfg.generation,
                                     self.bf16)
            self._gen_seconds += time.perf_counter() - t0
            summary, per = aggregate(preds, [it["answers"] for it in items])
            set_rows = [{"set": name, "id": it["id"], "prompt": it.get("prompt"), "prediction": p,
                         "answers": it["answers"], **scores} for it, p, scores in zip(items, preds, per)]
            if name == "golden":
                match = exact_match if self.cfg.golden.match == "exact" else contains
                for row in set_rows:
                    row["passed"] = bool(match(row["prediction"], row["answers"]))
                flat["golden_passed"] = sum(r["passed"] for r in set_rows)
                flat["golden_pass_rate"] = flat["golden_passed"] / len(set_rows)
            elif name != "offdomain":
                flat.update({f"{name}_{k}": summary[k] for k in GEN_METRICS})
            self._judge_rows(name, set_rows, flat)
            rows += set_rows
        self.results[side] = {"flat": flat, "probe": probe_per, "rows": rows, "pairs": pair_margins}
        if self.out_dir is not None and rows:
            gen.write_jsonl(self.out_dir / f"predictions_{side}.jsonl", rows)
        return flat

    def _judge_rows(self, name: str, rows: list[dict], flat: dict) -> None:
        if self.cfg.judge.kind == "none" or name == "offdomain" or not rows:
            return
        if self._judge is None:
            self._judge = load_judge(self.cfg.judge, self.model_context)
        if not callable(getattr(self._judge, "score", None)):  # a pairwise judge: base vs tuned, in compare()
            return
        scores = self._judge.score([{"prompt": r["prompt"], "prediction": r["prediction"], "answers": r["answers"]}
                                    for r in rows])
        for r, s in zip(rows, scores):
            r["judge"] = float(s)
        flat[f"{name}_judge"] = sum(scores) / len(scores)
        flat[f"{name}_judge_pass"] = sum(s >= self.cfg.judge.threshold for s in scores) / len(scores)

    # -- checkpoint selection during training ---------------------------------------------------------
    def select_items(self) -> list[dict]:
        """The fixed validation sample generated at every evaluation during training (the first N prompts)."""
        return self.prompts.get("val", [])[: self.cfg.select.sample]

    def select_score(self, model) -> float:
        """The primary metric (on val) of greedy answers to `select_items`: what checkpoints are chosen by."""
        items = self.select_items()
        if not items:
            return 0.0
        metric = parse_primary(self.primary)[1]
        preds = gen.generate(model, self.tok, [it["prompt_ids"] for it in items], self.cfg.generation, self.bf16)
        if metric == "judge":
            if self._judge is None:
                self._judge = load_judge(self.cfg.judge, self.model_context)
            scores = self._judge.score([{"prompt": it.get("prompt"), "prediction": p, "answers": it["answers"]}
                                        for it, p in zip(items, preds)])
            return sum(scores) / len(scores)
        summary, _ = aggregate(preds, [it["answers"] for it in items])
        return summary[metric]

    def selects_by_task(self) -> bool:
        """eval.select.metric: task, or auto with accepted answers on the validation records."""
        s = self.cfg.select.metric
        return bool(self.select_items()) and (s == "task" or (s == "auto" and self.has_answers))

    # -- comparison -------------------------------------------------------------------------------
    def compare(self) -> dict:
        base = self.results.get("base", {}).get("flat", {})
        tuned = self.results["tuned"]["flat"]
        task = None
        if "base" in self.results:
            task = task_comparison(self.results["base"]["rows"], self.results["tuned"]["rows"],
                                   self.cfg.significance, seed=self.spec.train.seed)
        out = compare(base, tuned, self.cfg, self.bf16, self._golden_detail(), self._probe_detail(), task,
                      self._ops_detail(), self.harness or None)
        pairwise = self._pairwise()
        if pairwise is not None:
            out["eval"]["pairwise"] = pairwise
        out["eval"]["seconds"] = dict(self.seconds)
        out["eval"]["primary"] = {"metric": self.primary, "reason": self.primary_reason}
        t = self.spec.train
        beta = t.orpo.beta if str(t.objective) == "orpo" else t.dpo.beta  # the reward's scale: the objective's β
        prefs = preference.comparison(self.results, getattr(self.data, "pairs", {}), beta, self.cfg.significance,
                                      seed=t.seed)
        if prefs:
            budget = self.cfg.preference.max_chosen_rise
            for p in prefs.values():
                p["max_chosen_rise"] = budget
            out["eval"]["preference"] = prefs
            for f in preference.displacement_flags(prefs, budget, str(t.objective)):
                log.warning("regression flagged: %s", f)
                out["flags"].append(f)
        return out

    def _pairwise(self) -> Optional[dict]:
        """A pairwise judge on base vs tuned (every generated prompt but the off-domain probe), both orders;
        per-item verdicts into pairwise_judge.jsonl (`ftx review import` compares them with the reviewers')."""
        if self.cfg.judge.kind == "none" or "base" not in self.results:
            return None
        if self._judge is None:
            self._judge = load_judge(self.cfg.judge, self.model_context)
        if not callable(getattr(self._judge, "compare", None)):
            return None
        base = {(r["set"], r["id"]): r for r in self.results["base"]["rows"] if r["set"] != "offdomain"}
        pairs = [{"set": r["set"], "id": r["id"], "prompt": r["prompt"], "answers": r["answers"],
                  "tuned": r["prediction"], "base": base[(r["set"], r["id"])]["prediction"]}
                 for r in self.results["tuned"]["rows"] if (r["set"], r["id"]) in base]
        if not pairs:
            return None
        t0 = time.perf_counter()
        rows, summary = both_orders(self._judge, pairs)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        summary["kind"] = self.cfg.judge.kind
        if self.out_dir is not None:
            gen.write_jsonl(self.out_dir / "pairwise_judge.jsonl", rows)
        log.info("pairwise judge: tuned wins %d, ties %d, loses %d of %d (%d with identical answers); "
                 "position flips: %s", summary["win"], summary["tie"], summary["loss"], summary["items"],
                 summary["identical"], "-" if summary["position_flip_rate"] is None
                 else f"{summary['position_flip_rate']:.0%}")
        return summary

    def _ops_detail(self) -> Optional[dict]:
        if not self.latency_items:
            return None
        threads = sorted(set(self.threads.values()))
        out = {"answers": len(self.latency_items), "set": self.latency_set, "warmup": self.cfg.latency.warmup,
               "batch_size": 1, "max_new_tokens": self.cfg.generation.max_new_tokens,
               "greedy": not self.cfg.generation.do_sample, "threads": threads[0] if len(threads) == 1 else self.threads}
        if len(threads) > 1:
            out["warning"] = f"base and tuned were timed with different thread counts {self.threads}"
            log.warning("operational metrics: %s", out["warning"])
        return out

    def _golden_detail(self) -> Optional[dict]:
        if not self.golden:
            return None
        passed = {s: {r["id"] for r in self.results[s]["rows"] if r["set"] == "golden" and r["passed"]}
                  for s in self.results}
        out = {"path": self.cfg.golden.path, "match": self.cfg.golden.match, "total": len(self.golden),
               "passed": len(passed["tuned"]), "failed": len(self.golden) - len(passed["tuned"])}
        if "base" in passed:
            out["base_passed"] = len(passed["base"])
            out["newly_failed"] = sorted(passed["base"] - passed["tuned"])
            out["newly_passed"] = sorted(passed["tuned"] - passed["base"])
        return out

    def _probe_detail(self) -> Optional[dict]:
        if not self.probe and not self.probe_dropped:
            return None
        out = {"path": self.cfg.offdomain.path, "prompts": len(self.probe), "dropped_too_long": self.probe_dropped,
               "loss_margin": self.cfg.offdomain.loss_margin}
        if "base" not in self.results or not self.probe:
            return out
        nonsense = confident_nonsense([ex["id"] for ex in self.probe], self.results["base"]["probe"],
                                      self.results["tuned"]["probe"], self.cfg.offdomain.loss_margin)
        out.update(confident_nonsense=len(nonsense), rate=len(nonsense) / len(self.probe), ids=nonsense)
        return out


def resolve_primary(cfg, prompts: dict) -> tuple[str, str]:
    """eval.primary → (`<split>_<metric>`, why). auto: contains for short accepted answers (median ≤ 5
    words: a short answer is right when the output names it), token F1 for longer ones (a paragraph is
    never contained verbatim), on val (or the first generated split)."""
    if cfg.primary != "auto":
        return cfg.primary, "eval.primary"
    g = cfg.generation
    split = "val" if "val" in g.splits or not g.splits else g.splits[0]
    answers = [a for it in prompts.get(split, []) for a in it["answers"][1:] or it["answers"][:1]]
    if not answers:
        return f"{split}_contains", "auto: no generated prompts"
    words = sorted(len(a.split()) for a in answers)
    median = words[len(words) // 2]
    metric = "contains" if median <= 5 else "token_f1"
    return f"{split}_{metric}", f"auto: median accepted answer {median} words ({'≤' if median <= 5 else '>'} 5)"


def latency_prompts(n: int, prompts: dict[str, list[dict]], golden: list[dict]) -> tuple[Optional[str], list[dict]]:
    """(set name, items) the operational metrics time: the first `n` prompts of the first generated split,
    else of the golden set; (None, []) when n is 0 or nothing is generated."""
    if n:
        for name, items in [*prompts.items(), ("golden", golden)]:
            if items:
                return name, items[:n]
    return None, []


def task_flags(task: dict) -> tuple[list[str], list[str]]:
    """(regression flags, improvement notes) from the paired comparisons, in metrics.json order."""
    regressions = [describe(k, r) for k, r in task.items() if r["verdict"] == "regression"]
    improvements = [describe(k, r) for k, r in task.items() if r["verdict"] == "improvement"]
    return regressions, improvements


def confident_nonsense(ids: list, base: list[dict], tuned: list[dict], margin: float) -> list:
    """Probes whose answer loss rose by more than `margin` nats/token while confidence rose too: the
    tuned model became surer of itself and more wrong on text outside its domain."""
    out = []
    for i, b, t in zip(ids, base, tuned):
        n = max(t["tokens"], 1)
        if (t["loss_sum"] - b["loss_sum"]) / n > margin and t["conf_sum"] > b["conf_sum"]:
            out.append(i)
    return out


def compare(base: dict, tuned: dict, cfg, bf16: bool, golden: Optional[dict], probe: Optional[dict],
            task: Optional[dict] = None, ops: Optional[dict] = None, bench: Optional[dict] = None) -> dict:
    """delta (tuned − base), the eval section (forgetting, golden, off-domain, paired task metrics, operational
    budgets) and the run's flags. `task`: metric → paired result (ftx.eval.paired); a significant drop is a flag.
    `ops`: how the operational metrics were taken (Evaluator._ops_detail); their budgets flag the run.
    `bench`: side → lm-eval's per-task detail (ftx.eval.harness); a main metric that fell by more than
    eval.forgetting.harness_max_drop is a forgetting flag."""
    delta = {k: tuned[k] - base[k] for k in tuned
             if isinstance(tuned[k], (int, float)) and isinstance(base.get(k), (int, float))}
    flags: list[str] = []
    forgetting: dict = {"metric": "general_eval_loss", "budget": cfg.forgetting.budget}
    if "general_eval_loss" not in tuned:
        forgetting["status"] = "no general_eval split (add a data source with role=general)"
    elif "general_eval_loss" not in base:
        forgetting["status"] = "base not measured (eval.base_vs_tuned=false)"
    else:
        b, t = base["general_eval_loss"], tuned["general_eval_loss"]
        rel = (t - b) / b if b else 0.0
        regression = cfg.forgetting.budget is not None and rel > cfg.forgetting.budget
        forgetting.update(base=b, tuned=t, relative_change=rel, regression=regression)
        if regression:
            flags.append(f"forgetting: general_eval_loss {b:.4f} -> {t:.4f} ({rel:+.1%}) exceeds budget "
                         f"{cfg.forgetting.budget:.0%}")
    if bench:
        out_harness, harness_flags = harness.compare(base, tuned, bench, cfg)
        forgetting["harness"] = {t: {k: r.get(k) for k in ("metric", "base", "tuned", "delta", "regression")}
                                 for t, r in out_harness["tasks"].items()}
        forgetting["harness_max_drop"] = cfg.forgetting.harness_max_drop
        flags += harness_flags
    out_eval = {"precision": "bf16" if bf16 else "fp32", "forgetting": forgetting}
    if bench:
        out_eval["harness"] = out_harness
    if golden is not None:
        rate = golden["passed"] / max(golden["total"], 1)
        golden["regression"] = cfg.golden.min_pass_rate is not None and rate < cfg.golden.min_pass_rate
        if golden["regression"]:
            flags.append(f"golden: {golden['passed']}/{golden['total']} passed, below min_pass_rate "
                         f"{cfg.golden.min_pass_rate:.0%}")
        out_eval["golden"] = golden
    if probe is not None:
        probe["regression"] = bool(cfg.offdomain.max_rate is not None and "rate" in probe
                                   and probe["rate"] > cfg.offdomain.max_rate)
        if probe["regression"]:
            flags.append(f"offdomain: {probe['confident_nonsense']}/{probe['prompts']} prompts answered with "
                         f"confident nonsense, above max_rate {cfg.offdomain.max_rate:.0%}")
        out_eval["offdomain"] = probe
    if task:
        regressions, improvements = task_flags(task)
        flags += regressions
        out_eval["task"] = {"significance": cfg.significance, "metrics": task, "improvements": improvements}
    if ops is not None:
        out_eval["ops"], ops_flags = ops_mod.budgets(base, tuned, cfg, ops)
        flags += ops_flags
    if cfg.judge.kind != "none":
        out_eval["judge"] = {"kind": cfg.judge.kind, "threshold": cfg.judge.threshold}
    for f in flags:
        log.warning("regression flagged: %s", f)
    return {"delta": delta, "eval": out_eval, "flags": flags}


ROW_ORDER = ("_loss", "_ppl", "_pref_accuracy", "_pref_margin", "_exact_match", "_contains", "_token_f1", "_rouge_l", "_bleu", "_judge",
             "_judge_pass", "golden_pass_rate", "offdomain_confidence", "offdomain_accuracy")


def summary_table(metrics: dict) -> list[str]:
    """Base vs tuned, one metric per line, grouped by kind (loss, perplexity, generation, golden)."""
    base, tuned = metrics.get("base", {}), metrics["tuned"]
    keys = list(dict.fromkeys(k for suffix in ROW_ORDER for k in tuned
                              if k.endswith(suffix) and not k.startswith(harness.PREFIX)))  # lm-eval's: below
    fmt = lambda v: f"{v:12.4f}" if isinstance(v, (int, float)) else f"{'-':>12}"
    extra = [k for k in tuned if k.startswith((harness.PREFIX, ops_mod.PREFIX))]
    w = max([26, *(len(k) + 1 for k in extra)])  # lm-eval task names can be long
    lines = [f"{'metric':<{w}}{'base':>12}{'tuned':>12}{'delta':>12}"]
    for k in keys:
        b, t = base.get(k), tuned.get(k)
        d = (t - b) if isinstance(b, (int, float)) and isinstance(t, (int, float)) else None
        lines.append(f"{k:<{w}}{fmt(b)}{fmt(t)}{fmt(d)}")
    for k in extra:
        b, t = base.get(k), tuned.get(k)
        d = (t - b) if isinstance(b, (int, float)) and isinstance(t, (int, float)) else None
        lines.append(f"{k:<{w}}{fmt(b)}{fmt(t)}{fmt(d)}")
    ev = metrics.get("eval", {})
    if "ops" in ev:
        o = ev["ops"]
        ratio = lambda key, budget: (f"x{o[key]:.2f} (budget {'none' if o.get(budget) is None else format(o[budget], 'g')})"
                                     if key in o else "-")
        lines.append(f"operational: {o['answers']} answers from {o['set']} (batch 1, greedy={o['greedy']}, "
                     f"warm-up {o['warmup']}, threads {o['threads']}); tuned/base p99 latency "
                     f"{ratio('latency_p99_ratio', 'latency_budget_p99_ratio')}, output tokens "
                     f"{ratio('output_tokens_ratio', 'tokens_budget_ratio')}")
    if "harness" in ev:
        h = ev["harness"]
        for task, r in h["tasks"].items():
            lines.append(f"lm-eval {task}: {r['metric']} " + (f"{r['base']:.4f} -> " if "base" in r else "")
                         + f"{r['tuned']:.4f} on {r['examples']} examples"
                         + (f" ({r['delta']:+.4f}; budget {'none' if h['max_drop'] is None else format(h['max_drop'], 'g')})"
                            if "delta" in r else ""))
    if "golden" in ev:
        g = ev["golden"]
        lines.append(f"golden set: {g['passed']}/{g['total']} passed ({g['match']})"
                     + (f", base {g['base_passed']}/{g['total']}" if "base_passed" in g else ""))
    if "confident_nonsense" in ev.get("offdomain", {}):
        o = ev["offdomain"]
        lines.append(f"off-domain probe: {o['confident_nonsense']}/{o['prompts']} confident nonsense")
    f = ev.get("forgetting", {})
    if "relative_change" in f:
        lines.append(f"forgetting: general_eval_loss {f['relative_change']:+.1%} (budget "
                     f"{'none' if f['budget'] is None else format(f['budget'], '.0%')})")
    for split, p in ev.get("preference", {}).items():
        lines.append(f"preference ({split}, {p['pairs']} pairs): chosen ranked first {p['base_pref_accuracy']:.1%} -> "
                     f"{p['tuned_pref_accuracy']:.1%}; DPO reward margin {p['reward_margin']:+.4f} (beta "
                     f"{p['beta']:g}), reward accuracy {p['reward_accuracy']:.1%}")
        if "chosen" in p and "rejected" in p:
            side = lambda x: (f"{x['base']:.4f} -> {x['tuned']:.4f} ({x['relative_change']:+.1%}, "
                              f"{x['test']['verdict'] if x['test']['verdict'] != 'none' else 'no significant change'})")
            lines.append(f"  loss per token, chosen {side(p['chosen'])}; rejected {side(p['rejected'])}")
    for note in ev.get("task", {}).get("improvements", []):
        lines.append(f"IMPROVED {note}")
    for flag in metrics.get("flags", []):
        lines.append(f"REGRESSION {flag}")
    return lines
