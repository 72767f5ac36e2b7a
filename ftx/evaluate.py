"""The `eval` group: held-out loss and perplexity of the base and the tuned model."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from ftx.errors import require


@dataclass
class EvalConfig:
    """What is measured after (and before) training."""

    batch_size: int = 8
    """Batch size of the held-out loss passes."""
    base_vs_tuned: bool = True
    """Measure the base model on the same splits before training."""
    max_examples: int = 0
    """Cap on held-out examples per split (0: all)."""

    def check(self) -> None:
        require(self.batch_size > 0, "eval.batch_size", f"must be > 0, got {self.batch_size}")
        require(self.max_examples >= 0, "eval.max_examples", f"must be >= 0, got {self.max_examples}")


def autocast(bf16: bool):
    import torch

    if bf16:
        return torch.autocast("cpu" if not torch.cuda.is_available() else "cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def heldout_loss(model, examples: list[dict], collator, batch_size: int, bf16: bool) -> dict:
    """Token-weighted mean cross-entropy over response tokens (labels != -100), and perplexity."""
    import torch
    import torch.nn.functional as F

    if not examples:
        return {"loss": None, "ppl": None, "tokens": 0}
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad(), autocast(bf16):
        for i in range(0, len(examples), batch_size):
            batch = collator(examples[i:i + batch_size])
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits.float()
            labels = batch["labels"].to(device)[:, 1:]
            ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1),
                                 ignore_index=-100, reduction="sum")
            total += ce.item()
            count += int((labels != -100).sum())
    if was_training:
        model.train()
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "tokens": count}
