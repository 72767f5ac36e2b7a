"""Standard benchmarks through lm-evaluation-harness (eval.harness): the same tasks on base and tuned.

    tm = check(cfg.harness)                           # at run start, before any model loads: names, data
    flat, detail = evaluate(model, tok, cfg.harness, bf16)   # harness_<task>_<metric> for metrics.json[side]
    section, flags = compare(base, tuned, details, cfg)     # eval.harness: per task base/tuned/delta, forgetting

The in-memory model (a PEFT model for tuned: adapters included) goes to lm-eval's HFLM wrapper as is, so
nothing is saved or reloaded. Task names resolve against lm-eval's own tasks, ftx's shipped folder
(ftx/assets/harness: `ftx_general_qa`, local files only) and eval.harness.include_path. Indexing all of
lm-eval's ~15k task configs takes ~10 s, so the local folders are indexed first and the full index is built
only when a name is not found there (a standard task, or a typo whose close matches are listed).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import time
from pathlib import Path
from typing import Optional

from ftx.errors import ConfigError, RunError
from ftx.eval.heldout import autocast

log = logging.getLogger("ftx")

SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "harness"
"""ftx's own task folder (package data): ftx_general_qa.yaml and the loader it names."""
PREFIX = "harness_"
INSTALL = "pip install 'ftx[lm-eval]'"
_CHECKED: dict = {}
"""(include paths, tasks) → the TaskManager check() returned: base and tuned do not re-check."""
_MANAGERS: dict = {}
"""(include paths, with lm-eval's own tasks) → TaskManager: built once per process (the run-start check,
then base and tuned, reuse it)."""


def include_paths(cfg) -> list[str]:
    paths = [str(SHIPPED)]
    if cfg.include_path:
        folder = Path(cfg.include_path).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"eval.harness.include_path: {cfg.include_path} is not a folder (a folder of lm-eval "
                              "task YAMLs, searched in addition to lm-eval's tasks and ftx's shipped one)")
        paths.append(str(folder.resolve()))
    return paths


def task_manager(cfg, defaults: bool = True):
    """lm-eval's TaskManager over ftx's folder, eval.harness.include_path and (defaults) lm-eval's own tasks."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ConfigError(f"eval.harness.tasks: lm-evaluation-harness is not installed; {INSTALL}") from None
    key = (tuple(include_paths(cfg)), defaults)
    if key not in _MANAGERS:
        t0 = time.perf_counter()
        _MANAGERS[key] = TaskManager(include_path=list(key[0]), include_defaults=defaults)
        log.info("lm-eval task index (%s): %d tasks in %.1fs", "lm-eval's tasks and " + ", ".join(key[0])
                 if defaults else ", ".join(key[0]), len(_MANAGERS[key].all_tasks), time.perf_counter() - t0)
    return _MANAGERS[key]


def unknown_task(name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = (f"close matches: {', '.join(close)}" if close else
            "no close match (`lm-eval list tasks` lists them; eval.harness.include_path adds a folder of your own)")
    return ConfigError(f"eval.harness.tasks: no lm-eval task or group named {name!r}; {hint}")


@contextlib.contextmanager
def keep_rng():
    """Python's, numpy's and torch's global random states as they were: lm-eval seeds all three (and task
    loading draws from them), so turning the harness on changes nothing else in a run (LoRA init, training)."""
    import random

    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def check(cfg):
    """Every name in cfg.tasks is a task, group or tag lm-eval knows, and its data loads: the TaskManager that
    knows them (one line each otherwise: the close matches of an unknown name, the install hint, unreachable
    data). None when eval.harness.tasks is empty."""
    if not cfg.tasks:
        return None
    key = (tuple(include_paths(cfg)), tuple(cfg.tasks))
    if key in _CHECKED:
        return _CHECKED[key]
    tm = task_manager(cfg, defaults=False)
    if not set(cfg.tasks) <= set(tm.all_tasks):
        tm = task_manager(cfg, defaults=True)
    for name in cfg.tasks:
        if name not in tm.all_tasks:
            raise unknown_task(name, tm.all_tasks)
    with keep_rng():
        load_tasks(cfg, tm)
    _CHECKED[key] = tm
    return tm


def load_tasks(cfg, tm) -> dict:
    """lm-eval's task objects (reads each task's data: from local files, the datasets cache or the hub)."""
    try:
        return tm.load(list(cfg.tasks))
    except Exception as e:  # datasets' offline/connection errors, a broken user YAML
        why = " ".join(str(e).split())[:300] or type(e).__name__
        raise RunError(f"eval.harness.tasks: lm-eval cannot load {', '.join(cfg.tasks)} ({type(e).__name__}: {why}); "
                       "standard tasks read their data from the Hugging Face hub: run where it is reachable or with "
                       "the datasets cache filled (HF_DATASETS_CACHE), or use a local task (ftx_general_qa)") from None


def metric_name(key: str) -> str:
    """lm-eval's `acc,none` → acc; `exact_match,strict-match` → exact_match_strict-match."""
    metric, _, filt = key.partition(",")
    return metric if filt in ("", "none") else f"{metric}_{filt}"


