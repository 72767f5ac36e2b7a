"""Sweep report: the best parameters as an override line and YAML, a trials table, plots, a summary.

Written into <sweep dir>/report/ at the end of every sweep and by `ftx sweep-report <sweep dir>`:

    best_overrides.txt   ftx train … the best trial's overrides, ready to paste
    best.yaml            the best trial (or the Pareto front): number, value(s), params, run dir
    trials.csv           every trial: number, state, value(s), params, duration, run dir, error
    history.png          optimisation history         importances.png  parameter importances
    parallel.png         parallel coordinates         intermediate.png learning curves (pruning)
    pareto.png           (several objectives)         report.md        summary, top trials, plots
"""

from __future__ import annotations

import logging
import shlex
import warnings
from pathlib import Path

from ftx.runs import atomic_write_text  # a killed report never leaves half a best_overrides.txt
from hydra_plugins.ftx_sweeper._space import param_overrides

log = logging.getLogger("ftx.track.sweep")

PLOTS = {  # file stem → optuna.visualization function name
    "history": "plot_optimization_history",
    "importances": "plot_param_importances",
    "parallel": "plot_parallel_coordinate",
    "intermediate": "plot_intermediate_values",
    "pareto": "plot_pareto_front",
}


def override_line(study, trial) -> str:
    """`ftx train <fixed overrides> <trial params>`: the command that reruns a trial as a single run
    (the trial's own overrides as launched, less the sweep bookkeeping)."""
    attrs = study.user_attrs
    args = trial.user_attrs.get("overrides") or list(attrs.get("ftx:fixed", [])) + param_overrides(
        trial.params, attrs.get("ftx:prefixes", {}), attrs.get("ftx:encoded", []))
    return "ftx train " + " ".join(shlex.quote(a) for a in args)


def _nested(params: dict) -> dict:
    """{'lora.r': 8, 'quant': 'nf4'} → {'lora': {'r': 8}, 'quant': 'nf4'}."""
    out: dict = {}
    for key, value in params.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _best_entry(study, trial) -> dict:
    entry = {"trial": trial.number, "params": dict(trial.params), "config": _nested(trial.params),
             "overrides": override_line(study, trial), "run_dir": trial.user_attrs.get("run_dir")}
    if len(study.directions) == 1:
        entry["value"] = trial.value
    else:
        entry["values"] = list(trial.values)
    return entry


def write_report(study, sweep_dir: Path, plots: str = "png") -> Path:
    """Write the report files; returns the report folder. Plots that cannot be drawn are listed
    with the reason in report.md (e.g. importances need two finished trials)."""
    import yaml

    sweep_dir = Path(sweep_dir)
    out = sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts: dict = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    multi = len(study.directions) > 1
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    summary = {"study": study.study_name, "directions": [d.name.lower() for d in study.directions],
               "objectives": study.user_attrs.get("ftx:objectives"), "trials": counts}
    if complete:
        if multi:
            summary["pareto_front"] = [_best_entry(study, t) for t in study.best_trials]
            atomic_write_text(out / "best_overrides.txt",
                              "".join(override_line(study, t) + "\n" for t in study.best_trials))
        else:
            summary["best"] = _best_entry(study, study.best_trial)
            atomic_write_text(out / "best_overrides.txt", summary["best"]["overrides"] + "\n")
    elif (out / "best_overrides.txt").exists():
        (out / "best_overrides.txt").unlink()
    atomic_write_text(out / "best.yaml", yaml.safe_dump(summary, sort_keys=False, allow_unicode=True))
    _trials_csv(study, out / "trials.csv")
    made, skipped = _plots(study, out, plots) if plots != "none" else ([], {})
    _markdown(study, summary, made, skipped, out / "report.md")
    return out


