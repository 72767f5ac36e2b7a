"""The `zero` group: DeepSpeed ZeRO configs for the HF Trainer (CPU with gloo, GPUs with NCCL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ftx.errors import require


@dataclass
class ZeroConfig:
    """DeepSpeed ZeRO partitioning; stage null means plain DDP/single-process training."""

    stage: Optional[int] = None
    """null (DeepSpeed off) | 0 | 1 | 2 | 3."""
    offload_optimizer: bool = False
    """Keep optimizer states (and the step) on the CPU (ZeRO ≥1)."""
    offload_param: bool = False
    """Keep parameters on the CPU between uses (ZeRO-3 only)."""
    overlap_comm: bool = False
    contiguous_gradients: bool = True
    torch_adam: bool = True
    """Use torch's Adam inside DeepSpeed instead of JIT-compiling fused/cpu Adam (minutes on CPU)."""

    def check(self) -> None:
        require(self.stage in (None, 0, 1, 2, 3), "zero.stage", f"must be null, 0, 1, 2 or 3; got {self.stage}")
        require(not self.offload_param or self.stage == 3, "zero.offload_param",
                f"needs zero.stage=3 (got {self.stage})")
        require(not self.offload_optimizer or (self.stage or 0) >= 1, "zero.offload_optimizer",
                f"needs zero.stage >= 1 (got {self.stage})")

    @property
    def enabled(self) -> bool:
        return self.stage is not None


def deepspeed_config(cfg: ZeroConfig, bf16: bool) -> Optional[dict]:
    """The dict TrainingArguments(deepspeed=…) takes; "auto" values are filled by the Trainer."""
    if not cfg.enabled:
        return None
    zero: dict = {"stage": cfg.stage, "overlap_comm": cfg.overlap_comm,
                  "contiguous_gradients": cfg.contiguous_gradients}
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if cfg.offload_param:
        zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    if cfg.stage == 3:
        zero.update({"stage3_gather_16bit_weights_on_model_save": True,
                     "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
                     "stage3_param_persistence_threshold": "auto"})
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "zero_optimization": zero,
        "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                   "weight_decay": "auto",
                                                   "torch_adam": cfg.torch_adam}},
        "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                                                           "warmup_num_steps": "auto", "total_num_steps": "auto"}},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def disable_op_compilation() -> None:
    """Stop DeepSpeed JIT-compiling its shared-memory comm op on CPU (4–7 minutes, not needed)."""
    try:
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    except Exception:  # deepspeed absent or its layout changed: nothing to disable
        pass
