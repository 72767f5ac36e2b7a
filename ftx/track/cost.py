"""Cost accounting: what a run consumed (tokens, wall time, peak memory, device-hours, an estimated
price) and what it bought (validation-loss gain per device-hour and per million tokens).

metrics.json → `cost`:
  tokens              training tokens processed (sequence tokens × epochs actually run)
  tokens_per_s        tokens / time in trainer.train
  peak_memory_mb      peak resident memory of this process (CPU) or peak allocated CUDA memory
  devices             GPUs (or 1 machine on CPU) × processes, as the run used them
  device_hours        wall_seconds × devices / 3600

The timings themselves are recorded once, at the top of metrics.json: `train.seconds` (time in
trainer.train) and `wall_seconds` (the whole run: data, model, evals); `account` takes them as inputs.
  estimated_cost      device_hours × train.price_per_device_hour (0 when no price is set)
  val_gain            base val_loss − tuned val_loss (needs eval.base_vs_tuned)
  val_gain_per_device_hour, val_gain_per_mtok
                      the gain per unit of compute: when more data or steps stop paying off
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Optional


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)  # bytes on macOS, KiB on Linux


def devices() -> int:
    """One device per process (the torchrun/DeepSpeed convention; on CPU a process is the unit billed)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def account(tokens: int, train_seconds: float, wall_seconds: float, price_per_device_hour: float,
            metrics: Optional[dict] = None, n_devices: Optional[int] = None) -> dict:
    n = n_devices or devices()
    hours = wall_seconds * n / 3600.0
    out = {"tokens": int(tokens),
           "tokens_per_s": round(tokens / train_seconds, 1) if train_seconds > 0 else None,
           "peak_memory_mb": peak_memory_mb(), "devices": n, "device_hours": round(hours, 6),
           "price_per_device_hour": price_per_device_hour,
           "estimated_cost": round(hours * price_per_device_hour, 6)}
    base = (metrics or {}).get("base", {}).get("val_loss")
    tuned = (metrics or {}).get("tuned", {}).get("val_loss")
    if base is not None and tuned is not None:
        gain = base - tuned
        out["val_gain"] = round(gain, 6)
        out["val_gain_per_device_hour"] = round(gain / hours, 6) if hours > 0 else None
        out["val_gain_per_mtok"] = round(gain / (tokens / 1e6), 6) if tokens > 0 else None
    return out
