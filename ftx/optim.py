"""The `optimizer` group: optimizer, learning-rate schedule and regularisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import require

OPTIMIZERS = ("adamw_torch", "adamw_bnb_8bit", "paged_adamw_8bit", "sgd")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")


@dataclass
class OptimizerConfig:
    """Optimizer, schedule and regularisation."""

    name: str = "adamw_torch"
    """adamw_torch | adamw_bnb_8bit | paged_adamw_8bit (bitsandbytes; GPU) | sgd."""
    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: str = "cosine"
    """cosine | linear | constant | constant_with_warmup."""
    warmup_ratio: float = 0.1
    """Fraction of the steps spent warming up."""
    max_grad_norm: float = 1.0
    llrd: Optional[float] = None
    """Layer-wise LR decay factor in (0, 1]: layer l of L gets lr·llrd^(L-1-l); null = off."""

    def check(self) -> None:
        require(self.name in OPTIMIZERS, "optimizer.name", f"must be one of {', '.join(OPTIMIZERS)}; got {self.name!r}")
        require(self.scheduler in SCHEDULERS, "optimizer.scheduler",
                f"must be one of {', '.join(SCHEDULERS)}; got {self.scheduler!r}")
        require(self.lr > 0, "optimizer.lr", f"must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "optimizer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0.0 <= self.warmup_ratio < 1.0, "optimizer.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(self.llrd is None or 0.0 < self.llrd <= 1.0, "optimizer.llrd", f"must be in (0, 1] or null, got {self.llrd}")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optimizer.betas",
                f"must be two numbers in [0, 1), got {list(self.betas)}")
