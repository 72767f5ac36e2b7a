"""benchmarks/qa_defaults.py: the design it runs and the table it builds from ftx run directories
(no model: run directories are written by hand in ftx's metrics.json / predictions layout)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ftx.eval.paired import task_comparison

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("qa_defaults", ROOT / "benchmarks" / "qa_defaults.py")
qa = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qa)


def test_half_fraction_is_balanced_and_holds_the_old_defaults():
    cells = qa.design("half", [2e-4, 1e-3], [1.0, 3.0], [8, 16])
    assert len(cells) == 4 and (1e-3, 3.0, 8) in cells
    for i in range(3):  # every level of every factor twice, every pair of levels of two factors once
        assert len({c[i] for c in cells}) == 2 and sum(c[i] == cells[0][i] for c in cells) == 2
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert len({(c[i], c[j]) for c in cells}) == 4, "any two factors: every combination of levels once"
    assert [c[1] for c in cells] == sorted(c[1] for c in cells), "cheapest (fewest epochs) first"
    assert len(qa.design("full", [2e-4, 1e-3], [1.0, 3.0], [8, 16])) == 8
    assert qa.parse_cell(qa.cell_name(2e-4, 1.0, 16)) == (2e-4, 1.0, 16)


def _run(d: Path, name: str, base: list[float] | None, tuned: list[float], val_loss: tuple, with_base: bool) -> Path:
    run = d / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("train:\n  seed: 42\n")
    rows = lambda xs: "".join(json.dumps({"set": "val", "id": f"q{i}", "contains": x}) + "\n" for i, x in enumerate(xs))
    (run / "predictions_tuned.jsonl").write_text(rows(tuned))
    m = {"train": {"steps": 48, "seconds": 10.0}, "tuned": {"val_loss": val_loss[1], "val_contains": sum(tuned) / len(tuned)},
         "eval": {"primary": {"metric": "val_contains", "reason": "auto"}}, "flags": []}
    if with_base:
        (run / "predictions_base.jsonl").write_text(rows(base))
        task = task_comparison([json.loads(x) for x in rows(base).splitlines()],
                               [json.loads(x) for x in rows(tuned).splitlines()], 0.05, 42)
        m["base"] = {"val_loss": val_loss[0], "val_contains": sum(base) / len(base)}
        m["eval"]["task"] = {"significance": 0.05, "metrics": task}
    (run / "metrics.json").write_text(json.dumps(m))
    return run


def test_a_cell_run_without_the_base_is_paired_with_the_base_cell_and_flagged(tmp_path, capsys):
    base = [1.0] * 30 + [0.0] * 10
    d = tmp_path / "grid" / "commands"
    _run(d, qa.cell_name(2e-4, 1.0, 8), base, base[:], (3.0, 2.0), with_base=True)
    _run(d, qa.cell_name(1e-3, 3.0, 8), None, [0.0] * 40, (3.0, 1.0), with_base=False)  # lower loss, nothing right
    args = type("A", (), {"sets": ["commands"], "out": tmp_path / "grid"})()
    rows = {(r["lr"], r["epochs"]): r for r in qa.collect(args)}
    same, worse = rows[(2e-4, 1.0)], rows[(1e-3, 3.0)]
    assert same["verdict"] == "none" and same["diff"] == 0
    assert worse["base_task"] == 0.75 and worse["tuned_task"] == 0.0 and worse["verdict"] == "regression"
    assert worse["p"] < 1e-6 and worse["base_val_loss"] == 3.0 and worse["loss_change"] == pytest.approx(-2 / 3, abs=1e-4)
    assert worse["flags"].startswith("val_contains 0.75 → 0.00 (paired"), "the flag ftx would have raised"
    qa.report(list(rows.values()), tmp_path / "grid")
    assert (tmp_path / "grid" / "results.csv").read_text().count("\n") == 3
    assert "regression" in capsys.readouterr().out


def test_a_cell_without_any_base_cell_is_one_line(tmp_path):
    d = tmp_path / "grid" / "sections"
    _run(d, qa.cell_name(1e-3, 1.0, 8), None, [1.0, 0.0], (3.0, 1.0), with_base=False)
    args = type("A", (), {"sets": ["sections"], "out": tmp_path / "grid"})()
    with pytest.raises(SystemExit, match="ran without the base and no cell of sections measured it"):
        qa.collect(args)


def test_missing_set_folder_is_one_line(tmp_path, capsys):
    assert qa.main(["--sets-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--sets", "commands"]) == 2
    assert "benchmarks/qa_sets.py" in capsys.readouterr().err
    assert qa.main(["--sets-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--sets", "nope"]) == 2
