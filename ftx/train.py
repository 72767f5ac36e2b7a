"""The `train` group and the task function Hydra calls: RunSpec → data → model → train → eval → record.

    ftx train [overrides]            # or: python -m ftx.train [overrides]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftx.errors import require

log = logging.getLogger("ftx")


@dataclass
class TrainConfig:
    """The training loop (HF Trainer)."""

    epochs: float = 3.0
    """Passes over the training mix (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: use epochs)."""
    batch_size: int = 4
    """Micro-batch size per device."""
    grad_accum: int = 1
    """Gradient accumulation steps (effective batch = batch_size × grad_accum × world size)."""
    precision: str = "auto"
    """auto (bf16 where native, else fp32) | bf16 | fp32."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~10–30% more time."""
    eval_steps: int = 0
    """Validate every N steps (0: once per epoch)."""
    save_steps: int = 0
    """Checkpoint every N steps (0: once per epoch)."""
    save_total_limit: int = 2
    """Checkpoints kept in the run dir (the newest; with early stopping also the best)."""
    logging_steps: int = 1
    seed: int = 42
    """Set before PEFT wraps the model: the same seed gives the same adapter init and data order."""
    threads: int = 1
    """torch intra-op threads (on a loaded 2-core box 1 beats 2; 0 = torch default)."""
    resume: str = "none"
    """none | auto (newest checkpoint in the run dir, error if none; give the run dir:
    hydra.run.dir=…) | if_present (auto, or a fresh start: for requeued jobs) | a checkpoint
    folder. Restores weights, optimizer, scheduler, RNG and data position."""
    early_stopping_patience: int = 0
    """Stop after N evaluations without validation-loss improvement (0: off)."""
    dataloader_workers: int = 0
    objective: str = "sft"
    """sft (loss on responses) | cpt (continued pre-training: raw text, every token, packed; ftx/cpt.py)."""
    cpt_general_share: float = 0.07
    """With objective=cpt: share of general text in the mix (sets data.mix.domain_ratio = 1 − share)."""
    init_adapter: Optional[str] = None
    """Start from a previous run's adapter (its run dir or adapter/ folder): CPT, then SFT on the same adapter."""
    price_per_device_hour: float = 0.0
    """For metrics.json cost/estimated_cost = device-hours × this (your currency; 0: not priced)."""

    def check(self) -> None:
        from ftx.cpt import check_objective

        check_objective(self)
        require(self.price_per_device_hour >= 0, "train.price_per_device_hour",
                f"must be >= 0, got {self.price_per_device_hour}")
        require(self.epochs > 0 or self.max_steps > 0, "train.epochs", "must be > 0 unless train.max_steps > 0")
        require(self.batch_size > 0, "train.batch_size", f"must be > 0, got {self.batch_size}")
        require(self.grad_accum > 0, "train.grad_accum", f"must be > 0, got {self.grad_accum}")
        require(self.precision in ("auto", "bf16", "fp32"), "train.precision",
                f"must be one of auto, bf16, fp32; got {self.precision!r}")
        require(self.threads >= 0, "train.threads", f"must be >= 0, got {self.threads}")
        require(self.eval_steps >= 0 and self.save_steps >= 0, "train.eval_steps",
                "eval_steps and save_steps must be >= 0")
        require(self.early_stopping_patience >= 0, "train.early_stopping_patience",
                f"must be >= 0, got {self.early_stopping_patience}")
        require(self.save_total_limit >= 1, "train.save_total_limit", f"must be >= 1, got {self.save_total_limit}")
        require(self.logging_steps >= 1, "train.logging_steps", f"must be >= 1, got {self.logging_steps}")
        require(self.dataloader_workers >= 0, "train.dataloader_workers", f"must be >= 0, got {self.dataloader_workers}")
        require(bool(self.resume), "train.resume", "must be none, auto, if_present or a checkpoint folder")
        if self.early_stopping_patience:
            # Early stopping restores the best checkpoint: the Trainer needs a checkpoint at every evaluation.
            require((self.eval_steps == 0) == (self.save_steps == 0), "train.save_steps",
                    f"={self.save_steps} with train.eval_steps={self.eval_steps}: early stopping needs both 0 "
                    "(per epoch) or both > 0")
            require(self.eval_steps == 0 or self.save_steps % self.eval_steps == 0, "train.save_steps",
                    f"={self.save_steps} must be a multiple of train.eval_steps={self.eval_steps} with early stopping")


