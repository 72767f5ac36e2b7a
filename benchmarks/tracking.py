"""Benchmark tracking's cost: wall time of a run with tracking=none vs W&B offline, and compare/report.

    python benchmarks/tracking.py                  # tiny_smoke, 3 interleaved repeats per variant
    python benchmarks/tracking.py --repeats 5 -- experiment=tiny_smoke train.max_steps=20

Variants run interleaved (none, wandb, wandb+artifacts, none, …) so machine load hits them alike;
figures are medians. W&B runs offline (WANDB_MODE=offline), its folders under a temp dir.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"none": ["tracking=none"], "wandb offline": ["tracking=wandb"],
            "wandb offline + artifacts": ["tracking=wandb", "tracking.log_artifacts=true"]}


def timed(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ftx", *args], cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed: ftx {' '.join(args)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("overrides", nargs="*", default=["experiment=tiny_smoke"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WANDB_MODE="offline", WANDB_CONFIG_DIR=f"{tmp}/wb", WANDB_CACHE_DIR=f"{tmp}/wb",
                   WANDB_DATA_DIR=f"{tmp}/wb", HF_HUB_OFFLINE="1")
        times: dict[str, list[float]] = {k: [] for k in VARIANTS}
        for i in range(a.repeats):
            for name, extra in VARIANTS.items():
                run_dir = Path(tmp) / "runs" / f"{name.replace(' ', '_')}-{i}"
                times[name].append(timed(["train", *a.overrides, *extra, f"hydra.run.dir={run_dir}"], env))
        compare_s = statistics.median(timed(["compare", f"{tmp}/runs", "--out", f"{tmp}/cmp"], env)
                                      for _ in range(a.repeats))
        report_s = statistics.median(timed(["report", str(run_dir), "--html"], env) for _ in range(a.repeats))
    base = statistics.median(times["none"])
    print(f"tracking benchmark ({a.repeats} interleaved repeats, medians) overrides: {' '.join(a.overrides)}")
    print(f"{'variant':<30}{'wall (s)':>10}{'vs none':>10}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<30}{med:>10.1f}{med / base:>10.2f}")
    print(f"{f'ftx compare ({len(VARIANTS) * a.repeats} runs)':<30}{compare_s:>10.1f}")
    print(f"{'ftx report --html':<30}{report_s:>10.1f}")


if __name__ == "__main__":
    main()
