"""Learning rate × epochs × LoRA rank on real QA sets, judged by the task metric (issue 21, item 4).

    python benchmarks/qa_sets.py --out qa/sets --train 200 --heldout 70     # build the five real sets
    nice -n 5 python benchmarks/qa_defaults.py --sets-dir qa/sets --out qa/grid
    python benchmarks/qa_defaults.py --sets-dir qa/sets --out qa/grid --report   # table + CSV only

Every cell is one `ftx train` run (the CLI, in a subprocess: ftx's own data plan, training,
base-vs-tuned evaluation and paired tests), with the set's train.jsonl as the training split and
heldout.jsonl as the declared validation split, so the 70 held-out questions (packages never seen in
training) are answered greedily by base and tuned and compared per example (eval.task: McNemar for
val_contains, paired bootstrap for val_token_f1). The primary metric is ftx's `eval.primary=auto`
(val_contains for the short-answer sets, val_token_f1 for synopsis).

Design: by default the 2^(3-1) fractional factorial over lr {LO, HI} × epochs {LO, HI} × rank {LO, HI}
(4 cells, defining relation I = lr·epochs·rank, which contains the old shipped defaults lr 1e-3, 3 epochs,
r 8), cheapest (fewest epochs) first; `--design full` runs all 8 cells and `--cells lr:epochs:r,...`
names cells. A cell whose run directory already holds metrics.json is not run again (the grid resumes
after an interruption; delete the folder to re-run). Each finished cell rewrites the table and CSV.

Output: `<out>/results.csv` (one row per set × cell) and the table on stdout: base and tuned task
metric, val loss, the paired test's p and verdict, and ftx's flags.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
SETS = ("commands", "sections", "synopsis", "mimetypes", "ports", "manpages")
COLUMNS = ("set", "lr", "epochs", "r", "steps", "train_s", "primary", "base_task", "tuned_task", "diff", "ci_lo",
           "ci_hi", "p", "verdict", "base_val_loss", "tuned_val_loss", "loss_change", "base_contains",
           "tuned_contains", "base_token_f1", "tuned_token_f1", "base_exact_match", "tuned_exact_match", "flags")


def design(kind: str, lrs: list[float], epochs: list[float], ranks: list[int]) -> list[tuple]:
    full = list(itertools.product(lrs, epochs, ranks))
    if kind == "full":
        cells = full
    else:  # half fraction I = ABC: the cells with an even number of "high" levels... or odd: keep the old defaults
        hi = lambda c: (c[0] == lrs[1]) + (c[1] == epochs[1]) + (c[2] == ranks[1])
        parity = hi((1e-3, 3.0, 8)) % 2 if (1e-3 in lrs and 3.0 in epochs and 8 in ranks) else 1
        cells = [c for c in full if hi(c) % 2 == parity]
    return sorted(cells, key=lambda c: (c[1], c[2], c[0]))  # cheapest first: fewer epochs, smaller rank


def cell_name(lr: float, ep: float, r: int) -> str:
    return f"lr{lr:g}_ep{ep:g}_r{r}"


def overrides(set_dir: Path, name: str, lr: float, ep: float, r: int, args) -> list[str]:
    return ["~data.sources.http", "~data.sources.general",
            f"+data.sources.train.path={set_dir / 'train.jsonl'}", "+data.sources.train.split=train",
            f"+data.sources.heldout.path={set_dir / 'heldout.jsonl'}", "+data.sources.heldout.split=val",
            f"data.name=qa_{name}", f"data.format.max_length={args.max_length}", "curation=none",
            "eval.golden.path=null", "eval.offdomain.path=null", "eval.generation.splits=[val]",
            "eval.generation.max_examples=0", f"eval.generation.max_new_tokens={args.max_new_tokens}",
            f"optimizer.lr={lr}", f"train.epochs={ep}", f"lora.r={r}", f"train.logging_steps=10",
            f"name=qa_{name}_{cell_name(lr, ep, r)}", *args.extra]


def base_run(set_name: str, args) -> Path | None:
    """The set's finished cell that measured the base model (its predictions_base.jsonl), if any."""
    d = args.out / set_name
    for run_dir in sorted(d.glob("lr*_ep*_r*")) if d.exists() else []:
        if (run_dir / "metrics.json").exists() and (run_dir / "predictions_base.jsonl").exists():
            return run_dir
    return None


