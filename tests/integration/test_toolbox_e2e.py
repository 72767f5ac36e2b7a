"""Two-stage run on the tiny model: CPT on raw text (packed, general share, loss on every token), then SFT
starting from its adapter with Mixout on; both runs carry a consistent cost block and a data version."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from tests.helpers import write_jsonl

TOPICS = "cache cookie header proxy status redirect etag range socket token".split()


@pytest.mark.slow
def test_cpt_then_sft_on_the_same_adapter_with_cost_and_mixout(ftx):
    pages = write_jsonl(ftx.cwd / "pages.jsonl", [
        {"id": f"p{i}", "text": f"The {TOPICS[i % 10]} mechanism number {i} lets a server control item {i}. "
                                f"Clients send it with request {i} and caches keep it for {i} seconds."}
        for i in range(24)])
    qa = write_jsonl(ftx.cwd / "qa.jsonl", [
        {"id": f"q{i}", "prompt": f"What does {TOPICS[i % 10]} number {i} do?", "response": f"It controls item {i}."}
        for i in range(24)])
    general = write_jsonl(ftx.cwd / "gen.jsonl", [
        {"id": f"g{i}", "prompt": f"Name colour {i}.", "response": f"Colour {i} is blue."} for i in range(20)])
    common = ["experiment=tiny_smoke", "curation=none", f"data.sources.general.path={general}",
              "data.format.max_length=96", "train.price_per_device_hour=2.5"]
    r1 = ftx("train", *common, "train.objective=cpt", f"data.sources.http.path={pages}", "hydra.run.dir=run1")
    assert r1.returncode == 0, r1.stderr[-3000:]
    run1 = ftx.cwd / "run1"
    cfg = yaml.safe_load((run1 / "config.yaml").read_text())
    assert cfg["data"]["format"]["raw_text"] and cfg["data"]["format"]["packing"]
    assert cfg["data"]["mix"]["domain_ratio"] == pytest.approx(0.93)
    m1 = json.loads((run1 / "metrics.json").read_text())
    mix = m1["data"]["mix"]
    assert mix["domain_ratio_tokens"] == pytest.approx(0.93, abs=0.05)  # general share ≈ 7% of tokens
    assert m1["data"]["train"]["response_tokens"] == m1["data"]["train"]["tokens"]  # loss on every token

    c = m1["cost"]
    assert c["tokens"] == m1["train"]["tokens"] > 0 and c["devices"] == 1 and c["peak_memory_mb"] > 50
    assert c["device_hours"] == pytest.approx(m1["wall_seconds"] / 3600, rel=1e-3)
    assert c["estimated_cost"] == pytest.approx(c["device_hours"] * 2.5, rel=1e-3)
    assert c["val_gain"] == pytest.approx(m1["base"]["val_loss"] - m1["tuned"]["val_loss"], abs=1e-5)
    assert m1["data"]["version"]["id"] == json.loads((run1 / "data" / "version.json").read_text())["id"]

    r2 = ftx("train", *common, f"data.sources.http.path={qa}", f"train.init_adapter={run1}",
             "optimizer.mixout=0.1", "hydra.run.dir=run2")
    assert r2.returncode == 0, r2.stderr[-3000:]
    log = (ftx.cwd / "run2" / "train.log").read_text()
    assert "init adapter:" in log and "mixout p=0.1 on" in log
    w1 = load_file(str(run1 / "adapter" / "adapter_model.safetensors"))
    w2 = load_file(str(ftx.cwd / "run2" / "adapter" / "adapter_model.safetensors"))
    assert w1.keys() == w2.keys()  # same adapter, trained further (mixout left the saved keys alone)
    assert any(not (w1[k] == w2[k]).all() for k in w1)
    card = (run1 / "adapter" / "README.md").read_text()
    assert f"Data version **{m1['data']['version']['id']}**" in card
    cmp = ftx("compare", str(run1), str(ftx.cwd / "run2"))
    assert cmp.returncode == 0, cmp.stderr
    assert "cost/val_gain_per_device_hour" in cmp.stdout and "cost/device_hours" in cmp.stdout
    r3 = ftx("train", *common, f"data.sources.http.path={qa}", f"train.init_adapter={run1}", "lora.r=4",
             "hydra.run.dir=run3")
    errors = [ln for ln in r3.stderr.splitlines() if ln.startswith("ftx:")]
    assert r3.returncode == 2 and len(errors) == 1 and "shapes do not fit" in errors[0] and "size mismatch" in errors[0]
