"""The `quant` group: bitsandbytes quantisation of the frozen base model (QLoRA when paired with LoRA).

Works on CPU (bitsandbytes ≥0.50 ships CPU kernels; weights load with device_map="cpu") and GPU.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ftx.errors import ModelError
from ftx.spec.quant import QuantConfig
from ftx.precision import resolve_dtype

log = logging.getLogger(__name__)


def bnb_config(cfg: QuantConfig, bf16: bool = False):
    """The BitsAndBytesConfig for from_pretrained, or None."""
    if not cfg.enabled:
        return None
    from transformers import BitsAndBytesConfig

    compute = cfg.compute_dtype if cfg.compute_dtype != "auto" else ("bf16" if bf16 else "fp32")
    if cfg.mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.mode,
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=resolve_dtype(compute),
    )


def device_map(cfg: QuantConfig):
    """bitsandbytes places quantised weights at load time: pin them to the CPU when there is no GPU."""
    import torch

    if not cfg.enabled:
        return None
    # Under a launcher every rank loads onto its own GPU (current_device() is still 0 at this point).
    return "cpu" if not torch.cuda.is_available() else {"": int(os.environ.get("LOCAL_RANK", "0"))}


def check_model(cfg: QuantConfig, model_path: str, lora_method: str = "lora") -> None:
    """Fail in one line, before loading, when the model cannot take this quant mode."""
    if not cfg.enabled:
        return
    import torch

    if cfg.mode == "int8" and lora_method == "dora" and not torch.cuda.is_available():
        # bitsandbytes 0.50 CPU + PEFT 0.21: DoRA's weight-norm pass leaves Int8Params without its
        # scales, and the next eval-mode forward crashes inside bitsandbytes.
        raise ModelError("quant.mode=int8 cannot train lora.method=dora on CPU (bitsandbytes loses the "
                         "int8 scales after DoRA's first step); use quant=nf4 (QDoRA) or lora=lora")
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # not installed, or its native library failed to load
        raise ModelError(f"quant.mode={cfg.mode} needs bitsandbytes, which does not import here "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); use quant=none") from None
    config = Path(model_path) / "config.json"
    if config.is_file():
        existing = json.loads(config.read_text()).get("quantization_config")
        if existing:
            method = existing.get("quant_method", "unknown")
            raise ModelError(f"quant.mode={cfg.mode}: {model_path} is already quantised ({method}); "
                             "bitsandbytes can only quantise full-precision weights; use quant=none")


def prepare(model, cfg: QuantConfig, gradient_checkpointing: bool):
    """After loading a quantised model: guard the CPU 4-bit path, then PEFT's k-bit preparation."""
    import bitsandbytes as bnb
    from peft import prepare_model_for_kbit_training

    layer = bnb.nn.Linear4bit if cfg.mode in ("nf4", "fp4") else bnb.nn.Linear8bitLt
    n = sum(isinstance(m, layer) for m in model.modules())
    if n == 0:
        raise ModelError(f"quant.mode={cfg.mode}: no linear layer of {type(model).__name__} was quantised "
                         "(the architecture keeps its weights elsewhere); use quant=none")
    guard_4bit_cpu_gradients(model)
    log.info("quant %s: %d %s layers", cfg.mode, n, layer.__name__)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})


def guard_4bit_cpu_gradients(model) -> int:
    """Keep 4-bit layers off the AVX512-BF16 inference path, which has no backward.

    On CPUs with AVX512-BF16, any eval-mode forward of a bnb Linear4bit (base evaluation, generation)
    repacks its weights for a fast inference kernel; training afterwards silently runs through
    `gemv_4bit`, which registers no autograd, and LoRA gradients come out wrong (up to 95% off
    while the loss still falls). Turning the feature off per layer keeps the differentiable path;
    a layer already repacked is unpacked back. Returns how many layers were guarded.
    """
    try:
        import bitsandbytes as bnb
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
    except ImportError:
        return 0
    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            state = getattr(module.weight, "quant_state", None)
            if state is not None and getattr(state, "packing_format_for_cpu", False):
                module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                    module.weight.data, state)
            n += 1
    return n
