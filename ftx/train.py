"""The `train` group and the task function Hydra calls: RunSpec → data → model → train → eval → record.

    ftx train [overrides]            # or: python -m ftx.train [overrides]
"""

from __future__ import annotations

import logging
import os
import time
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
    eval_steps: int = 0
    """Validate every N steps (0: once per epoch)."""
    save_steps: int = 0
    """Checkpoint every N steps (0: once per epoch)."""
    save_total_limit: int = 2
    logging_steps: int = 1
    seed: int = 42
    """Set before PEFT wraps the model: the same seed gives the same adapter init and data order."""
    threads: int = 1
    """torch intra-op threads (on a loaded 2-core box 1 beats 2; 0 = torch default)."""
    resume: str = "none"
    """none | auto (newest checkpoint in the run dir) | a checkpoint path."""
    early_stopping_patience: int = 0
    """Stop after N evaluations without validation-loss improvement (0: off)."""
    dataloader_workers: int = 0

    def check(self) -> None:
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


def use_bf16(precision: str) -> bool:
    import torch

    from ftx.model import cpu_supports_bf16

    if precision == "auto":
        return torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_supports_bf16()
    return precision == "bf16"


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run(cfg) -> float:
    """The task function: one validated run spec, executed end to end. Returns the objective."""
    from hydra.core.hydra_config import HydraConfig

    from ftx.spec import build_spec

    spec = build_spec(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.get("run_dir") or ".")
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    from ftx.pipeline import execute

    return execute(spec, cfg, run_dir, overrides)


def main() -> None:
    from ftx.cli import main as cli_main

    cli_main(["train", *os.sys.argv[1:]])


if __name__ == "__main__":
    main()