def run_cell(set_name: str, cell: tuple, args) -> Path:
    run_dir = args.out / set_name / cell_name(*cell)
    if (run_dir / "metrics.json").exists():
        return run_dir
    # the base model, data and precision are the same in every cell of a set: measure it once
    once = ["eval.base_vs_tuned=false"] if args.base_once and base_run(set_name, args) else []
    if run_dir.exists() and any(run_dir.iterdir()):
        sys.exit(f"qa_defaults: {run_dir} holds an unfinished run; delete it to run that cell again")
    cmd = ["nice", "-n", str(args.nice), sys.executable, "-m", "ftx", "train",
           *overrides(args.sets_dir / set_name, set_name, *cell, args), *once, f"hydra.run.dir={run_dir}"]
    t0 = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {set_name} {cell_name(*cell)} …", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    (args.out / set_name).mkdir(parents=True, exist_ok=True)
    (args.out / set_name / f"{cell_name(*cell)}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"qa_defaults: {set_name} {cell_name(*cell)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    print(f"[{time.strftime('%H:%M:%S')}] {set_name} {cell_name(*cell)} done in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr, flush=True)
    return run_dir


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def paired_with_base(m: dict, run_dir: Path, base_dir: Path) -> tuple[dict, dict, list[str]]:
    """(base metrics, paired task results, regression flags) for a cell run without the base: its tuned
    predictions paired by id with the base cell's predictions, through ftx's own paired tests."""
    from ftx.eval.paired import task_comparison
    from ftx.eval.suite import task_flags

    bm = json.loads((base_dir / "metrics.json").read_text())
    alpha = bm["eval"]["task"]["significance"]
    seed = OmegaConf.load(run_dir / "config.yaml").train.seed  # what ftx seeds its bootstrap with
    task = task_comparison(read_jsonl(base_dir / "predictions_base.jsonl"),
                           read_jsonl(run_dir / "predictions_tuned.jsonl"), alpha, seed)
    return bm["base"], task, task_flags(task)[0]


def row(set_name: str, run_dir: Path, base_dir: Path | None) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    primary = m["eval"]["primary"]["metric"]
    if "task" in m["eval"]:
        b, task, flags = m["base"], m["eval"]["task"]["metrics"], m.get("flags", [])
    else:
        if base_dir is None:
            raise SystemExit(f"qa_defaults: {run_dir} ran without the base and no cell of {set_name} measured it")
        b, task, extra = paired_with_base(m, run_dir, base_dir)
        flags = m.get("flags", []) + extra
    t = task[primary]
    tu = m["tuned"]
    lr, ep, r = parse_cell(run_dir.name)
    return {"set": set_name, "lr": lr, "epochs": ep, "r": r, "steps": m["train"]["steps"],
            "train_s": round(m["train"]["seconds"], 1), "primary": primary,
            "base_task": round(t["base"], 4), "tuned_task": round(t["tuned"], 4), "diff": round(t["diff"], 4),
            "ci_lo": round(t["ci"][0], 4), "ci_hi": round(t["ci"][1], 4), "p": float(f"{t['p']:.3g}"),
            "verdict": t["verdict"], "base_val_loss": round(b["val_loss"], 4), "tuned_val_loss": round(tu["val_loss"], 4),
            "loss_change": round(tu["val_loss"] / b["val_loss"] - 1, 4),
            **{f"{side}_{k}": round(d.get(f"val_{k}", float("nan")), 4)
               for k in ("contains", "token_f1", "exact_match") for side, d in (("base", b), ("tuned", tu))},
            "flags": " | ".join(flags)}


def parse_cell(name: str) -> tuple:
    lr, ep, r = name.split("_")
    return float(lr[2:]), float(ep[2:]), int(r[1:])


def collect(args) -> list[dict]:
    rows = []
    for s in args.sets:
        d, base_dir = args.out / s, base_run(s, args)
        for run_dir in sorted(d.glob("lr*_ep*_r*")) if d.exists() else []:
            if run_dir.is_dir() and (run_dir / "metrics.json").exists():
                rows.append(row(s, run_dir, base_dir))
    return rows


def report(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    head = (f"{'set':<9} {'lr':>7} {'ep':>3} {'r':>3} {'steps':>5} {'primary':<13} {'base':>6} {'tuned':>6} "
            f"{'diff [CI]':<22} {'p':>7} {'verdict':<11} {'val loss base→tuned':<22}")
    print(head)
    for x in rows:
        ci = f"{x['diff']:+.3f} [{x['ci_lo']:+.2f},{x['ci_hi']:+.2f}]"
        loss = f"{x['base_val_loss']:.3f}→{x['tuned_val_loss']:.3f} ({x['loss_change']:+.0%})"
        print(f"{x['set']:<9} {x['lr']:>7g} {x['epochs']:>3g} {x['r']:>3} {x['steps']:>5} {x['primary']:<13} "
              f"{x['base_task']:>6.3f} {x['tuned_task']:>6.3f} {ci:<22} {x['p']:>7.3g} {x['verdict']:<11} {loss:<22}")
    print(f"\n{len(rows)} run(s); CSV: {out / 'results.csv'}")


def floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets-dir", type=Path, required=True, help="qa_sets.py's --out folder")
    ap.add_argument("--out", type=Path, required=True, help="run directories, results.csv")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--lr", type=floats, default=[2e-4, 1e-3], help="two levels (low,high)")
    ap.add_argument("--epochs", type=floats, default=[1.0, 3.0], help="two levels (low,high)")
    ap.add_argument("--ranks", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16], help="two levels")
    ap.add_argument("--design", choices=("half", "full"), default="half")
    ap.add_argument("--cells", default="", help="explicit cells lr:epochs:r,… (overrides --design)")
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--nice", type=int, default=5)
    ap.add_argument("--no-base-once", dest="base_once", action="store_false",
                    help="measure the base in every cell (default: once per set, paired with every cell's answers)")
    ap.add_argument("--report", action="store_true", help="only collect finished cells into the table/CSV")
    ap.add_argument("extra", nargs="*", help="more ftx overrides for every cell (after --)")
    args = ap.parse_args(argv)
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = sorted(set(args.sets) - set(SETS))
    if bad:
        print(f"qa_defaults: unknown set(s) {', '.join(bad)} ({', '.join(SETS)})", file=sys.stderr)
        return 2
    for s in args.sets:
        if not (args.sets_dir / s / "train.jsonl").exists():
            print(f"qa_defaults: {args.sets_dir / s / 'train.jsonl'} not found (build it with benchmarks/qa_sets.py)",
                  file=sys.stderr)
            return 2
    args.sets_dir, args.out = args.sets_dir.resolve(), args.out.resolve()
    if args.cells:
        cells = [(float(a), float(b), int(c)) for a, b, c in (x.split(":") for x in args.cells.split(","))]
    else:
        cells = design(args.design, args.lr, args.epochs, args.ranks)
    if not args.report:
        for cell in cells:  # cell-major: every set gets the cheap cells before any set gets an expensive one
            for s in args.sets:
                run_cell(s, cell, args)
                report(collect(args), args.out)
    report(collect(args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
