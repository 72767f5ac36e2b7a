"""The `lora` group schema: how the base model is made trainable (runtime: ftx/engine/lora.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import require
from ftx.spec.choices import Choice, check_choices


class LoraMethod(Choice):
    lora = "lora"
    dora = "dora"
    rslora = "rslora"
    full = "full"


class LoraBias(Choice):
    none = "none"
    all = "all"
    lora_only = "lora_only"


@dataclass
class LoraConfig:
    """Parameter-efficient adapter settings (PEFT)."""

    method: LoraMethod = LoraMethod.lora
    """lora | dora | rslora | full (no adapter: every weight trains)."""
    r: int = 8
    """Rank of the update matrices."""
    alpha: Optional[float] = None
    """Scaling numerator; null means 2·r."""
    dropout: float = 0.0
    """Dropout on the adapter input (PEFT's, torchtune's and LLaMA-Factory's default 0). Off by default: on
    CPUs without MKL's fast path (AMD) its Bernoulli masks took 15% of a SmolLM2 training step, and on the
    demo 0.05 and 0 ended at the same held-out loss and golden-set score (docs/training.md, "Speed")."""
    target_modules: List[str] = field(default_factory=lambda: ["all-linear"])
    """Module names to adapt, or ["all-linear"] for every linear layer but the output head."""
    bias: LoraBias = LoraBias.none
    """none | all | lora_only."""
    modules_to_save: List[str] = field(default_factory=list)
    """Extra modules trained in full and saved with the adapter (e.g. lm_head)."""

    def check(self) -> None:
        check_choices(self, "lora", None)
        require(self.r > 0, "lora.r", f"must be > 0, got {self.r}")
        require(self.alpha is None or self.alpha > 0, "lora.alpha", f"must be > 0 or null, got {self.alpha}")
        require(0.0 <= self.dropout < 1.0, "lora.dropout", f"must be in [0, 1), got {self.dropout}")
        require(bool(self.target_modules), "lora.target_modules", "must name at least one module or all-linear")

    @property
    def effective_alpha(self) -> float:
        return float(self.alpha) if self.alpha is not None else 2.0 * self.r
