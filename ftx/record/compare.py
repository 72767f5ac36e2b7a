"""`ftx compare RUNS…`: runs side by side without a server.

    ftx compare outputs/sweeps/2026-11-22/10-00-00_ftx           # every run under a sweep folder
    ftx compare outputs/runs/*/*_lr*  other/run                  # run dirs and globs, mixed
    ftx compare SWEEP --metric tuned/val_loss --out cmp/         # rank by another metric

Prints a table of the config keys that differ between the runs plus their key metrics (peak memory too:
metrics.json memory, the stage at the peak and the training peak, in MB), marks the best run, and writes the table as compare.csv and the runs' loss curves overlaid as loss_curves.png.
"""

from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftx.errors import RunError
from ftx.record.rundir import RunRecord, is_run_dir, load_run
from ftx.runs import flatten

DEFAULT_METRICS = ("objective/value", "tuned/val_loss", "delta/val_loss", "tuned/val_rouge_l", "tuned/general_eval_loss",
                   "delta/general_eval_loss", "tuned/ops_latency_p99_s", "eval/ops/latency_p99_ratio",
                   "tuned/ops_output_tokens_mean", "eval/ops/output_tokens_ratio", "review/win_rate",
                   "review/items_rated", "eval/pairwise/win_rate", "eval/pairwise/position_flip_rate",
                   "train/loss", "train/seconds",
                   "memory/peak/rss_mb", "memory/peak/stage", "memory/train/rss_mb", "memory/train/cuda_mb",
                   "cost/device_hours", "cost/estimated_cost", "cost/val_gain_per_device_hour")
IGNORED_PREFIXES = ("sweep.",)  # per-trial bookkeeping (trial number, storage), not a setting


def find_runs(targets: list[str]) -> list[Path]:
    """Run directories named directly, found under sweep/parent folders, or matched by globs."""
    found: dict[Path, None] = {}

    def collect(p: Path) -> None:
        if is_run_dir(p):
            found.setdefault(p.resolve())
            return
        for m in sorted(p.rglob("manifest.json")):
            if is_run_dir(m.parent):
                found.setdefault(m.parent.resolve())

    for t in targets:
        if any(ch in t for ch in "*?["):
            matches = sorted(glob.glob(t, recursive=True))
            if not matches:
                raise RunError(f"{t}: the glob matches nothing")
            for m in matches:
                if Path(m).is_dir():
                    collect(Path(m))
        elif Path(t).is_dir():
            collect(Path(t))
        else:
            raise RunError(f"{t}: no such directory (give run directories, a sweep directory or a glob)")
    if not found:
        raise RunError(f"no run directories in {' '.join(targets)} (a run directory holds config.yaml and manifest.json)")
    return list(found)


