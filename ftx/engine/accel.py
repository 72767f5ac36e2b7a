"""Speed options that depend on the machine: torch.compile, Liger kernels, fused AdamW, FlashAttention-2.

One rule for all of them: a GPU-only option on a machine without a CUDA GPU falls back to what runs there,
with one warning naming the key (so one config serves a laptop and a cluster); on a GPU, an option whose
package is missing is a one-line error naming the pip extra. What each buys: docs/training.md, "Speed".
"""

from __future__ import annotations

import importlib.util
import logging

from ftx.errors import RunError

log = logging.getLogger("ftx")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def attn_implementation(name: str) -> str:
    """model.attn_implementation as transformers gets it: flash_attention_2 needs a CUDA GPU and flash-attn
    (packed rows then run through its varlen kernel, no padding at all); without a GPU: sdpa."""
    if str(name) != "flash_attention_2":
        return str(name)
    if not _cuda():
        log.warning("model.attn_implementation=flash_attention_2 needs a CUDA GPU; none here, using sdpa "
                    "(packed rows keep per-example attention through the position ids)")
        return "sdpa"
    if not _installed("flash_attn"):
        raise RunError("model.attn_implementation=flash_attention_2: the flash-attn package is not installed "
                       "(pip install flash-attn --no-build-isolation), or use model.attn_implementation=sdpa")
    return "flash_attention_2"


def training_options(spec) -> dict:
    """TrainingArguments for train.compile, train.liger and optimizer.name=adamw_torch_fused."""
    t, out = spec.train, {}
    if t.compile:
        out.update(torch_compile=True, torch_compile_backend="inductor")
    if t.liger:
        if not _cuda():
            log.warning("train.liger=true: Liger's kernels are Triton kernels for CUDA GPUs; none here, "
                        "training without them")
        elif not _installed("liger_kernel"):
            raise RunError("train.liger=true: liger-kernel is not installed (pip install 'ftx[liger]'), "
                           "or set train.liger=false")
        else:
            out["use_liger_kernel"] = True
    return out
