"""`ftx train experiment=tiny_smoke` end to end on the tiny model: the run directory tells all."""

from __future__ import annotations

import json

import yaml

from tests.helpers import only_run_dir


def test_tiny_run_writes_a_complete_run_dir(ftx):
    r = ftx("train", "experiment=tiny_smoke", "lora.r=4", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run_dir(ftx.cwd)
    for name in ("config.yaml", "overrides.txt", "manifest.json", "metrics.json", "metrics.jsonl",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "train.log",
                 "data/split_manifest.json", "data/ledger.json"):
        assert (run / name).is_file(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["lora"]["r"] == 4 and config["model"]["source"] == "tiny"
    assert (run / "overrides.txt").read_text().split() == ["experiment=tiny_smoke", "lora.r=4"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(manifest["spec_hash"]) == 16 and manifest["environment"]["packages"]["torch"]
    assert all(len(s["sha256"]) == 64 for s in manifest["data_sources"].values())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["objective"]["metric"] == "tuned/val_loss"
    assert metrics["objective"]["value"] == metrics["tuned"]["val_loss"]
    assert metrics["delta"]["val_loss"] == metrics["tuned"]["val_loss"] - metrics["base"]["val_loss"]
    steps = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s][:3] == [1, 2, 3]
    assert any("eval_loss" in s for s in steps)
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8
    assert "tuned" in r.stdout and "val_loss" in r.stdout


def test_same_seed_same_result(ftx):
    """Seeds are set before PEFT wraps the model: two runs agree to the last digit."""
    results = []
    for i in range(2):
        r = ftx("train", "experiment=tiny_smoke", f"hydra.run.dir=outputs/runs/x/run{i}", timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        results.append(json.loads((ftx.cwd / f"outputs/runs/x/run{i}/metrics.json").read_text()))
    assert results[0]["tuned"]["val_loss"] == results[1]["tuned"]["val_loss"]


def test_multirun_runs_each_job(ftx):
    r = ftx("train", "-m", "experiment=tiny_smoke", "lora.r=2,4", "train.max_steps=2", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted((ftx.cwd / "outputs" / "sweeps").glob("*/*/*/metrics.json"))
    assert len(runs) == 2
    ranks = sorted(json.loads(p.read_text())["params"]["trainable"] for p in runs)
    assert ranks[0] < ranks[1]


def test_records_with_answers_make_the_task_metric_judge_the_run(ftx, tmp_path):
    """Held-out records carrying `answers`: the objective resolves to tuned/val_contains (maximised), the
    checkpoint is chosen by eval_val_contains generated at every evaluation, the paired base-vs-tuned tests
    land in metrics.json and on the model card."""
    from tests.helpers import write_jsonl

    words = ["amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper"]
    write_jsonl(tmp_path / "qa.jsonl", [
        {"id": f"p{i}", "prompt": f"Which port does the {words[i % 10]} {words[(i // 10) % 10]} {i} daemon use?",
         "response": f"Port {2000 + i}.", "answers": [f"{2000 + i}", f"port {2000 + i}"]} for i in range(80)])
    r = ftx("train", "experiment=tiny_smoke", "curation=none", f"data.sources.http.path={tmp_path}/qa.jsonl",
            "train.keep_best=true", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run_dir(ftx.cwd)
    metrics = json.loads((run / "metrics.json").read_text())
    obj = metrics["objective"]
    assert (obj["metric"], obj["direction"]) == ("tuned/val_contains", "maximize")
    assert obj["raw"] == metrics["tuned"]["val_contains"]
    assert obj["value"] == obj["raw"] - 1e-6 * metrics["tuned"]["val_loss"]
    assert metrics["eval"]["primary"]["metric"] == "val_contains"
    assert metrics["select"]["metric"] == "eval_val_contains" and metrics["select"]["best_checkpoint"]
    steps = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "eval_val_contains" in s] == [s["step"] for s in steps if "eval_loss" in s]
    task = metrics["eval"]["task"]["metrics"]
    assert task["val_contains"]["test"] == "mcnemar" and task["val_contains"]["n"] > 0
    assert "Paired per-example tests" in (run / "adapter" / "README.md").read_text()
    assert "objective tuned/val_contains" in r.stdout and "(maximize" in r.stdout
