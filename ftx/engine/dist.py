"""Processes and threads: which rank this is, submitit tasks as ranks, torch's intra-op threads."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("ftx")


def apply_threads(n: int) -> None:
    """torch intra-op threads; OMP_NUM_THREADS too, or accelerate resets it under a launcher."""
    import torch

    if n:
        os.environ["OMP_NUM_THREADS"] = str(n)
        torch.set_num_threads(n)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def submitit_ranks() -> None:
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
