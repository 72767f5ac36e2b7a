"""Processes and threads: which rank this is, submitit tasks as ranks, torch's intra-op threads."""

from __future__ import annotations

import atexit
import logging
import os

log = logging.getLogger("ftx")


def apply_threads(n: int) -> None:
    """torch intra-op threads; OMP_NUM_THREADS too, or accelerate resets it under a launcher."""
    import torch

    if n:
        os.environ["OMP_NUM_THREADS"] = str(n)
        torch.set_num_threads(n)


_EXIT = {"registered": False, "clean": False}


def teardown_at_exit(clean: bool) -> None:
    """End torch.distributed when the process exits: a gloo process group left alive aborts the process
    at exit ("terminate called without an active exception", SIGABRT) on whichever rank exits while its
    threads still run. At exit, not at the end of each run: a multirun's next trial reuses the group.
    After a clean last run the ranks first meet at a barrier, so no rank leaves while another still talks
    to it; after a failure they don't wait for each other."""
    _EXIT["clean"] = clean
    if not _EXIT["registered"]:
        atexit.register(_teardown)
        _EXIT["registered"] = True


def _teardown() -> None:
    import sys

    if "torch" not in sys.modules:
        return
    import torch.distributed as td

    if not (td.is_available() and td.is_initialized()):
        return
    try:
        if _EXIT["clean"]:
            td.barrier()
    finally:
        td.destroy_process_group()


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