def _key(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def differing_keys(runs: list[RunRecord]) -> list[str]:
    """Config keys (dotted) whose value is not the same in every run; keys missing somewhere count."""
    flats = [flatten(r.config) for r in runs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    out = [k for k in keys if not k.startswith(IGNORED_PREFIXES)
           and len({_key(f.get(k, "<missing>")) for f in flats}) > 1]
    return out


def labels(paths: list[Path]) -> list[str]:
    """Each run's path relative to what all of them share ("0", "1" in a sweep; dates/names otherwise)."""
    if len(paths) == 1:
        return [paths[0].name]
    shared = []
    for parts in zip(*(q.parts for q in paths)):
        if len(set(parts)) > 1:
            break
        shared.append(parts[0])
    return [str(p.relative_to(Path(*shared))) if shared else str(p) for p in paths]


def harness_columns(runs: list[RunRecord]) -> list[str]:
    """tuned/ and delta/ of each eval.harness task's main metric (metrics.json eval.harness), in run order."""
    cols: dict = {}
    for r in runs:
        for task, row in (r.metrics.get("eval", {}).get("harness", {}).get("tasks") or {}).items():
            for side in ("tuned", "delta"):
                key = f"{side}/harness_{task}_{row.get('metric')}"
                if r.get(key) is not None:
                    cols[key] = None
    return list(cols)


def _number(v) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


@dataclass
class Comparison:
    runs: list
    labels: list
    keys: list
    metrics: list
    rank_metric: str
    direction: str
    best: Optional[int]
    table: object  # pandas.DataFrame


def ranking(runs: list[RunRecord], metric: Optional[str], direction: Optional[str]) -> tuple[str, str]:
    """What decides the best run: --metric, else the runs' shared objective, else tuned/val_loss."""
    def resolved(r):  # metrics.json records what objective.metric/direction=auto resolved to
        obj, cfg = r.metrics.get("objective") or {}, r.config.get("objective", {})
        metric = obj.get("metric") or cfg.get("metric")
        direction = obj.get("direction") or (cfg.get("direction") if cfg.get("direction") != "auto" else None)
        return metric, direction

    objectives = {resolved(r) for r in runs}
    shared = next(iter(objectives)) if len(objectives) == 1 else (None, None)
    if metric:
        if direction is None:
            direction = shared[1] if metric in ("objective/value", shared[0]) and shared[1] else "minimize"
        return metric, direction
    if shared[0]:
        return "objective/value", direction or shared[1] or "minimize"
    return "tuned/val_loss", direction or "minimize"


def compare(targets: list[str], metrics: Optional[list[str]] = None, metric: Optional[str] = None,
            direction: Optional[str] = None) -> Comparison:
    import pandas as pd

    paths = find_runs(targets)
    runs = [load_run(p) for p in paths]
    names = labels(paths)
    keys = differing_keys(runs)
    rank_metric, direction = ranking(runs, metric, direction)
    wanted = list(metrics) if metrics else [m for m in DEFAULT_METRICS if any(r.get(m) is not None for r in runs)]
    if not metrics:  # each lm-eval task's main metric and its delta, after the forgetting columns
        at = next((i for i, m in enumerate(wanted) if m.startswith(("tuned/ops_", "eval/ops/", "review/", "train/"))),
                  len(wanted))
        wanted[at:at] = harness_columns(runs)
    if rank_metric not in wanted:
        wanted.insert(0, rank_metric)
    scores = [_number(r.get(rank_metric)) for r in runs]
    flagged = [bool(r.metrics.get("flags")) for r in runs]
    valid = [i for i, s in enumerate(scores) if s is not None]
    if any(not flagged[i] for i in valid):  # a run with a flagged regression is never the best
        valid = [i for i in valid if not flagged[i]]
    best = (min if direction == "minimize" else max)(valid, key=lambda i: scores[i]) if valid else None
    rows = []
    for i, (r, name) in enumerate(zip(runs, names)):
        flat = flatten(r.config)
        row = {"run": name}
        row.update({k: _cell(flat.get(k)) for k in keys})
        row.update({m: r.get(m) if not isinstance(r.get(m), dict) else None for m in wanted})
        row.update(best="*" if i == best else "", flags="; ".join(r.metrics.get("flags") or []),
                   status="finished" if r.finished else "incomplete",
                   path=str(r.path))
        rows.append(row)
    return Comparison(runs, names, keys, wanted, rank_metric, direction, best, pd.DataFrame(rows))


def _cell(v):
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _curve(r: RunRecord, key: str) -> tuple[list, list]:
    pts = [(e["step"], e[key]) for e in r.curves if _number(e.get(key)) is not None and "step" in e]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(c: Comparison, out: Path) -> Optional[Path]:
    """Train and eval loss against step, one line per run, the best run drawn thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, t) for k, t in (("loss", "train loss"), ("eval_loss", "eval loss"))
              if any(_curve(r, k)[0] for r in c.runs)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for i, (r, name) in enumerate(zip(c.runs, c.labels)):
            xs, ys = _curve(r, key)
            if not xs:
                continue
            flat = flatten(r.config)
            desc = ", ".join(f"{k.split('.')[-1]}={flat.get(k)}" for k in c.keys)[:60]
            label = f"{'★ ' if i == c.best else ''}{name}" + (f" ({desc})" if desc else "")
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3,
                    linewidth=2.8 if i == c.best else 1.2, label=label, zorder=3 if i == c.best else 2)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def default_out(targets: list[str]) -> Path:
    if len(targets) == 1 and Path(targets[0]).is_dir() and not is_run_dir(Path(targets[0])):
        return Path(targets[0]) / "compare"
    return Path("compare")


