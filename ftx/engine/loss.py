"""The loss without batch × seq × vocab logits: the output head a model lets ftx apply itself, and the weighted
cross-entropy computed from the final hidden states a chunk of positions at a time (training: ftx/engine/trainer.py;
held-out evaluation: ftx/eval/heldout.py). No heavy imports at module level."""

from __future__ import annotations

from functools import lru_cache


LOSS_CHUNK = 512
"""Positions per chunk of the chunked cross-entropy (set from train.loss_chunk; 0: the full-logits loss)."""

SCALED_LOGITS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")
"""Config fields of models that transform the logits after lm_head (Gemma 2/3, Cohere, Granite…): the chunked
loss would miss the transform, so they keep the full-logits loss."""


def loss_head(model, chunk: int):
    """The output projection the chunked loss applies itself, or None where it cannot: chunk 0, a model whose
    forward takes no `logits_to_keep`, one that rescales its logits after lm_head, or a head DeepSpeed ZeRO-3
    partitions (its gather hooks expect the module order of the engine's forward: the full loss there)."""
    import inspect

    if chunk <= 0:
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    cfg = getattr(base, "config", None)
    text = getattr(cfg, "text_config", None) or cfg
    if (head is None or not hasattr(head, "weight") or hasattr(head.weight, "ds_id")
            or "logits_to_keep" not in inspect.signature(base.forward).parameters
            or any(getattr(text, k, None) not in (None, 0, 1, 1.0) for k in SCALED_LOGITS)):
        return None
    return head


def keep_one_logit(model, device):
    """`logits_to_keep` for a forward whose logits go unused (the chunked loss reads the hidden states): one
    position, as an index tensor where the model takes one (transformers 5's `slice_logits_to_keep`), else 1.
    The int slices `hidden[:, -1:]`, a strided view that torch multiplies with the head as a batched matmul
    against a per-row copy of the head weight: on SmolLM2 205 ms of an 866 ms training forward, against 589 ms
    with the index (tests/unit/test_memory.py)."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return torch.zeros(1, dtype=torch.long, device=device) if _keeps_by_index(type(base)) else 1


@lru_cache(maxsize=None)
def _keeps_by_index(cls) -> bool:
    """Whether a model class's forward annotates `logits_to_keep` as taking a Tensor (read once per class: the
    training step asks every step)."""
    import inspect

    param = inspect.signature(cls.forward).parameters.get("logits_to_keep")
    return param is not None and "Tensor" in str(param.annotation)


def chunked_loss(head, hidden, targets, weights, chunk: int):
    """Σ w·CE / Σ w, computed `chunk` positions at a time from the final hidden states: only positions with a
    non-zero weight are projected onto the vocabulary, and each chunk's logits are recomputed in the backward
    pass (torch.utils.checkpoint) instead of kept, so the largest vocabulary-wide tensor is chunk × vocab —
    not batch × seq × vocab in fp32 plus its log-softmax and gradient. Equal to the full loss in value and
    gradient (tests/unit/test_memory.py)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    keep = (weights != 0) & (targets != -100)
    h, t, w = hidden[keep], targets[keep], weights[keep]

    def ce(h_chunk, t_chunk):
        return F.cross_entropy(head_logits(head, h_chunk), t_chunk, reduction="none")

    total = hidden.new_zeros((), dtype=torch.float32)
    last = ((h.size(0) - 1) // chunk) * chunk if h.size(0) else 0
    for i in range(0, h.size(0), chunk):
        # The last chunk is not recomputed: the backward pass consumes its logits first, so keeping them costs
        # no more than the chunk × vocab bound, and a batch of at most `chunk` answer positions (the usual
        # fine-tuning step) pays no recomputation at all.
        recompute = torch.is_grad_enabled() and i != last
        part = checkpoint(ce, h[i:i + chunk], t[i:i + chunk], use_reentrant=False) if recompute \
            else ce(h[i:i + chunk], t[i:i + chunk])
        total = total + (part * w[i:i + chunk]).sum()
    if h.size(0) == 0:
        total = total + hidden.sum() * 0.0  # keeps the graph (a batch without answer tokens)
    return total / weights.sum().clamp_min(1e-8)


def head_logits(head, hidden):
    """head(hidden) as fp32 logits, in the caller's autocast (else the head's own dtype)."""
    import torch

    if not torch.is_autocast_enabled(hidden.device.type):
        hidden = hidden.to(head.weight.dtype)
    return head(hidden).float()
