"""The `zero` group schema: DeepSpeed ZeRO partitioning (runtime: ftx/engine/zero.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ftx.errors import require
from ftx.spec.choices import check_choices


@dataclass
class ZeroConfig:
    """DeepSpeed ZeRO partitioning; stage null means plain DDP/single-process training."""

    stage: Optional[int] = None
    """null (DeepSpeed off) | 0 | 1 (optimizer states) | 2 (+ gradients) | 3 (+ parameters)."""
    offload_optimizer: bool = False
    """Keep optimizer states (and the step) on the CPU (ZeRO ≥1)."""
    offload_param: bool = False
    """Keep parameters on the CPU between uses (ZeRO-3 only)."""
    overlap_comm: bool = False
    """Overlap gradient reduction with the backward pass (GPU; no gain on CPU/gloo)."""
    contiguous_gradients: bool = True
    bucket_size: int = 50_000_000
    """Elements per all-reduce / reduce-scatter bucket (stage 1–2) and ZeRO-3 prefetch bucket."""

    def check(self) -> None:
        check_choices(self, "zero", None)
        require(self.stage in (None, 0, 1, 2, 3), "zero.stage", f"must be null, 0, 1, 2 or 3; got {self.stage}")
        require(not self.offload_param or self.stage == 3, "zero.offload_param",
                f"needs zero.stage=3 (got {self.stage})")
        require(not self.offload_optimizer or (self.stage or 0) >= 1, "zero.offload_optimizer",
                f"needs zero.stage >= 1 (got {self.stage})")
        require(self.bucket_size > 0, "zero.bucket_size", f"must be > 0, got {self.bucket_size}")

    @property
    def enabled(self) -> bool:
        return self.stage is not None
