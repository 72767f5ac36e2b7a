"""The `optimizer` group: optimizer, learning-rate schedule and regularisation.

The HF Trainer builds the optimizer and scheduler from these settings (also under DeepSpeed, whose
config names neither). Two things are ours: layer-wise learning-rate decay (LLRD), handed to the
Trainer as explicit parameter groups, and model dropout, set on the loaded model.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import require

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw_torch", "adamw_bnb_8bit", "paged_adamw_8bit", "sgd")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
# Config keys architectures use for dropout probabilities (Llama: attention_dropout only).
DROPOUT_KEYS = ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout")
_LAYER = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")
_EMBED = ("embed_tokens", "wte", "wpe", "word_embeddings", "embed_positions")


@dataclass
class OptimizerConfig:
    """Optimizer, schedule and regularisation."""

    name: str = "adamw_torch"
    """adamw_torch | adamw_bnb_8bit (8-bit states, bitsandbytes) | paged_adamw_8bit (CUDA paging;
    on CPU it runs as adamw_bnb_8bit) | sgd."""
    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.0
    """Decoupled weight decay on weight matrices (never on biases, norms)."""
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: str = "cosine"
    """cosine | linear | constant | constant_with_warmup."""
    warmup_ratio: float = 0.1
    """Fraction of the steps spent warming up."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: off)."""
    llrd: Optional[float] = None
    """Layer-wise LR decay factor in (0, 1]: the final norm and head get lr, block l of L gets
    lr·llrd^(L-l), the embeddings lr·llrd^(L+1) (deeper = smaller steps); null = off."""
    dropout: Optional[float] = None
    """Dropout inside the base model (attention/hidden dropout the architecture has); null keeps
    the model's own. The adapter's dropout is lora.dropout."""
    mixout: float = 0.0
    """Mixout probability (ftx/mixout.py): swap weight elements for their start-of-training values; a
    full-fine-tuning regulariser (with LoRA it acts on the adapter only). 0: off."""

    def check(self) -> None:
        require(self.name in OPTIMIZERS, "optimizer.name", f"must be one of {', '.join(OPTIMIZERS)}; got {self.name!r}")
        require(self.scheduler in SCHEDULERS, "optimizer.scheduler",
                f"must be one of {', '.join(SCHEDULERS)}; got {self.scheduler!r}")
        require(self.lr > 0, "optimizer.lr", f"must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "optimizer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0.0 <= self.warmup_ratio < 1.0, "optimizer.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(self.max_grad_norm >= 0, "optimizer.max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        require(self.llrd is None or 0.0 < self.llrd <= 1.0, "optimizer.llrd", f"must be in (0, 1] or null, got {self.llrd}")
        require(self.dropout is None or 0.0 <= self.dropout < 1.0, "optimizer.dropout",
                f"must be in [0, 1) or null, got {self.dropout}")
        require(0.0 <= self.mixout < 1.0, "optimizer.mixout", f"must be in [0, 1), got {self.mixout}")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optimizer.betas",
                f"must be two numbers in [0, 1), got {list(self.betas)}")


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
    from transformers.trainer_pt_utils import get_parameter_names
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS

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