def evaluate(model, tok, cfg, bf16: bool) -> tuple[dict, dict]:
    """(flat `harness_<task>_<metric>` values, per-task detail: every metric with its stderr, examples used,
    few-shot, version, seconds) of one model on cfg.tasks."""
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    was_training = model.training
    t0 = time.perf_counter()
    try:
        with keep_rng():
            tm = check(cfg)
            lm = HFLM(pretrained=model, tokenizer=tok, batch_size=cfg.batch_size)
            with torch.no_grad(), autocast(bf16):
                res = simple_evaluate(model=lm, tasks=list(cfg.tasks), task_manager=tm, limit=cfg.limit,
                                      num_fewshot=cfg.num_fewshot, log_samples=False, bootstrap_iters=1000,
                                      random_seed=cfg.seed, numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
                                      fewshot_random_seed=cfg.seed)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - t0
    results = {**res.get("results", {}), **res.get("groups", {})}
    flat: dict = {}
    detail: dict = {"seconds": round(seconds, 2), "tasks": {}}
    for task, values in results.items():
        metrics = {metric_name(k): v for k, v in values.items() if "," in k and "_stderr," not in k}
        stderr = {metric_name(k.replace("_stderr,", ",")): v for k, v in values.items() if "_stderr," in k}
        better = res.get("higher_is_better", {}).get(task, {})
        n = res.get("n-samples", {}).get(task, {})
        cfg_task = res.get("configs", {}).get(task, {})
        detail["tasks"][task] = {
            "metrics": metrics, "stderr": {k: v for k, v in stderr.items() if isinstance(v, (int, float))},
            "examples": n.get("effective"), "of": n.get("original"), "num_fewshot": cfg_task.get("num_fewshot"),
            "version": res.get("versions", {}).get(task),
            "higher_is_better": {metric_name(k): better.get(k.partition(",")[0], True)
                                 for k in values if "," in k and "_stderr," not in k}}
        if task in cfg.tasks or not set(cfg.tasks) <= set(results):  # a tag: lm-eval reports its tasks instead
            flat.update({f"{PREFIX}{task}_{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
    return flat, detail


def main_metric(task: str, detail: dict) -> Optional[str]:
    """The task's first metric (lm-eval reports them in the task's metric_list order): what forgetting counts."""
    metrics = detail.get("tasks", {}).get(task, {}).get("metrics", {})
    return next((k for k, v in metrics.items() if isinstance(v, (int, float))), None)


def compare(base: dict, tuned: dict, details: dict, cfg) -> tuple[dict, list[str]]:
    """metrics.json eval.harness (settings, per requested task: main metric, base, tuned, delta, examples) and
    the forgetting flags: a main metric that fell by more than eval.forgetting.harness_max_drop."""
    h, budget = cfg.harness, cfg.forgetting.harness_max_drop
    out: dict = {"tasks": {}, "limit": h.limit, "num_fewshot": h.num_fewshot, "batch_size": h.batch_size,
                 "max_drop": budget, "seconds": {s: d["seconds"] for s, d in details.items()}}
    flags: list[str] = []
    tuned_detail = details.get("tuned", {})
    for task in tuned_detail.get("tasks", {}):  # the named tasks and groups (a tag: the tasks it expands to)
        metric = main_metric(task, tuned_detail)
        key = f"{PREFIX}{task}_{metric}"
        if metric is None or key not in tuned:
            continue
        d = tuned_detail["tasks"][task]
        row = {"metric": metric, "tuned": tuned[key], "examples": d["examples"], "stderr": d["stderr"].get(metric),
               "higher_is_better": d["higher_is_better"].get(metric, True)}
        if key in base:
            row.update(base=base[key], delta=tuned[key] - base[key])
            drop = -row["delta"] if row["higher_is_better"] else row["delta"]
            row["regression"] = budget is not None and drop > budget
            if row["regression"]:
                flags.append(f"forgetting: harness {task} {metric} {base[key]:.4f} -> {tuned[key]:.4f} "
                             f"({row['delta']:+.4f}, n={row['examples']}) exceeds eval.forgetting.harness_max_drop "
                             f"{budget:g}")
        out["tasks"][task] = row
    return out, flags
