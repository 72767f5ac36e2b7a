"""Benchmark the demo: wall time, training tokens/s, base vs tuned held-out loss.

    python benchmarks/demo.py                      # the README demo (SmolLM2-135M, ~5–10 min)
    python benchmarks/demo.py --repeats 3          # medians over 3 runs
    python benchmarks/demo.py -- experiment=tiny_smoke   # any overrides after --

Prints one table; figures are medians over the repeats (machines here are noisy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(overrides: list[str], workdir: Path, i: int) -> dict:
    run_dir = workdir / f"run{i}"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ftx", "train", *overrides, f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchmark run failed:\n{proc.stderr[-2000:]}")
    m = json.loads((run_dir / "metrics.json").read_text())
    env = json.loads((run_dir / "manifest.json").read_text()).get("environment", {})
    return {"threads": env.get("torch_threads", 0), "wall_s": wall, "train_s": m["train"]["seconds"],
            "tokens_per_s": m["train"]["tokens_per_s"], "steps": m["train"]["steps"], "base_val_loss": m["base"]["val_loss"],
            "tuned_val_loss": m["tuned"]["val_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_once(args.overrides, Path(tmp), i) for i in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"demo benchmark ({args.repeats} run(s), medians) overrides: {' '.join(args.overrides) or '(none)'}")
    for i, r in enumerate(rows):  # each run, so the spread behind the medians shows
        print(f"  run {i}: threads {r['threads']}, wall {r['wall_s']:.1f} s, training {r['train_s']:.1f} s, "
              f"{r['tokens_per_s']:.1f} tok/s, val loss {r['base_val_loss']:.4f} -> {r['tuned_val_loss']:.4f}")
    print(f"{'wall time (s)':<28}{med['wall_s']:>10.1f}")
    print(f"{'training time (s)':<28}{med['train_s']:>10.1f}")
    print(f"{'training tokens/s':<28}{med['tokens_per_s']:>10.1f}")
    print(f"{'optimizer steps':<28}{med['steps']:>10.0f}")
    print(f"{'base val loss':<28}{med['base_val_loss']:>10.4f}")
    print(f"{'tuned val loss':<28}{med['tuned_val_loss']:>10.4f}")
    print(f"{'tuned / base loss ratio':<28}{med['tuned_val_loss'] / med['base_val_loss']:>10.3f}")
    print(f"{'training share of wall':<28}{med['train_s'] / med['wall_s']:>10.2f}")


if __name__ == "__main__":
    main()
