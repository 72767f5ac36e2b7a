"""Mixout: unbiased, mixes toward the starting weights, right gradient, and with LoRA touches only the adapter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ftx.engine import mixout
from ftx.errors import ConfigError


def test_mixout_is_unbiased_and_mixes_toward_the_start():
    torch.manual_seed(0)
    w0, w = torch.randn(8, 8), torch.randn(8, 8)
    samples = torch.stack([mixout.mix(w, w0, 0.3) for _ in range(4000)])
    assert torch.allclose(samples.mean(0), w, atol=0.1)  # E[W̃] = W
    one = mixout.mix(w, w0, 0.3)
    kept, swapped = (one - (w - 0.3 * w0) / 0.7).abs() < 1e-5, (one - w0).abs() < 1e-5
    assert bool((kept | swapped).all()) and 0.15 < swapped.float().mean() < 0.45  # each element: one of the two


def test_training_forward_gradient_and_eval_forward():
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    w_start = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)  # now away from the start
    assert mixout.apply(lin, 0.5) == 1
    x = torch.randn(3, 6)
    lin.eval()
    assert torch.allclose(lin(x), x @ lin.weight.T + lin.bias)  # evaluation: the weights as trained
    lin.train()
    lin._mixout_start = w_start
    lin(x).sum().backward()
    g = lin.weight.grad  # (1 − M)/(1 − p) · x-sums: 0 where swapped, 2× elsewhere
    full = x.sum(0).expand(4, 6)
    assert bool(((g.abs() < 1e-6) | ((g - 2 * full).abs() < 1e-4)).all())
    with pytest.raises(ConfigError, match="optimizer.mixout"):
        mixout.apply(nn.Linear(2, 2), 1.0)


def test_with_lora_only_the_adapter_is_mixed_and_saved_keys_are_unchanged():
    from peft import LoraConfig, get_peft_model

    from ftx.engine.model import load_model
    from ftx.spec.model import ModelConfig

    model = get_peft_model(load_model(ModelConfig(source="tiny", dtype="fp32")),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    keys = set(model.state_dict())
    n = mixout.apply(model, 0.1)
    lora_linears = [m for name, m in model.named_modules() if name.split(".")[-2:-1] in (["lora_A"], ["lora_B"])]
    assert n == len(lora_linears) > 0 and all(hasattr(m, "_mixout_p") for m in lora_linears)
    assert all(float(m._mixout_start.abs().sum()) == 0 for name, m in model.named_modules()
               if ".lora_B." in name + "." and hasattr(m, "_mixout_start"))  # B starts at 0: the base model
    assert set(model.state_dict()) == keys
    model.train()
    out = model(input_ids=torch.tensor([[1, 2, 3, 4]]), labels=torch.tensor([[1, 2, 3, 4]]))
    out.loss.backward()
    assert all(p.grad is not None for n_, p in model.named_parameters() if p.requires_grad)
