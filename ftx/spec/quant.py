"""The `quant` group schema: bitsandbytes quantisation of the frozen base (runtime: ftx/engine/quant.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ftx.spec.choices import EITHER, Choice, Precision, check_choices


class QuantMode(Choice):
    none = "none"
    int8 = "int8"
    nf4 = "nf4"
    fp4 = "fp4"


CHOICE_MESSAGES = {"quant.compute_dtype": EITHER}


@dataclass
class QuantConfig:
    """How to quantise the frozen base weights."""

    mode: QuantMode = QuantMode.none
    """none | int8 (LLM.int8) | nf4 (4-bit NormalFloat, QLoRA) | fp4."""
    double_quant: bool = True
    """Quantise the 4-bit quantisation constants too (saves ~0.4 bit/param)."""
    compute_dtype: Precision = Precision.auto
    """Dtype of the 4-bit matmuls: auto (the run's precision: bf16 when train.precision resolves to
    bf16, else fp32) | bf16 | fp32."""

    def check(self) -> None:
        check_choices(self, "quant", CHOICE_MESSAGES)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"
