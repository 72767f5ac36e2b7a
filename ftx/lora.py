"""The `lora` group: how the base model is made trainable (LoRA, DoRA, rsLoRA or full)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import ConfigError, require

log = logging.getLogger(__name__)


@dataclass
class LoraConfig:
    """Parameter-efficient adapter settings (PEFT)."""

    method: str = "lora"
    """lora | dora | rslora | full (no adapter: every weight trains)."""
    r: int = 8
    """Rank of the update matrices."""
    alpha: Optional[float] = None
    """Scaling numerator; null means 2·r."""
    dropout: float = 0.05
    """Dropout on the adapter input."""
    target_modules: List[str] = field(default_factory=lambda: ["all-linear"])
    """Module names to adapt, or ["all-linear"] for every linear layer but the output head."""
    bias: str = "none"
    """none | all | lora_only."""
    modules_to_save: List[str] = field(default_factory=list)
    """Extra modules trained in full and saved with the adapter (e.g. lm_head)."""

    def check(self) -> None:
        require(self.method in ("lora", "dora", "rslora", "full"), "lora.method",
                f"must be one of lora, dora, rslora, full; got {self.method!r}")
        require(self.r > 0, "lora.r", f"must be > 0, got {self.r}")
        require(self.alpha is None or self.alpha > 0, "lora.alpha", f"must be > 0 or null, got {self.alpha}")
        require(0.0 <= self.dropout < 1.0, "lora.dropout", f"must be in [0, 1), got {self.dropout}")
        require(bool(self.target_modules), "lora.target_modules", "must name at least one module or all-linear")
        require(self.bias in ("none", "all", "lora_only"), "lora.bias",
                f"must be one of none, all, lora_only; got {self.bias!r}")

    @property
    def effective_alpha(self) -> float:
        return float(self.alpha) if self.alpha is not None else 2.0 * self.r


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
