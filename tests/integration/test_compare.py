"""Two real tiny runs that differ in two overrides: `ftx compare`, the model card, `ftx report`."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest

from ftx.record.card import fmt
from tests.helpers import run_ftx, write_jsonl

WORDS = "request header status cache proxy cookie server client method body token route".split()


def tiny_data(root: Path) -> list[str]:
    """Small crafted domain + general files; the overrides that point a tiny_smoke run at them."""
    def rec(i, kind):
        w = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(6)]
        return {"id": f"{kind}{i}", "prompt": f"What is {w[0]} {w[1]} in case {i}?",
                "response": f"It is {' '.join(w)} ({i})."}

    write_jsonl(root / "domain.jsonl", [rec(i, "d") for i in range(40)])
    write_jsonl(root / "general.jsonl", [rec(i, "g") for i in range(16)])
    return [f"data.sources.http.path={root / 'domain.jsonl'}", f"data.sources.general.path={root / 'general.jsonl'}",
            "data.format.max_length=512"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    data = tiny_data(root)
    logs = {}
    for name, r, lr in (("a", 2, "1e-3"), ("b", 4, "3e-3")):
        res = run_ftx(["train", "experiment=tiny_smoke", *data, f"lora.r={r}", f"optimizer.lr={lr}",
                       f"hydra.run.dir=outputs/runs/cmp/{name}"], root)
        assert res.returncode == 0, res.stderr[-3000:]
        logs[name] = res
    return root, logs


def test_compare_shows_exactly_the_two_differing_keys_and_both_runs_metrics(two_runs):
    root, _ = two_runs
    r = run_ftx(["compare", "outputs/runs/cmp/a", "outputs/runs/cmp/b", "--out", "cmp"], root)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((root / "cmp" / "compare.csv").open()))
    header = list(rows[0])
    assert header[1:header.index("objective/value")] == ["lora.r", "optimizer.lr"]
    assert [(row["run"], row["lora.r"], float(row["optimizer.lr"])) for row in rows] == [("a", "2", 1e-3), ("b", "4", 3e-3)]
    values = {}
    for row in rows:
        metrics = json.loads((root / "outputs/runs/cmp" / row["run"] / "metrics.json").read_text())
        assert float(row["objective/value"]) == metrics["objective"]["value"]
        assert float(row["tuned/val_loss"]) == metrics["tuned"]["val_loss"]
        assert float(row["delta/val_loss"]) == metrics["delta"]["val_loss"]
        # Peak memory per stage is recorded and read back: a sweep can be read for memory as well as loss.
        assert float(row["memory/peak/rss_mb"]) == metrics["memory"]["peak"]["rss_mb"] > 100
        assert row["memory/peak/stage"] in metrics["memory"] and float(row["memory/train/rss_mb"]) > 100
        assert {"data", "model", "base_eval", "train", "tuned_eval", "save"} <= set(metrics["memory"])
        values[row["run"]] = metrics["objective"]["value"]
    best = min(values, key=values.get)
    assert [row["run"] for row in rows if row["best"] == "*"] == [best]
    table_header = r.stdout.splitlines()[0].split()
    assert table_header[:4] == ["run", "lora.r", "optimizer.lr", "objective/value"]
    assert "lora.alpha" not in r.stdout and "train.seed" not in r.stdout
    assert re.search(rf"^best: {best} \(objective/value = ", r.stdout, re.M)
    assert (root / "cmp" / "loss_curves.png").stat().st_size > 10_000


def test_compare_takes_a_glob_and_a_parent_folder(two_runs):
    root, _ = two_runs
    for target in ("outputs/runs/cmp/*", "outputs/runs"):
        r = run_ftx(["compare", target], root)
        assert r.returncode == 0, r.stderr
        assert [line.split()[0] for line in r.stdout.splitlines()[1:3]] == ["a", "b"], r.stdout
    assert (root / "outputs" / "runs" / "compare" / "compare.csv").is_file(), "a folder's comparison lands in it"


def test_model_card_beside_the_adapter_has_lineage_and_its_snippet_loads(two_runs):
    root, _ = two_runs
    run = root / "outputs/runs/cmp/b"
    card = (run / "adapter" / "README.md").read_text()
    assert "Model Card for Model ID" not in card, "PEFT's template was replaced"
    for f in ("domain.jsonl", "general.jsonl"):
        assert hashlib.sha256((root / f).read_bytes()).hexdigest() in card
    for stage in json.loads((run / "data" / "ledger.json").read_text()):
        assert f"| {stage['stage']} | {stage['in']} | {stage['kept']} | {stage['dropped']} |" in card
    mix = json.loads((run / "data" / "stats.json").read_text())["mix"]
    shown = [k for k, v in mix.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert shown and all(f"| {k} | {fmt(mix[k])} |" in card for k in shown), "achieved mix"
    for name, row in (mix.get("by_source") or {}).items():
        assert f"| {name} | {fmt(row.get('examples'))} |" in card
    tuned = json.loads((run / "metrics.json").read_text())["tuned"]["val_loss"]
    assert f"| val_loss | " in card and f"{tuned:.4g}" in card
    assert "| lora.r | 4 |" in card and "| optimizer.lr | 0.003 |" in card
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1).replace("max_new_tokens=64", "max_new_tokens=3")
    scope: dict = {}
    exec(compile(code, "card", "exec"), scope)  # the card's own loading instructions work as written
    assert type(scope["model"]).__name__.startswith("PeftModel")


def test_report_command_writes_markdown_and_html_with_plots(two_runs):
    root, _ = two_runs
    r = run_ftx(["report", "outputs/runs/cmp/a", "--html"], root)
    assert r.returncode == 0, r.stderr
    folder = root / "outputs/runs/cmp/a/report"
    text = (folder / "report.md").read_text()
    assert "![training](curves.png)" in text and "![eval](eval.png)" in text and "lora.r=2" in text
    assert (folder / "report.html").read_text().count("data:image/png;base64,") == 3


def test_progress_in_a_captured_log_is_plain_lines(two_runs):
    _, logs = two_runs
    err = logs["a"].stderr
    assert "\r" not in err, "no carriage-return redraws in a non-terminal log"
    assert re.search(r"^train: 0/6 \(0%\)", err, re.M) and re.search(r"^train: 6/6 \(100%\)", err, re.M)
