"""Precision rules, in one place: is bf16 native here, what `auto` resolves to, dtype names → torch.

Used by training (`train.precision`, `model.dtype`, `quant.compute_dtype`), evaluation and the
embedding scorer (`curation.relevance.embedding_precision`). torch is imported inside the functions.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from ftx.errors import ConfigError

log = logging.getLogger("ftx")


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True where bf16 matmuls are native (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # no /proc (macOS, Windows): ask torch's own CPU capability probes
        import torch

        cpu = getattr(torch, "cpu", None)
        return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(precision: str, key: str = "train.precision", gpu: bool | None = None) -> bool:
    """Resolve an `auto | bf16 | fp32` setting on this machine (auto: bf16 where the hardware runs it
    natively). `gpu=None` asks torch whether a GPU is there; the CPU-only embedding scorer passes False."""
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    if gpu:
        import torch

        native = torch.cuda.is_bf16_supported()
    else:
        native = cpu_supports_bf16()
    if precision == "auto":
        return native
    if precision == "bf16" and not native:
        if gpu:  # DeepSpeed and autocast would fail or silently fall back; say it up front
            raise ConfigError(f"{key}=bf16: this GPU has no bf16 support; use {key}=fp32")
        log.warning("%s=bf16 on a CPU without AVX512-BF16/AMX: bf16 is emulated and slow", key)
    return precision == "bf16"


def resolve_dtype(name: str):
    """A dtype name of the configs (auto | bf16 | fp32) as a torch dtype; auto: the machine's best."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]
