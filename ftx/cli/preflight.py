"""Checks every command runs before any work starts: the folders a run writes into (model cache,
curation cache) must be creatable and writable, or the command ends with one line naming the key."""

from __future__ import annotations

import os

from ftx.engine.model import cache_root
from ftx.runs import usable_dir
from ftx.spec.model import ModelConfig


def check_paths(spec, model: bool = True) -> None:
    """One ConfigError line for a cache folder that cannot be created (a file in the way, no permission).

    `model`: the command loads a model, so the model cache (FTX_CACHE, model.cache_dir) must be usable."""
    if model:
        from_env = "FTX_CACHE" in os.environ and spec.model.cache_dir == ModelConfig.cache_dir
        usable_dir(cache_root(spec.model), "FTX_CACHE" if from_env else "model.cache_dir")
    if spec.curation.enabled and spec.curation.cache_dir:
        usable_dir(spec.curation.cache_dir, "curation.cache_dir")
