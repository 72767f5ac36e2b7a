"""The `optimizer` group schema: optimizer, schedule, regularisation (runtime: ftx/engine/optim.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import require
from ftx.spec.choices import Choice, check_choices


class OptimizerName(Choice):
    adamw_torch = "adamw_torch"
    adamw_torch_fused = "adamw_torch_fused"
    adamw_bnb_8bit = "adamw_bnb_8bit"
    paged_adamw_8bit = "paged_adamw_8bit"
    sgd = "sgd"


class Scheduler(Choice):
    cosine = "cosine"
    linear = "linear"
    constant = "constant"
    constant_with_warmup = "constant_with_warmup"


OPTIMIZERS = tuple(OptimizerName.values())
SCHEDULERS = tuple(Scheduler.values())



@dataclass
class OptimizerConfig:
    """Optimizer, schedule and regularisation."""

    name: OptimizerName = OptimizerName.adamw_torch
    """adamw_torch | adamw_torch_fused (torch's one-kernel AdamW: CUDA, and CPU since torch 2.4) |
    adamw_bnb_8bit (8-bit states, bitsandbytes) | paged_adamw_8bit (CUDA paging;
    on CPU it runs as adamw_bnb_8bit) | sgd."""
    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.0
    """Decoupled weight decay on weight matrices (never on biases, norms)."""
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: Scheduler = Scheduler.cosine
    """cosine | linear | constant | constant_with_warmup."""
    warmup_ratio: float = 0.1
    """Fraction of the steps spent warming up."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: off)."""
    llrd: Optional[float] = None
    """Layer-wise LR decay factor in (0, 1]: the final norm and head get lr, block l of L gets
    lr·llrd^(L-l), the embeddings lr·llrd^(L+1) (deeper = smaller steps); null = off."""
    dropout: Optional[float] = None
    """Dropout inside the base model (attention/hidden dropout the architecture has); null keeps
    the model's own. The adapter's dropout is lora.dropout."""
    mixout: float = 0.0
    """Mixout probability (ftx/engine/mixout.py): swap weight elements for their start-of-training values; a
    full-fine-tuning regulariser (with LoRA it acts on the adapter only). 0: off."""

    def check(self) -> None:
        check_choices(self, "optimizer", None)
        require(self.lr > 0, "optimizer.lr", f"must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "optimizer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0.0 <= self.warmup_ratio < 1.0, "optimizer.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(self.max_grad_norm >= 0, "optimizer.max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        require(self.llrd is None or 0.0 < self.llrd <= 1.0, "optimizer.llrd", f"must be in (0, 1] or null, got {self.llrd}")
        require(self.dropout is None or 0.0 <= self.dropout < 1.0, "optimizer.dropout",
                f"must be in [0, 1) or null, got {self.dropout}")
        require(0.0 <= self.mixout < 1.0, "optimizer.mixout", f"must be in [0, 1), got {self.mixout}")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optimizer.betas",
                f"must be two numbers in [0, 1), got {list(self.betas)}")
