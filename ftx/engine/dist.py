"""Processes and threads: which rank this is, submitit tasks as ranks, torch's intra-op threads."""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Optional

log = logging.getLogger("ftx")


def cgroup_cpus(root: str = "/sys/fs/cgroup") -> Optional[float]:
    """CPUs the cgroup quota allows this process (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` /
    `cpu.cfs_period_us`), or None when there is no quota (or no cgroup file to read)."""
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def busy_cores(window: float = 0.3, samples: int = 3) -> float:
    """Cores other processes keep busy: the machine's busy CPU time (psutil, everything but idle and iowait)
    minus this process's own, divided by the window — the median of `samples` back-to-back windows, so a
    load that ends during the first window (the test run or build just finished) does not count, while a
    load that lasts through the sample does."""
    import statistics
    import time

    import psutil

    me = psutil.Process()

    def sample():
        t, p = psutil.cpu_times(), me.cpu_times()
        return t, p.user + p.system, time.monotonic()

    def busy(a, b):
        (t0, own0, w0), (t1, own1, w1) = a, b
        idle = lambda t: t.idle + getattr(t, "iowait", 0.0)
        total = (sum(t1) - idle(t1)) - (sum(t0) - idle(t0))
        # guest time is also counted in user on Linux: leave it out of the sum once
        total -= (getattr(t1, "guest", 0.0) - getattr(t0, "guest", 0.0)) + (getattr(t1, "guest_nice", 0.0)
                                                                           - getattr(t0, "guest_nice", 0.0))
        return max(0.0, (total - (own1 - own0)) / max(w1 - w0, 1e-6))

    points = [sample()]
    for _ in range(max(1, samples)):
        time.sleep(window)
        points.append(sample())
    return statistics.median(busy(a, b) for a, b in zip(points, points[1:]))


def auto_threads(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Physical cores this process may use, shared among the local ranks: the CPUs of its affinity mask,
    as physical cores (psutil's logical/physical ratio: one thread per core; hyper-threads of a core
    contend for the same FPUs), capped by the cgroup quota (rounded up: a 1.5-CPU quota still gets two
    threads) — or, with neither an affinity mask nor a quota narrower than the machine, minus the cores other
    processes keep busy (busy_cores: the median of three 0.3 s samples) — divided by LOCAL_WORLD_SIZE (torchrun, deepspeed and
    accelerate set it). At least 1."""
    import math

    import psutil

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    logical, physical = psutil.cpu_count(logical=True), psutil.cpu_count(logical=False)
    smt = max(1, logical // physical) if logical and physical else 1
    cores = max(1, cpus // smt)
    quota = cgroup_cpus(cgroup_root)  # CPU time, not cores: a 2-CPU quota runs two busy threads
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    elif cpus >= (os.cpu_count() or cpus):
        # The whole machine, no quota of our own: cores other processes keep busy right now are not
        # available. torch's OpenMP kernels wait at a barrier for their slowest thread, so one thread on a
        # busy core stalls them all (measured on a loaded 2-core box: 2 threads ~25× slower than 1 on the
        # tiny model). Measured, not read off the load average: that one remembers the last minute,
        # including processes that have ended and this run's own start-up.
        cores = min(cores, max(1, (cpus - round(busy_cores())) // smt))
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, cores // local)


def resolve_threads(value) -> int:
    """train.threads → a thread count: `auto` → auto_threads(); N → N; 0 → torch's default (returned as 0)."""
    return auto_threads() if str(value) == "auto" else int(value)


def apply_threads(value) -> int:
    """torch intra-op threads from train.threads (auto | N | 0 = torch's default); OMP_NUM_THREADS too, or
    accelerate resets it under a launcher. Returns the count torch now uses."""
    import torch

    n = resolve_threads(value)
    if n:
        os.environ["OMP_NUM_THREADS"] = str(n)
        torch.set_num_threads(n)
    return torch.get_num_threads()


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
