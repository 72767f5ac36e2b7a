"""QLoRA on the real SmolLM2-135M on CPU: 4-bit NF4 base, LoRA trains, gradients stay exact after an
eval-mode forward (the AVX512-BF16 trap), and the adapter merges back with `ftx export`."""

from __future__ import annotations

import json

import pytest
import torch

from tests.engine_helpers import read_metrics, tiny_args


@pytest.mark.slow
def test_qlora_nf4_trains_smollm2_and_exports(ftx):
    # train.precision auto: bf16 compute where the CPU has it natively (AVX512-BF16/AMX), fp32 elsewhere; a
    # forced bf16 on a CPU without it is emulated, ~100× slower per matmul (this test took 694 s that way).
    args = tiny_args(ftx.cwd, "model=smollm2_135m", "quant=nf4", "train.max_steps=4", "train.batch_size=2",
                     "data.format.max_length=96", "eval.max_examples=8", "optimizer.lr=2e-3", "hydra.run.dir=run")
    r = ftx(*args, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    run = ftx.cwd / "run"
    m = read_metrics(run)
    assert m["train"]["steps"] == 4 and m["delta"]["val_loss"] < -0.05, m["delta"]
    assert "quant nf4: 210 Linear4bit layers" in (run / "train.log").read_text()  # 30 blocks × 7 linears
    e = ftx("export", str(run), "--out", "merged", timeout=600)
    assert e.returncode == 0, e.stderr[-3000:]
    assert "merged = base+adapter" in e.stdout
    report = json.loads((ftx.cwd / "merged" / "ftx_export.json").read_text())
    assert report["quant_during_training"] == "nf4" and report["max_abs_logit_diff"] < 1e-3


@pytest.mark.slow
def test_smollm2_4bit_lora_gradients_survive_an_eval_forward():
    from ftx.engine import lora as lora_mod
    from ftx.engine import model as model_mod
    from ftx.engine import quant as quant_mod
    from ftx.spec.lora import LoraConfig
    from ftx.spec.model import ModelConfig
    from ftx.spec.quant import QuantConfig

    cfg, qcfg = ModelConfig(), QuantConfig(mode="nf4")
    model = model_mod.load_model(cfg, None, quant_mod.bnb_config(qcfg, bf16=True), quant_mod.device_map(qcfg))
    model = quant_mod.prepare(model, qcfg, gradient_checkpointing=False)
    torch.manual_seed(0)
    model = lora_mod.wrap(model, LoraConfig(r=4, dropout=0.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    x = torch.randint(0, 4000, (1, 32), generator=torch.Generator().manual_seed(0))

    def grads():
        model.train()
        model.zero_grad()
        model(input_ids=x, labels=x).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    ref = grads()
    model.eval()
    with torch.no_grad():
        model(input_ids=x)
    after = grads()
    assert max(float((after[k] - ref[k]).abs().max()) for k in ref) == 0.0
