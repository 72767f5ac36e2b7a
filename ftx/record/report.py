"""`ftx report RUN_DIR [--html]`: one run as a markdown (or self-contained HTML) page with its plots.

Writes RUN_DIR/report/report.md (+ curves.png, eval.png, curation.png), or report.html with the plots
embedded so it can be attached to a CI job or mailed as one file. Works on unfinished runs too.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Optional

from ftx.record.card import (
    data_section,
    evaluation_section,
    fmt,
    hyperparameters_section,
    md_table,
    training_section,
)
from ftx.record.rundir import RunRecord, load_run
from ftx.runs import atomic_write_text


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(r: RunRecord, key: str) -> tuple[list, list]:
    pts = [(e["step"], e[key]) for e in r.curves if isinstance(e.get(key), (int, float)) and "step" in e]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_training(r: RunRecord, out: Path) -> Optional[Path]:
    """Loss (train and eval), learning rate and gradient norm against step."""
    panels = [p for p in (("loss", "eval_loss"), ("learning_rate",), ("grad_norm",)) if any(_series(r, k)[0] for k in p)]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, keys in zip(axes[0], panels):
        for k in keys:
            xs, ys = _series(r, k)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=k)
        ax.set_xlabel("step")
        ax.set_title(" / ".join(keys))
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_eval(r: RunRecord, out: Path) -> Optional[Path]:
    """Base vs tuned held-out loss per split."""
    base, tuned = r.metrics.get("base") or {}, r.metrics.get("tuned") or {}
    keys = [k for k in tuned if k.endswith("_loss") and isinstance(tuned[k], (int, float))]
    if not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 * len(keys) + 2.5, 3.6))
    xs = range(len(keys))
    if base:
        ax.bar([x - 0.2 for x in xs], [base.get(k) or 0 for k in keys], width=0.4, label="base")
    ax.bar([x + (0.2 if base else 0) for x in xs], [tuned[k] for k in keys], width=0.4, label="tuned")
    ax.set_xticks(list(xs), keys, fontsize=8)
    ax.set_ylabel("loss (response tokens)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_curation(r: RunRecord, out: Path) -> Optional[Path]:
    """Records kept and dropped at every data stage (the ledger)."""
    stages = [s for s in r.ledger if isinstance(s.get("in"), int)]
    if not stages:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(stages) + 1.4))
    ys = range(len(stages))[::-1]
    ax.barh(list(ys), [s.get("kept", 0) for s in stages], label="kept")
    ax.barh(list(ys), [s.get("dropped", 0) for s in stages], left=[s.get("kept", 0) for s in stages], label="dropped")
    ax.set_yticks(list(ys), [s["stage"] for s in stages], fontsize=8)
    ax.set_xlabel("records")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def report_markdown(r: RunRecord, images: dict[str, Optional[Path]]) -> str:
    m, obj = r.manifest, r.metrics.get("objective") or {}
    img = {k: f"![{k}]({p.name})" for k, p in images.items() if p}
    status = "finished" if r.finished else "incomplete (no metrics.json: crashed, stopped or still running)"
    head = [["run directory", f"`{r.path}`"], ["status", status], ["started", m.get("started")],
            ["finished", m.get("finished", "-")], ["wall time (s)", r.metrics.get("wall_seconds")],
            ["spec hash", f"`{m.get('spec_hash')}`"],
            ["overrides", " ".join(f"`{o}`" for o in m.get("overrides") or []) or "-"]]
    if obj:
        head.insert(2, ["objective", f"{obj.get('metric')} = **{fmt(obj.get('value'))}**"])
    t = r.tracking
    if t:
        head.append(["W&B", f"{t.get('mode')} run `{t.get('run_id')}` in project `{t.get('project')}`, group "
                            f"`{t.get('group')}`" + (f" — {t['url']}" if t.get("url") else
                                                     f" (files: `{t.get('wandb_dir')}`)")])
    env = m.get("environment") or {}
    pkgs = [[k, v] for k, v in (env.get("packages") or {}).items() if v]
    parts = [f"# Run report: {r.config.get('name', 'ftx')} — {r.path.name}", md_table(["", ""], head),
             "## Evaluation", img.get("eval", ""), evaluation_section(r),
             "## Training", img.get("training", ""), training_section(r) if r.finished else "_not finished_",
             "## Data", img.get("curation", ""), data_section(r),
             "## Hyperparameters", hyperparameters_section(r),
             "## Environment", f"python {env.get('python')}, {env.get('platform')}, git `{env.get('git_sha')}`, "
                               f"{env.get('cpu_count')} CPUs, CUDA {fmt(env.get('cuda'))}",
             md_table(["package", "version"], pkgs)]
    card = r.path / "adapter" / "README.md"
    if card.is_file():
        parts.append(f"Model card: `{card}`")
    return "\n\n".join(p for p in parts if p) + "\n"


def to_html(markdown: str, folder: Path, title: str) -> str:
    """Markdown → one HTML file, images inlined as data URIs."""
    import html
    import re

    from markdown_it import MarkdownIt

    def inline(match):
        path = folder / match.group(2)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    body = MarkdownIt("commonmark").enable("table").render(re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", inline, markdown))
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;"
             "padding:.25em .6em;text-align:left}th{background:#f3f3f3}img{max-width:100%}code{font-size:.9em}")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}</body></html>\n")


def write_report(run_dir: Path, html: bool = False, out_dir: Optional[Path] = None) -> Path:
    r = load_run(run_dir)
    out_dir = Path(out_dir) if out_dir else r.path / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {"training": plot_training(r, out_dir / "curves.png"), "eval": plot_eval(r, out_dir / "eval.png"),
              "curation": plot_curation(r, out_dir / "curation.png")}
    text = report_markdown(r, images)
    atomic_write_text(out_dir / "report.md", text)
    if not html:
        return out_dir / "report.md"
    atomic_write_text(out_dir / "report.html", to_html(text, out_dir, f"ftx report {r.path.name}"))
    return out_dir / "report.html"


