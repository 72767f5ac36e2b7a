"""QLoRA on CPU: the AVX512-BF16 trap is guarded (LoRA gradients compared, not the loss), bad quant input."""

from __future__ import annotations

import json

import pytest
import torch

from ftx.engine import lora as lora_mod
from ftx.engine import model as model_mod
from ftx.engine import quant as quant_mod
from ftx.errors import ModelError
from ftx.spec.lora import LoraConfig
from ftx.spec.model import ModelConfig
from ftx.spec.quant import QuantConfig

TINY = ModelConfig(name="tiny-llama", source="tiny", dtype="fp32")


def _qlora(guard: bool, mode: str = "nf4"):
    """The pipeline's order: load quantised → (guard) + k-bit prep → seed → LoRA with non-zero B."""
    cfg = QuantConfig(mode=mode)
    path = model_mod.resolve_model_path(TINY)
    model = model_mod.load_model(TINY, path, quant_mod.bnb_config(cfg, bf16=True), quant_mod.device_map(cfg))
    if guard:
        model = quant_mod.prepare(model, cfg, gradient_checkpointing=False)
    else:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    torch.manual_seed(0)
    model = lora_mod.wrap(model, LoraConfig(r=4, dropout=0.0))
    for name, p in model.named_parameters():  # B starts at zero: give it values so every grad is live
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _grads(model, eval_first: bool) -> dict:
    x = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    if eval_first:  # what the base evaluation before training does
        model.eval()
        with torch.no_grad():
            model(input_ids=x)
    model.train()
    model(input_ids=x, labels=x).loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _max_rel_err(g: dict, ref: dict) -> float:
    assert g.keys() == ref.keys() and ref
    return max(float((g[k] - ref[k]).norm() / ref[k].norm().clamp_min(1e-12)) for k in ref)


def test_guarded_4bit_lora_gradients_equal_reference_after_eval_forward():
    ref = _grads(_qlora(guard=True), eval_first=False)
    after_eval = _grads(_qlora(guard=True), eval_first=True)
    assert _max_rel_err(after_eval, ref) == 0.0


@pytest.mark.skipif(not __import__("bitsandbytes.functional").functional.has_avx512bf16(),
                    reason="negative control: the trap only exists on CPUs with AVX512-BF16")
def test_unguarded_4bit_gradients_are_corrupted_by_an_eval_forward_on_this_cpu():
    """Shows the comparison above can fail: without the guard the same sequence gives wrong gradients."""
    ref = _grads(_qlora(guard=True), eval_first=False)
    corrupted = _grads(_qlora(guard=False), eval_first=True)
    assert _max_rel_err(corrupted, ref) > 0.05


def test_guard_also_repairs_a_layer_already_repacked():
    ref = _grads(_qlora(guard=True), eval_first=False)
    model = _qlora(guard=False)
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.randint(0, model.config.vocab_size, (1, 8)))
    assert quant_mod.guard_4bit_cpu_gradients(model) > 0
    assert _max_rel_err(_grads(model, eval_first=False), ref) < 0.05


def test_int8_eval_forward_leaves_gradients_exact():
    ref = _grads(_qlora(guard=True, mode="int8"), eval_first=False)
    assert _max_rel_err(_grads(_qlora(guard=True, mode="int8"), eval_first=True), ref) == 0.0


def test_quant_compute_dtype_follows_precision():
    assert quant_mod.bnb_config(QuantConfig(mode="nf4"), bf16=True).bnb_4bit_compute_dtype == torch.bfloat16
    assert quant_mod.bnb_config(QuantConfig(mode="nf4"), bf16=False).bnb_4bit_compute_dtype == torch.float32
    fixed = quant_mod.bnb_config(QuantConfig(mode="nf4", compute_dtype="bf16"), bf16=False)
    assert fixed.bnb_4bit_compute_dtype == torch.bfloat16 and fixed.bnb_4bit_use_double_quant
    assert quant_mod.bnb_config(QuantConfig(mode="int8")).load_in_8bit
    assert quant_mod.bnb_config(QuantConfig(mode="none")) is None


def test_already_quantised_model_is_refused_in_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama",
                                                      "quantization_config": {"quant_method": "gptq"}}))
    with pytest.raises(ModelError) as e:
        quant_mod.check_model(QuantConfig(mode="nf4"), str(tmp_path))
    assert "quant.mode=nf4" in str(e.value) and "already quantised (gptq)" in str(e.value)
    quant_mod.check_model(QuantConfig(mode="none"), str(tmp_path))  # no quantisation asked: fine


def test_int8_dora_is_refused_on_cpu(tmp_path):
    with pytest.raises(ModelError, match="quant.mode=int8 cannot train lora.method=dora"):
        quant_mod.check_model(QuantConfig(mode="int8"), str(tmp_path), "dora")
