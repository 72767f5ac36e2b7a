"""The `optimizer` group: optimizer, learning-rate schedule and regularisation.

The HF Trainer builds the optimizer and scheduler from these settings (also under DeepSpeed, whose
config names neither). Two things are ours: layer-wise learning-rate decay (LLRD), handed to the
Trainer as explicit parameter groups, and model dropout, set on the loaded model.
"""

from __future__ import annotations

import logging
import re
from typing import Optional

from ftx.spec.optimizer import OptimizerConfig

log = logging.getLogger(__name__)

# Config keys architectures use for dropout probabilities (Llama: attention_dropout only).
DROPOUT_KEYS = ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout")
_LAYER = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")
_EMBED = ("embed_tokens", "wte", "wpe", "word_embeddings", "embed_positions")


def layer_of(name: str, num_layers: int) -> int:
    """Depth of a parameter: -1 for embeddings, its block index, num_layers for what follows."""
    m = _LAYER.search(name)
    if m:
        return int(m.group(1))
    if any(e in name for e in _EMBED):
        return -1
    return num_layers


def param_groups(model, cfg: OptimizerConfig) -> list[dict]:
    """Trainable parameters grouped by (depth, decay) with per-group lr and weight decay."""
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(get_parameter_names(model, ALL_LAYERNORM_LAYERS,
                                    ["bias", "layernorm", "rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]))
    config = getattr(model, "config", None)
    num_layers = getattr(config, "num_hidden_layers", None) or 0
    factor = cfg.llrd if cfg.llrd is not None else 1.0
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = min(layer_of(name, num_layers), num_layers)
        wd = cfg.weight_decay if name in decay else 0.0
        key = (depth, wd)
        if key not in groups:
            groups[key] = {"params": [], "lr": cfg.lr * factor ** (num_layers - depth), "weight_decay": wd,
                           "names": []}
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def trainer_kwargs(model, cfg: OptimizerConfig, args) -> dict:
    """Extra Trainer(...) arguments: explicit LLRD parameter groups when optimizer.llrd is set."""
    if cfg.name == "paged_adamw_8bit":
        import torch

        if not torch.cuda.is_available():
            log.warning("optimizer.name=paged_adamw_8bit: paging needs CUDA; on CPU bitsandbytes runs it "
                        "as adamw_bnb_8bit (8-bit states, no paging)")
    if cfg.llrd is None:
        return {}
    from transformers import Trainer

    opt_cls, opt_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    groups = [{k: v for k, v in g.items() if k != "names"} for g in param_groups(model, cfg)]
    log.info("LLRD %.3f: %d parameter groups, lr %.2e … %.2e", cfg.llrd, len(groups),
             min(g["lr"] for g in groups), max(g["lr"] for g in groups))
    return {"optimizer_cls_and_kwargs": (opt_cls, {**opt_kwargs, "params": groups})}


def apply_dropout(model, p: Optional[float]) -> int:
    """Set the model's dropout probabilities to p (config keys and live modules); returns how many."""
    if p is None:
        return 0
    import torch

    n = 0
    config = getattr(model, "config", None)
    for key in DROPOUT_KEYS:
        if config is not None and isinstance(getattr(config, key, None), (int, float)):
            setattr(config, key, p)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
            n += 1
        elif isinstance(getattr(module, "attention_dropout", None), (int, float)):
            # Llama-style attention reads a float attribute copied from the config at init.
            module.attention_dropout = p
            n += 1
    return n


def forget_previous_run() -> None:
    """transformers' Trainer registers 32-bit overrides for embedding weights in bitsandbytes' process-wide
    GlobalOptimManager, keyed by id(param). In the next job of an in-process multirun a new parameter can
    reuse a freed id and silently get the previous run's override (32-bit states instead of 8-bit). Clear
    the manager before a run builds its optimizer (a no-op without bitsandbytes)."""
    try:
        from bitsandbytes.optim import GlobalOptimManager
    except Exception:  # noqa: BLE001 -- not installed, or its CPU library failed to load: nothing to clear
        return
    GlobalOptimManager.get_instance().initialize()
