"""The trainable model of a run: load the base → quantise → seed → wrap (PEFT) → optional init adapter.

The seed is set right before PEFT wraps the model, so the adapter init is reproducible.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from ftx.engine import lora, model, optim, quant, zero
from ftx.errors import ConfigError, ModelError

log = logging.getLogger("ftx")


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
    from transformers import set_seed

    quant.check_model(spec.quant, path, spec.lora.method)
    zero.forget_previous_run()
    optim.forget_previous_run()
    m = model.load_model(replace(spec.model, dtype=base_dtype(spec, bf16)), path,
                         quant.bnb_config(spec.quant, bf16), device_map=quant.device_map(spec.quant))
    optim.apply_dropout(m, spec.optimizer.dropout)
    if spec.quant.enabled:
        m = quant.prepare(m, spec.quant, spec.train.gradient_checkpointing is True)  # auto: the Trainer, once planned
    set_seed(spec.train.seed)
    m = lora.wrap(m, spec.lora)
    if spec.train.init_adapter:
        load_init_adapter(m, spec.train.init_adapter)
    if spec.optimizer.mixout:
        from ftx.engine import mixout

        log.info("mixout p=%g on %d weights", spec.optimizer.mixout, mixout.apply(m, spec.optimizer.mixout))
    return m


def load_init_adapter(model, path: str) -> int:
    """Load a previous run's adapter weights into the freshly wrapped PEFT model; returns tensors loaded."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    if p.is_dir() and (p / "adapter" / "adapter_model.safetensors").is_file():
        p = p / "adapter"  # a run directory
    weights = p / "adapter_model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"train.init_adapter={path}: no adapter_model.safetensors there "
                          "(give a run's adapter/ folder or the run directory)")
    if not hasattr(model, "peft_config"):
        raise ConfigError("train.init_adapter needs an adapter method (lora.method=lora|dora|rslora), not full")
    saved = json.loads((p / "adapter_config.json").read_text()) if (p / "adapter_config.json").is_file() else {}
    ours = model.peft_config["default"]
    state = load_file(str(weights))
    try:
        result = set_peft_model_state_dict(model, state)
    except RuntimeError as e:
        raise ModelError(f"train.init_adapter={path}: its shapes do not fit this run's adapter "
                         f"(saved r={saved.get('r')}, targets {saved.get('target_modules')}; this run r={ours.r}, "
                         f"targets {sorted(ours.target_modules) if ours.target_modules else None}): "
                         f"{next((ln.strip() for ln in str(e).splitlines() if 'size mismatch' in ln), '')[:200]}") from None
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ModelError(f"train.init_adapter={path}: {len(unexpected)} saved tensors have no place in this run's "
                         f"adapter (e.g. {unexpected[0]}); use the same lora.target_modules as the first stage")
    log.info("init adapter: %d tensors from %s", len(state), p)
    return len(state)
