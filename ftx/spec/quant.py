"""The `quant` group schema: bitsandbytes quantisation of the frozen base (runtime: ftx/engine/quant.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ftx.errors import require


@dataclass
class QuantConfig:
    """How to quantise the frozen base weights."""

    mode: str = "none"
    """none | int8 (LLM.int8) | nf4 (4-bit NormalFloat, QLoRA) | fp4."""
    double_quant: bool = True
    """Quantise the 4-bit quantisation constants too (saves ~0.4 bit/param)."""
    compute_dtype: str = "auto"
    """Dtype of the 4-bit matmuls: auto (the run's precision: bf16 when train.precision resolves to
    bf16, else fp32) | bf16 | fp32."""

    def check(self) -> None:
        require(self.mode in ("none", "int8", "nf4", "fp4"), "quant.mode",
                f"must be one of none, int8, nf4, fp4; got {self.mode!r}")
        require(self.compute_dtype in ("auto", "bf16", "fp32"), "quant.compute_dtype",
                f"must be auto, bf16 or fp32; got {self.compute_dtype!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"
