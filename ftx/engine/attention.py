"""Packed rows without the block mask: SDPA one example at a time, the CPU (and sdpa-on-GPU) counterpart of
FlashAttention-2's varlen path.

transformers runs packed rows (position ids restarting at 0, no attention mask) through `sdpa` with a
block-diagonal causal mask of batch × length × length: the kernel computes every block of it, masked or not,
and takes no causal shortcut. Here each example of a row gets its own `scaled_dot_product_attention(...,
is_causal=True)` over its own positions: the same attention (tests/unit/test_attention.py checks outputs and
gradients against the masked path), without the cross-example blocks. Measured on SmolLM2 (4 × 256 packed demo
rows, fp32, 2 threads, whole training steps interleaved in one process: benchmarks/packing.py): 177 → 184
real tokens/s (docs/training.md, "Speed").

Used while ftx's SFT trainer trains packed rows with model.attn_implementation=sdpa (ftx/engine/trainer.py):
the trainer switches the model to `NAME` for `train()` and back afterwards, and passes the examples' bounds
as the FlashAttention kwargs `cu_seq_lens_q/k`. Any other call (padded rows, generation, a cache, softcapping,
a sliding window shorter than the longest example) goes to transformers' own sdpa with the mask
transformers built for it, so the switch changes nothing but the packed training forward. No heavy imports
at module level.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext

log = logging.getLogger("ftx")

NAME = "ftx_packed_sdpa"
"""The attention implementation registered with transformers (never saved: transformers keeps
`_attn_implementation` out of config.json)."""

BOUND_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")


def register() -> str:
    """Register `NAME` with transformers' attention and mask interfaces (idempotent); returns NAME."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the fallback path still gets its mask
    return NAME


@contextmanager
def per_example(model, allowed: bool = True):
    """Switch `model` (a PEFT wrapper or a transformers model) to `NAME` for the block, then back; yields
    whether it switched. It does for a model at `sdpa` whose forward passes keyword arguments on (the bounds
    travel that way) and that transformers lets switch (its attention dispatches through AttentionInterface);
    anything else keeps its attention and the block mask."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    before = getattr(getattr(base, "config", None), "_attn_implementation", None)
    forward = getattr(type(base), "forward", None)
    passes_kwargs = forward is not None and any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(forward).parameters.values())
    on = bool(allowed and before == "sdpa" and passes_kwargs and hasattr(base, "set_attn_implementation"))
    if on:
        try:
            base.set_attn_implementation(register())
        except (ValueError, TypeError, NotImplementedError) as e:  # a model transformers will not switch
            log.info("packed rows keep the block-diagonal mask: %s", str(e).splitlines()[0] if str(e) else e)
            on = False
    try:
        yield on
    finally:
        if on:
            base.set_attn_implementation(before)


def bounds(position_ids) -> dict:
    """The FlashAttention kwargs for packed rows: `cu_seq_lens_q/k`, the examples' start offsets in the
    flattened batch (every position id 0 starts one; every row starts with 0) plus the end, and the longest
    example. Rows whose position ids do not start at 0 are not packed rows: {} (the masked path). The offsets
    stay on the CPU (only `packed_sdpa` reads them, as Python ints: no device sync per layer on a GPU)."""
    import torch

    position_ids = position_ids.cpu()  # one copy per step: packed_sdpa reads the bounds in every layer
    if position_ids.dim() != 2 or not bool((position_ids[:, 0] == 0).all()):
        return {}
    flat = position_ids.reshape(-1)
    starts = torch.nonzero(flat == 0).flatten()
    cu = torch.cat([starts, starts.new_tensor([flat.numel()])]).to(torch.int32)
    longest = int((cu[1:] - cu[:-1]).max())
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
                **kwargs):
    """transformers' attention signature: (batch, heads, length, dim) query/key/value → ((batch, length,
    heads, dim) output, None)."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    batch, heads, length, dim = query.shape
    window = kwargs.get("sliding_window")
    if (cu is None or key.shape[2] != length or cu.numel() < 2 or int(cu[-1]) != batch * length
            or (window and kwargs.get("max_length_q", length) > window)  # a window no example outgrows: moot
            or kwargs.get("softcap") is not None
            or kwargs.get("position_bias") is not None or is_causal is False):
        rest = {k: v for k, v in kwargs.items() if k not in BOUND_KEYS}
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **rest)
    gqa = key.shape[1] != heads
    edges = cu.tolist()
    dtype = query.dtype
    # On the CPU, torch's SDPA kernels run a 16-bit example about 1.5x slower than the same example in fp32
    # (benchmarks/attention.py --dtype bfloat16: 24.7 vs 16.1 ms at 4 x 256, 50.9 vs 37.7 at 1 x 2048): each
    # example is computed in fp32 (autocast off, which would cast it back down) and the output cast to the
    # run's dtype. On a GPU the 16-bit kernels are the fast ones and stay.
    upcast = query.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16)
    if upcast:
        query, key, value = query.float(), key.float(), value.float()
    parts = []
    with torch.autocast("cpu", enabled=False) if upcast else nullcontext():
        for start, end in zip(edges[:-1], edges[1:]):
            row, lo = divmod(start, length)
            hi = end - row * length
            parts.append(F.scaled_dot_product_attention(
                query[row:row + 1, :, lo:hi], key[row:row + 1, :, lo:hi], value[row:row + 1, :, lo:hi],
                dropout_p=dropout, is_causal=True, scale=scaling, enable_gqa=gqa))
    out = torch.cat(parts, dim=2).to(dtype)  # (1, heads, batch·length, dim), the examples in row order
    return out.transpose(1, 2).reshape(batch, length, heads, dim), None
