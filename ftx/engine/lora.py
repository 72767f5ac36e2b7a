"""The `lora` group: how the base model is made trainable (LoRA, DoRA, rsLoRA or full)."""

from __future__ import annotations

import logging

from ftx.errors import ConfigError
from ftx.spec.lora import LoraConfig

log = logging.getLogger(__name__)


def peft_config(cfg: LoraConfig):
    from peft import LoraConfig as PeftLoraConfig

    targets = cfg.target_modules
    target = "all-linear" if list(targets) == ["all-linear"] else list(targets)
    return PeftLoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.r,
        lora_alpha=cfg.effective_alpha,
        lora_dropout=cfg.dropout,
        target_modules=target,
        bias=cfg.bias,
        use_dora=cfg.method == "dora",
        use_rslora=cfg.method == "rslora",
        modules_to_save=list(cfg.modules_to_save) or None,
    )


def wrap(model, cfg: LoraConfig):
    """Wrap with PEFT (the caller has already set the seed, so adapter init is reproducible)."""
    if cfg.method == "full":
        for p in model.parameters():
            if p.is_floating_point():
                p.requires_grad_(True)
        return model
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config(cfg))
    except ValueError as e:  # e.g. target modules that the architecture does not have
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if type(m).__name__.startswith("Linear")})
        raise ConfigError(f"lora.target_modules={list(cfg.target_modules)}: {str(e).splitlines()[0]} "
                          f"(linear layers of this model: {', '.join(linear[:12])}, or all-linear)") from None


def count_parameters(model) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": trainable, "total": total,
            "trainable_pct": round(100.0 * trainable / max(total, 1), 3)}