def _trials_csv(study, path: Path) -> None:
    value = ("values",) if len(study.directions) > 1 else ("value",)
    df = study.trials_dataframe(attrs=("number", "state", *value, "params", "duration", "datetime_start",
                                       "user_attrs"), multi_index=False)
    if "duration" in df:
        df["duration"] = df["duration"].dt.total_seconds().round(2)
    last_steps = {t.number: max(t.intermediate_values) if t.intermediate_values else None
                  for t in study.get_trials(deepcopy=False)}
    interrupted = {n for t in study.get_trials(deepcopy=False) for n in t.system_attrs.get("retry_history", [])}
    if "number" in df:
        df["last_reported_step"] = df["number"].map(last_steps)
        df["interrupted_and_requeued"] = df["number"].isin(interrupted)
    atomic_write_text(path, df.to_csv(index=False))


def _plots(study, out: Path, fmt: str):
    """Draw each plot with optuna.visualization(.matplotlib); return (files, {name: why not})."""
    import optuna

    if fmt == "png":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import optuna.visualization.matplotlib as vis
    else:
        import optuna.visualization as vis
    multi = len(study.directions) > 1
    made, skipped = [], {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    for stem, fn in PLOTS.items():
        if stem == "pareto" and not multi or stem == "intermediate" and multi:
            continue
        if not complete and stem != "intermediate":
            skipped[stem] = "no completed trial"
            continue
        if stem == "importances" and len(complete) < 2:
            skipped[stem] = f"needs 2 completed trials, have {len(complete)}"
            continue
        if stem == "intermediate" and not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            skipped[stem] = "no trial reported intermediate values"
            continue
        kwargs = {}
        if multi and stem != "pareto":
            kwargs = {"target": lambda t: t.values[0], "target_name": study.user_attrs.get(
                "ftx:objectives", ["objective 0"])[0]}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = getattr(vis, fn)(study, **kwargs)
            if fmt == "png":
                figure = fig.figure if hasattr(fig, "figure") else fig.flat[0].figure
                figure.set_size_inches(9, 5.5)
                figure.savefig(out / f"{stem}.png", dpi=100, bbox_inches="tight")
                plt.close(figure)
                made.append(f"{stem}.png")
            else:
                fig.write_html(str(out / f"{stem}.html"), include_plotlyjs="cdn")
                made.append(f"{stem}.html")
        except (ValueError, RuntimeError, ImportError, optuna.exceptions.OptunaError) as e:
            skipped[stem] = " ".join(str(e).split())[:200] or type(e).__name__
    return made, skipped


def _markdown(study, summary: dict, made: list, skipped: dict, path: Path) -> None:
    lines = [f"# Sweep report: {study.study_name}", "",
             "Trials: " + ", ".join(f"{n} {k}" for k, n in summary["trials"].items()), ""]
    if "best" in summary:
        b = summary["best"]
        lines += [f"Best: trial {b['trial']}, {summary['objectives'][0]} = {b['value']:.6g} "
                  f"({summary['directions'][0]})", "", "```", b["overrides"], "```", ""]
    elif "pareto_front" in summary:
        lines += [f"Pareto front ({', '.join(summary['objectives'])}): {len(summary['pareto_front'])} trials", ""]
        lines += ["```"] + [p["overrides"] for p in summary["pareto_front"]] + ["```", ""]
    else:
        lines += ["No trial has completed yet.", ""]
    ranked = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(study.directions) == 1 and ranked:
        ranked.sort(key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
        keys = sorted({k for t in ranked for k in t.params})
        lines += ["| trial | value | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
        for t in ranked[:10]:
            lines.append(f"| {t.number} | {t.value:.6g} | " + " | ".join(_fmt(t.params.get(k)) for k in keys) + " |")
        lines.append("")
    lines += [f"![{Path(m).stem}]({m})" if m.endswith(".png") else f"- [{Path(m).stem}]({m})" for m in made]
    if skipped:
        lines += ["", "Plots not drawn:"] + [f"- {k}: {why}" for k, why in skipped.items()]
    files = (["best_overrides.txt"] if (path.parent / "best_overrides.txt").exists() else []) + \
        ["best.yaml", "trials.csv", *made]
    lines += ["", "Files: " + ", ".join(files), ""]
    atomic_write_text(path, "\n".join(lines))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
