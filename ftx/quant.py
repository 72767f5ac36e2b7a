"""The `quant` group: bitsandbytes quantisation of the base model (QLoRA when paired with LoRA)."""

from __future__ import annotations

from dataclasses import dataclass

from ftx.errors import require


@dataclass
class QuantConfig:
    """How to quantise the frozen base weights."""

    mode: str = "none"
    """none | int8 | nf4 (4-bit NormalFloat, QLoRA) | fp4."""
    double_quant: bool = True
    """Quantise the 4-bit quantisation constants too (saves ~0.4 bit/param)."""
    compute_dtype: str = "bf16"
    """Dtype of the 4-bit matmuls: bf16 | fp32."""

    def check(self) -> None:
        require(self.mode in ("none", "int8", "nf4", "fp4"), "quant.mode",
                f"must be one of none, int8, nf4, fp4; got {self.mode!r}")
        require(self.compute_dtype in ("bf16", "fp32"), "quant.compute_dtype",
                f"must be bf16 or fp32; got {self.compute_dtype!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


def bnb_config(cfg: QuantConfig):
    """The BitsAndBytesConfig for from_pretrained, or None."""
    if not cfg.enabled:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if cfg.mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.mode,
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype={"bf16": torch.bfloat16, "fp32": torch.float32}[cfg.compute_dtype],
    )


def guard_4bit_cpu_gradients(model) -> int:
    """Keep 4-bit layers off the AVX512-BF16 inference path, which has no backward.

    On CPUs with AVX512-BF16, any eval-mode forward of a bnb Linear4bit repacks its weights, after
    which training silently runs through `gemv_4bit` and LoRA gradients come out wrong (up to 95%
    off while the loss still falls). Turning the feature off per layer restores exact gradients.
    Returns how many layers were guarded.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n
