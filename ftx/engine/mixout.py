"""Mixout (Lee, Cho & Kang, ICLR 2020): a regulariser that pulls fine-tuned weights toward where they
started.

In training, every element of a weight is swapped for its starting value with probability p, and
the result is rescaled so its expectation is the current weight:

    W̃ = ((1 − M) ⊙ W + M ⊙ W₀ − p · W₀) / (1 − p),   M ~ Bernoulli(p) elementwise

(dropout is the special case W₀ = 0). Evaluation uses W itself. The paper's setting is full
fine-tuning, with W₀ the pretrained weights: it keeps a large model close to them on small data.

With LoRA the base weights are frozen, so there is nothing to mix there; what trains is the adapter
(A, B) and its starting point is (A₀, B₀ = 0) — the pretrained model. Mixout on the adapter swaps
elements of B back to 0 (those parts of ΔW = B·A vanish for that step: the pretrained weights) and
elements of A back to their initialisation: a DropConnect-style regulariser on the update, not on
the model. It adds one copy of every mixed weight (for LoRA, of the adapter only).
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn
from ftx.errors import ConfigError


def mix(w: torch.Tensor, start: torch.Tensor, p: float) -> torch.Tensor:
    """One mixout sample of `w` (gradient (1 − M)/(1 − p), as in the paper)."""
    mask = torch.rand_like(w, dtype=torch.float32) < p
    start = start.to(device=w.device, dtype=w.dtype)
    return (torch.where(mask, start, w) - p * start) / (1.0 - p)


def _forward(self, x: torch.Tensor) -> torch.Tensor:
    w = mix(self.weight, self._mixout_start, self._mixout_p) if self.training else self.weight
    return F.linear(x, w, self.bias)


def apply(model: nn.Module, p: float) -> int:
    """Mixout on the weight of every trainable nn.Linear (after PEFT wraps the model, so the starting
    point is the adapter's init); returns how many. The start copy is a plain attribute, not a
    buffer, so state dicts, checkpoints and saved adapters are unchanged."""
    if not p:
        return 0
    if not 0.0 < p < 1.0:
        raise ConfigError(f"optimizer.mixout must be in [0, 1), got {p}")
    n = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.requires_grad and not hasattr(module, "_mixout_p"):
            module._mixout_start = module.weight.detach().clone()
            module._mixout_p = p
            module.forward = types.MethodType(_forward, module)
            n += 1
    return n
