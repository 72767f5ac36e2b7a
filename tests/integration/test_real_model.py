"""The embedded default model end to end: GGUF → cached safetensors → LoRA → lower held-out loss."""

from __future__ import annotations

import json

import pytest

from ftx.engine.model import convert_gguf
from ftx.spec.model import ModelConfig


@pytest.mark.slow
def test_gguf_converts_once_and_loads_from_cache():
    first = convert_gguf(ModelConfig())
    assert (first / "model.safetensors").is_file() and (first / ".complete").is_file()
    mtime = (first / "model.safetensors").stat().st_mtime
    assert convert_gguf(ModelConfig()) == first
    assert (first / "model.safetensors").stat().st_mtime == mtime, "the cache must not be rebuilt"


@pytest.mark.slow
def test_short_demo_on_smollm2_lowers_heldout_loss(ftx):
    r = ftx("train", "train.epochs=1", "train.max_steps=12", "train.eval_steps=6", "eval.harness.tasks=[ftx_general_qa]",
            "hydra.run.dir=outputs/runs/real", timeout=2400)  # + 2x18 timed answers, + 2x80 lm-eval questions
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((ftx.cwd / "outputs/runs/real/metrics.json").read_text())
    assert m["params"]["total"] > 130e6, "not the real SmolLM2-135M"
    assert m["tuned"]["val_loss"] < m["base"]["val_loss"]
    for side in ("base", "tuned"):  # operational metrics on the real model, same prompts both sides
        assert m[side]["ops_latency_p99_s"] >= m[side]["ops_latency_p50_s"] > 0
        assert m[side]["ops_ttft_p50_s"] < m[side]["ops_latency_p50_s"]
    assert m["eval"]["ops"]["answers"] == 16 and "latency_p99_ratio" in m["eval"]["ops"]
    print(json.dumps({k: (m["base"][k], m["tuned"][k]) for k in m["tuned"] if k.startswith("ops_")}))
    # lm-evaluation-harness on the real model: the shipped local task, all 80 questions, base and tuned
    h = m["eval"]["harness"]["tasks"]["ftx_general_qa"]
    assert h["examples"] == 80 and h["metric"] == "acc" and h["delta"] == pytest.approx(h["tuned"] - h["base"])
    assert h["base"] > 0.5, "SmolLM2 picks the right answer of 4 far above chance (0.25)"
    assert m["delta"]["harness_ftx_general_qa_acc"] == pytest.approx(h["delta"])
    print(json.dumps({k: (m["base"][k], m["tuned"][k]) for k in m["tuned"] if k.startswith("harness_")}),
          m["eval"]["harness"]["seconds"])

    # GGUF: llama.cpp's converter, read back by transformers' GGUF loader, logits checked inside the export
    for quant, tolerance in (("f16", 1e-2), ("q8_0", 0.1)):
        e = ftx("export", "outputs/runs/real", "--format", "gguf", "--quant", quant, "--out", f"gguf-{quant}",
                timeout=2400)
        assert e.returncode == 0, e.stderr[-3000:]
        report = json.loads((ftx.cwd / f"gguf-{quant}" / "ftx_export.json").read_text())
        rt = report["round_trip"]
        assert rt["same_token_ids"] and rt["relative_logit_error"] <= tolerance and rt["top1_agreement"] > 0.9
        assert report["architecture"] == "LlamaForCausalLM" and (ftx.cwd / f"gguf-{quant}" / report["file"]).is_file()
        modelfile = (ftx.cwd / f"gguf-{quant}" / "Modelfile").read_text()
        assert "<|im_start|>{{ .Role }}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
        assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in modelfile  # the template's default
        print(quant, json.dumps({k: rt[k] for k in ("max_abs_logit_diff", "relative_logit_error", "top1_agreement")}))
