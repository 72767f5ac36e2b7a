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
    r = ftx("train", "train.epochs=1", "train.max_steps=12", "train.eval_steps=6",
            "hydra.run.dir=outputs/runs/real", timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((ftx.cwd / "outputs/runs/real/metrics.json").read_text())
    assert m["params"]["total"] > 130e6, "not the real SmolLM2-135M"
    assert m["tuned"]["val_loss"] < m["base"]["val_loss"]
