"""The curation report: report.json, report.md, score histograms (PNG), the precision–recall curve of
the relevance calibration, and the active-learning export (records nearest the threshold)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np

from ftx.data.ledger import Ledger
from ftx.runs import atomic_write_text, write_json
from ftx.spec.curation import CurationConfig

EXAMPLES_PER_REASON = 3


def _plot_hist(name: str, h: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = np.asarray(h["bins"], dtype=float)
    left, widths = bins[:-1], np.diff(bins)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bottom = np.zeros(len(left))
    for series, colour, label in (("kept", "#4c72b0", "kept"), ("dropped", "#dd8452", "dropped"),
                                  ("exempt", "#aaaaaa", "kept (role not filtered)")):
        if series in h and sum(h[series]):
            ax.bar(left, h[series], width=widths, align="edge", bottom=bottom, label=label, color=colour)
            bottom += np.asarray(h[series])
    if "threshold" in h:
        ax.axvline(h["threshold"], color="black", linestyle="--", label=f"threshold {h['threshold']:.3f}")
    if h.get("log"):
        ax.set_xscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel("records")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_pr(curve: dict, threshold: float, target: Optional[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(curve["recall"], curve["precision"], drawstyle="steps-post")
    t = np.asarray(curve["thresholds"])
    if len(t):
        i = int(np.argmin(np.abs(t - threshold)))
        ax.plot(curve["recall"][i], curve["precision"][i], "o", color="black", label=f"threshold {threshold:.3f}")
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label=f"target precision {target}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _examples(ledger: Ledger) -> dict:
    out: dict = {}
    for d in ledger.dropped_records:
        if d["stage"].startswith("curate:"):
            ids = out.setdefault(d["stage"], {}).setdefault(d["reason"], [])
            if len(ids) < EXAMPLES_PER_REASON:
                ids.append(d.get("id"))
    return out


def write_report(result, ledger: Ledger, cfg: CurationConfig, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    files, stages = [], []
    for st in result.stages:
        d = st.as_dict()
        art = dict(d.pop("artifacts"))
        for name, h in art.pop("histograms", {}).items():
            png = f"hist_{name}.png"
            _plot_hist(name, h, out_dir / png)
            files.append(png)
        if "pr_curve" in art:
            curve = art.pop("pr_curve")
            write_json(out_dir / "pr_curve.json", curve)
            _plot_pr(curve, art["threshold"], art.get("target_precision"), out_dir / "pr_curve.png")
            files += ["pr_curve.json", "pr_curve.png"]
        if "active_learning" in art:
            rows = art.pop("active_learning")
            atomic_write_text(out_dir / "active_learning.jsonl",
                              "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            art["active_learning_exported"] = len(rows)
            files.append("active_learning.jsonl")
        d["artifacts"] = art
        stages.append(d)
    report = {"records_in": result.n_in, "kept": len(result.kept), "dropped": result.n_in - len(result.kept),
              "synthetic": result.synthetic, "stages": stages, "examples": _examples(ledger),
              "ledger": [s for s in ledger.summary() if s["stage"].startswith("curate:")],
              "config": asdict(cfg), "files": sorted(files)}
    write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", markdown(report))
    return report


def markdown(r: dict) -> str:
    lines = ["# Curation report", "",
             f"{r['records_in']} records in, **{r['kept']} kept**, {r['dropped']} dropped "
             f"(synthetic: {r['synthetic'].get('in', 0)} in, {r['synthetic'].get('kept', 0)} kept).", "",
             "| stage | in | kept | dropped | dropped by reason | modified | docs/s | cached |",
             "|---|---:|---:|---:|---|---|---:|---|"]
    for s in r["stages"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["dropped_by_reason"].items(), key=lambda kv: -kv[1]))
        mods = ", ".join(f"{k} {v}" for k, v in sorted(s["modified_by_reason"].items()))
        lines.append(f"| {s['stage']} | {s['in']} | {s['kept']} | {s['dropped']} | {reasons or '–'} | "
                     f"{mods or '–'} | {s['docs_per_s'] or '–'} | {'yes' if s['cached'] else 'no'} |")
    for s in r["stages"]:
        if s["stage"] == "relevance":
            a = s["artifacts"]
            lines += ["", "## Relevance", "",
                      f"Scorer `{a['scorer']['scorer']}` on {a['scorer']['seeds']} seeds; threshold mode "
                      f"`{a['mode']}`: **{a['threshold']:.4f}** (applied to {a['applies_to']} records)."]
            if "dev" in a:
                dv = a["dev"]
                lines.append(f"On the labelled dev set ({dv['n']} records, {dv['relevant']} relevant): "
                             f"precision {dv['precision']:.3f}, recall {dv['recall']:.3f} at this threshold.")
            if a.get("rounds"):
                lines += ["", "Active-learning rounds (one per feedback file; estimates on the labels known after "
                          "each round, scored out of fold):", "",
                          "| round | labels (relevant) | dev AP | threshold | precision | recall |", "|---|---|---|---|---|---|"]
                for rd in a["rounds"]:
                    thr = (f"{rd['threshold']:.4f}{' (best-F1 fallback)' if rd.get('fallback') else ''}"
                           if "threshold" in rd else "–")
                    pr = (f"{rd['precision']:.3f} | {rd['recall']:.3f}" if "precision" in rd else "– | –")
                    lines.append(f"| {rd['round']} | {rd['labels']} ({rd['relevant']}) | {rd['average_precision']:.3f} "
                                 f"| {thr} | {pr} |")
                lines.append("")
            if a.get("active_learning_exported"):
                lines.append(f"{a['active_learning_exported']} records nearest the threshold are in "
                             "`active_learning.jsonl`: fill in `label` (1/0) and pass the file back with "
                             "`curation.relevance.feedback=[path]`.")
        if s["stage"] == "agreement":
            a = s["artifacts"]
            kappas = ", ".join(f"Cohen's kappa {pair} {v['kappa']:.3f} ({v['items']} items)"
                               for pair, v in a.get("cohen_kappa", {}).items())
            lines += ["", "## Annotation agreement", "",
                      f"{a['items']} annotated items; Fleiss' kappa "
                      + (f"**{a['fleiss_kappa']:.3f}** ({a['fleiss_items']} items × {a['raters_per_item']} raters)"
                         if "fleiss_kappa" in a else "n/a") + (f"; {kappas}" if kappas else "") + ".",
                      f"{a['disputed']} disputed (agreement < {a['min_agreement']} or a tie), policy `{a['policy']}`:"]
            lines += [f"- {d['id']}: {d['labels']} (agreement {d['agreement']:.2f}{', tie' if d['tie'] else ''})"
                      for d in a["disputed_items"][:20]]
    if r["examples"]:
        lines += ["", "## Examples of dropped records (ids)", ""]
        for stage, reasons in r["examples"].items():
            for reason, ids in reasons.items():
                lines.append(f"- {stage} / {reason}: {', '.join(map(str, ids))}")
    pngs = [f for f in r["files"] if f.endswith(".png")]
    if pngs:
        lines += ["", "## Plots", ""] + [f"![{f}]({f})" for f in pngs]
    return "\n".join(lines) + "\n"