def use_bf16(precision: str) -> bool:
    """Resolve train.precision on this machine (auto: bf16 where the hardware runs it natively)."""
    import torch

    from ftx.errors import ConfigError
    from ftx.model import cpu_supports_bf16

    gpu = torch.cuda.is_available()
    native = torch.cuda.is_bf16_supported() if gpu else cpu_supports_bf16()
    if precision == "auto":
        return native
    if precision == "bf16" and not native:
        if gpu:  # DeepSpeed and autocast would fail or silently fall back; say it up front
            raise ConfigError("train.precision=bf16: this GPU has no bf16 support; use train.precision=fp32")
        log.warning("train.precision=bf16 on a CPU without AVX512-BF16/AMX: bf16 is emulated and slow")
    return precision == "bf16"


def base_dtype(spec, bf16: bool) -> str:
    """model.dtype=auto follows the run: bf16 base weights for adapter training in bf16; fp32 for fp32
    runs and for full fine-tuning (fp32 master weights, bf16 matmuls under autocast)."""
    if spec.model.dtype != "auto":
        return spec.model.dtype
    return "bf16" if bf16 and spec.lora.method != "full" else "fp32"


def build_model(spec, path: str, bf16: bool):
    """The trainable model of a run: base (quantised if asked) → dropout → k-bit prep → seed → PEFT.

    The seed is set right before PEFT wraps the model, so the adapter init is reproducible; the 4-bit
    CPU gradient guard is in place before any forward pass (the base evaluation runs in eval mode).
    """
    from dataclasses import replace

    from transformers import set_seed

    from ftx import lora, model, optim, quant, zero

    quant.check_model(spec.quant, path, spec.lora.method)
    zero.forget_previous_run()
    m = model.load_model(replace(spec.model, dtype=base_dtype(spec, bf16)), path,
                         quant.bnb_config(spec.quant, bf16), device_map=quant.device_map(spec.quant))
    optim.apply_dropout(m, spec.optimizer.dropout)
    if spec.quant.enabled:
        m = quant.prepare(m, spec.quant, spec.train.gradient_checkpointing)
    set_seed(spec.train.seed)
    m = lora.wrap(m, spec.lora)
    if spec.train.init_adapter:
        from ftx.cpt import load_init_adapter

        load_init_adapter(m, spec.train.init_adapter)
    if spec.optimizer.mixout:
        from ftx import mixout

        log.info("mixout p=%g on %d weights", spec.optimizer.mixout, mixout.apply(m, spec.optimizer.mixout))
    return m


def apply_threads(n: int) -> None:
    """torch intra-op threads; OMP_NUM_THREADS too, or accelerate resets it under a launcher."""
    import torch

    if n:
        os.environ["OMP_NUM_THREADS"] = str(n)
        torch.set_num_threads(n)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _submitit_ranks() -> None:
    """A submitit job (Hydra's SLURM/local launcher) with several tasks: each task is one rank.
    Export the env:// variables torch, accelerate and DeepSpeed read, unless a launcher already did."""
    if "RANK" in os.environ or "SUBMITIT_EXECUTOR" not in os.environ:
        return
    import submitit
    from submitit.helpers import TorchDistributedEnvironment

    if submitit.JobEnvironment().num_tasks > 1:
        env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        log.info("submitit task → rank %d of %d (master %s:%d)", env.rank, env.world_size, env.master_addr,
                 env.master_port)


def run(cfg) -> float:
    """The task function: one validated run spec, executed end to end. Returns the objective."""
    from hydra.core.hydra_config import HydraConfig

    from ftx.spec import build_spec

    spec = build_spec(cfg)
    _submitit_ranks()
    if not is_main_process():  # only rank 0 writes into the run dir, logs included
        for h in [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]:
            logging.getLogger().removeHandler(h)
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.get("run_dir") or ".")
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    from ftx.pipeline import execute
    from ftx.runs import as_disk_full

    try:
        return execute(spec, cfg, run_dir, overrides)
    except Exception as e:  # a full disk while saving a checkpoint surfaces as a library's RuntimeError
        full = as_disk_full(e, run_dir.resolve())
        if full is None:
            raise
        raise full from None


def main() -> None:
    from ftx.cli import main as cli_main

    cli_main(["train", *os.sys.argv[1:]])


if __name__ == "__main__":
    main()
