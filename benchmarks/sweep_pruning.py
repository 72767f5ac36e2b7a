"""Pruned vs unpruned sweeps on the tiny model: compute spent and best value found, side by side.

    python benchmarks/sweep_pruning.py [--trials 16] [--seeds 0 1 2] [--steps 30] [--pruners none median hyperband]

The same seeded-TPE sweep (learning rate × LoRA rank, validation loss every 3 steps) runs once per
pruner and sampler seed through `ftx train -m +sweep=tiny`. Compute is counted in training steps
(a pruned trial stops after the evaluation that pruned it) and in trial seconds; the best value is
the lowest final validation loss. Figures are medians over the seeds; ratios are against `none`.
Goal (issue #6): the same best value at <= 50% of the unpruned compute.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CODES = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
         304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
         405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 429: "Too Many Requests",
         500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def write_data(root: Path) -> list[str]:
    rnd = random.Random(0)
    domain = [{"id": f"d{c}-{j}", "prompt": q.format(c=c), "response": f"HTTP {c} means {n}."}
              for c, n in CODES.items()
              for j, q in enumerate(["What does HTTP status {c} mean?", "Explain status code {c}.",
                                     "Which reason phrase goes with {c}?"])]
    general = [{"id": f"g{i}", "prompt": f"What is {a} plus {b}?", "response": f"{a} plus {b} is {a + b}."}
               for i, (a, b) in enumerate((rnd.randint(1, 20), rnd.randint(1, 20)) for _ in range(30))]
    for name, recs in (("domain", domain), ("general", general)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return [f"data.sources.http.path={root / 'domain.jsonl'}", f"data.sources.general.path={root / 'general.jsonl'}"]


def run_sweep(work: Path, data: list[str], pruner: str, seed: int, trials: int, steps: int) -> dict:
    import optuna

    name = f"{pruner}-s{seed}"
    pruner_args = {"none": ["hydra.sweeper.pruner.name=none"],
                   "median": ["hydra.sweeper.pruner.name=median", "hydra.sweeper.pruner.n_startup_trials=3",
                              "hydra.sweeper.pruner.n_warmup_steps=3"],
                   "hyperband": ["hydra.sweeper.pruner.name=hyperband", "hydra.sweeper.pruner.min_resource=3",
                                 f"hydra.sweeper.pruner.max_resource={steps}"]}[pruner]
    cmd = [sys.executable, "-m", "ftx", "train", "-m", "+sweep=tiny", *data, f"train.max_steps={steps}",
           "train.eval_steps=3", "curation=none", f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.sampler.seed={seed}",
           f"hydra.sweeper.study={name}", f"hydra.sweep.dir={work / name}", "hydra.sweeper.plots=none",
           "optimizer.lr=tag(log, interval(1e-5, 1e-1))", "lora.r=choice(2, 4, 8, 16)", *pruner_args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               FTX_CONF=str(ROOT / "ftx" / "conf"), HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    t0 = time.time()
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"sweep {name} failed:\n{r.stderr[-3000:]}")
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{work / name / 'optuna.db'}")
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    steps_spent = sum(steps if t.state.name == "COMPLETE" else max(t.intermediate_values, default=0) for t in done)
    # trial 0 pays the one-off library imports of the sweep process; it is the same trial in every arm
    seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done if t.number > 0)
    return {"steps": steps_spent, "trial_seconds": seconds, "wall": wall, "best": study.best_value,
            "pruned": sum(t.state.name == "PRUNED" for t in done), "complete": sum(t.state.name == "COMPLETE" for t in done)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--pruners", nargs="+", default=["none", "median", "hyperband"])
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict = {p: [] for p in args.pruners}
    with tempfile.TemporaryDirectory(prefix="ftx-sweep-bench-") as tmp:
        work = Path(tmp)
        data = write_data(work)
        for seed in args.seeds:
            for pruner in args.pruners:
                res = run_sweep(work, data, pruner, seed, args.trials, args.steps)
                results[pruner].append(res)
                print(f"  seed {seed} {pruner:<9} steps {res['steps']:>4}  trial-s {res['trial_seconds']:6.1f}  "
                      f"best {res['best']:.4f}  pruned {res['pruned']}/{args.trials}", flush=True)

    med = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in results.items()}
    base = med.get("none") or next(iter(med.values()))
    print(f"\nTPE sweep, {args.trials} trials x {args.steps} steps on the tiny model; medians over seeds {args.seeds}")
    print(f"{'pruner':<10}{'train steps':>12}{'vs none':>9}{'trial s':>9}{'vs none':>9}{'best loss':>11}"
          f"{'best Δ':>9}{'pruned':>8}{'as good*':>10}")
    for p, m in med.items():
        same = sum(r["best"] <= b["best"] + 0.005 for r, b in zip(results[p], results.get("none", results[p])))
        print(f"{p:<10}{m['steps']:>12.0f}{m['steps'] / base['steps']:>9.2f}{m['trial_seconds']:>9.1f}"
              f"{m['trial_seconds'] / base['trial_seconds']:>9.2f}{m['best']:>11.4f}{m['best'] - base['best']:>+9.4f}"
              f"{m['pruned']:>8.0f}{same:>8}/{len(results[p])}")
    print("trial s: summed durations of trials 1.. (model load, data, training, evaluation; trial 0 also pays "
          "the process's library imports and is left out)")
    print("* seeds whose best is no worse than the unpruned sweep's best with the same seed (+0.005)")


if __name__ == "__main__":
    main()
