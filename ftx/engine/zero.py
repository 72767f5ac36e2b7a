"""The `zero` group: DeepSpeed ZeRO configs for the HF Trainer (CPU with gloo, GPUs with NCCL).

The generated config names no optimizer and no scheduler: the HF Trainer then builds both from the
`optimizer` group (AdamW, 8-bit AdamW, LLRD groups, cosine/linear warmup) and DeepSpeed wraps them.
That keeps one code path for every zero option and compiles no C++ op (DeepSpeed's own Adam is a
JIT-compiled extension: 4–7 minutes per op on a CPU box, and a CUDA toolchain on GPU hosts).
"""

from __future__ import annotations

import os
from typing import Optional

from ftx.spec.zero import ZeroConfig


def deepspeed_config(cfg: ZeroConfig, bf16: bool) -> Optional[dict]:
    """The dict TrainingArguments(deepspeed=…) takes; "auto" values are filled by the Trainer."""
    if not cfg.enabled:
        return None
    zero: dict = {"stage": cfg.stage, "overlap_comm": cfg.overlap_comm,
                  "contiguous_gradients": cfg.contiguous_gradients}
    if cfg.stage in (1, 2):
        zero.update(reduce_bucket_size=cfg.bucket_size, allgather_bucket_size=cfg.bucket_size)
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if cfg.offload_param:
        zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    if cfg.stage == 3:
        # Gather full weights when saving, so the adapter/model on disk has its real shapes.
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
        # The HF/torch optimizer runs on the offloaded states; DeepSpeed would otherwise insist on its
        # compiled CPU Adam.
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def forget_previous_run() -> None:
    """A ZeRO-3 run leaves transformers' global DeepSpeed config set; the next job of a sweep would
    then load its model through zero.Init partitioning. Clear it before loading a model."""
    try:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config
    except ImportError:
        return
    unset_hf_deepspeed_config()


def prepare_deepspeed(cfg: ZeroConfig) -> None:
    """Per rank, before TrainingArguments starts DeepSpeed: no op compilation, and a one-process
    rendezvous when no launcher set one up (`ftx train zero=zero2_offload` on one GPU or CPU)."""
    if not cfg.enabled:
        return
    disable_op_compilation()
    if "WORLD_SIZE" not in os.environ:
        import socket

        with socket.socket() as s:  # a free port for the single-process group
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def disable_op_compilation() -> None:
    """Stop DeepSpeed JIT-compiling ops this run never needs (4–7 minutes each on a CPU box).

    Must run in every rank before DeepSpeed initialises its communication backend: on CPU it would
    otherwise build `deepspeed_shm_comm` at the first distributed start. GPU hosts are untouched.
    """
    import torch

    if torch.cuda.is_available():
        return
    try:
        import deepspeed.ops
    except Exception:  # deepspeed absent: nothing to disable (zero=none never imports it)
        return
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
