"""The `train` group schema: the training loop (runtime: ftx/engine/trainer.py, ftx/pipeline.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ftx.errors import require
from ftx.spec.choices import EITHER, Choice, Precision, check_choices


AUTO_LOSS_CHUNK_MIB = 256
"""train.loss_chunk=auto: the fp32 logits of one chunk stay within this many MiB."""


class Objective(Choice):
    sft = "sft"
    cpt = "cpt"
    dpo = "dpo"
    orpo = "orpo"


PREFERENCE_OBJECTIVES = ("dpo", "orpo")
"""Objectives that train on preference pairs {prompt, chosen, rejected} instead of single replies."""

CHOICE_MESSAGES = {"train.objective": EITHER}


def tristate(value: Any, key: str):
    """auto | true | false (YAML and Hydra give booleans for true/false) → "auto", True or False."""
    text = str(value).lower()
    require(text in ("auto", "true", "false"), key, f"must be auto, true or false; got {value!r}")
    return "auto" if text == "auto" else text == "true"
from ftx.spec.cpt import check_objective


class DpoLoss(Choice):
    """TRL's pairwise DPO losses (trl.DPOConfig.loss_type) that need nothing beyond β and label smoothing."""

    sigmoid = "sigmoid"
    ipo = "ipo"
    hinge = "hinge"
    robust = "robust"
    bco_pair = "bco_pair"
    sppo_hard = "sppo_hard"
    nca_pair = "nca_pair"
    apo_zero = "apo_zero"
    apo_down = "apo_down"


@dataclass
class DpoConfig:
    """train.objective=dpo: Direct Preference Optimization through TRL's DPOTrainer (ftx/engine/dpo.py)."""

    beta: float = 0.1
    """Strength of the pull towards the reference model (the β of the DPO loss; 0.1 is TRL's and the paper's
    usual value; larger stays closer to the reference)."""
    loss_type: DpoLoss = DpoLoss.sigmoid
    """sigmoid (the DPO paper) | ipo | hinge | robust | bco_pair | sppo_hard | nca_pair | apo_zero | apo_down
    (TRL's DPOConfig.loss_type)."""
    label_smoothing: float = 0.0
    """Conservative DPO / robust DPO: the assumed share of flipped labels, in [0, 0.5)."""
    sft_weight: float = 0.0
    """Weight of a supervised (NLL) term on the chosen reply beside the DPO loss — RPO (Pang et al. 2024),
    TRL's multi-loss `loss_type=[<loss_type>, "sft"]` with `loss_weights=[1, sft_weight]`. DPO raises the
    margin between the replies and can do it by lowering both, the chosen one too (likelihood displacement;
    eval.preference.max_chosen_rise flags it); this term keeps the chosen replies likely. 0: plain DPO; 1 is
    the RPO paper's weight."""


@dataclass
class OrpoConfig:
    """train.objective=orpo: Odds Ratio Preference Optimization (Hong et al. 2024) through TRL's ORPOTrainer
    (trl.experimental.orpo): the SFT loss on the chosen reply plus β × an odds-ratio term against the rejected
    one, with no reference model, so SFT and preference tuning are one stage (ftx/engine/dpo.py)."""

    beta: float = 0.1
    """Weight λ of the odds-ratio term beside the SFT loss (TRL's ORPOConfig.beta; the paper uses 0.1–0.25)."""


@dataclass
class TrainConfig:
    """The training loop (HF Trainer)."""

    epochs: float = 3.0
    """Passes over the training mix (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: use epochs)."""
    batch_size: int = 4
    """Micro-batch size per device."""
    grad_accum: int = 1
    """Gradient accumulation steps (effective batch = batch_size × grad_accum × world size)."""
    precision: Precision = Precision.auto
    """auto (bf16 where native, else fp32) | bf16 | fp32."""
    gradient_checkpointing: Any = "auto"
    """auto | true | false: recompute activations in the backward pass (less memory, ~10–30% more time).
    auto: on when the planned activations exceed 20% of the memory available (ftx/memory.py)."""
    eval_steps: int = 0
    """Validate every N steps (0: once per epoch)."""
    save_steps: int = 0
    """Checkpoint every N steps (0: once per epoch)."""
    save_total_limit: int = 2
    """Checkpoints kept in the run dir (the newest; with early stopping also the best)."""
    logging_steps: int = 1
    seed: int = 42
    """Set before PEFT wraps the model: the same seed gives the same adapter init and data order."""
    threads: str = "auto"
    """torch intra-op threads per process: auto (the physical cores this process may use — CPU affinity
    and cgroup quota respected — divided by the local ranks under torchrun/deepspeed) | N | 0 (torch's
    default). On a machine shared with other jobs a fixed small N can beat auto."""
    compile: bool = False
    """torch.compile the model (the Trainer's torch_compile; inductor: C++ on CPU, Triton on GPU). Pays only
    when the run is long enough to earn back its compile time (docs/training.md, "Speed")."""
    liger: bool = False
    """Liger kernels (fused RMSNorm, RoPE, SwiGLU; Triton, CUDA only; pip install 'ftx[liger]'). Without a
    GPU: a warning, and training runs without them."""
    resume: str = "none"
    """none | auto (newest checkpoint in the run dir, error if none; give the run dir:
    hydra.run.dir=…) | if_present (auto, or a fresh start: for requeued jobs) | a checkpoint
    folder. Restores weights, optimizer, scheduler, RNG and data position."""
    early_stopping_patience: int = 0
    """Stop after N evaluations without improvement of the selection metric (eval.select.metric: the
    task metric when answers exist, else validation loss; 0: off). Restores the best checkpoint."""
    keep_best: bool = False
    """Restore the best checkpoint by eval.select.metric at the end (on with early stopping)."""
    dataloader_workers: int = 0
    objective: Objective = Objective.sft
    """sft (loss on responses) | cpt (continued pre-training: raw text, every token, packed; ftx/spec/cpt.py) |
    dpo (preference pairs {prompt, chosen, rejected}: TRL's DPOTrainer; settings in train.dpo) |
    orpo (the same pairs, SFT and preference in one stage without a reference model; settings in train.orpo)."""
    dpo: DpoConfig = field(default_factory=DpoConfig)
    orpo: OrpoConfig = field(default_factory=OrpoConfig)
    cpt_general_share: float = 0.07
    """With objective=cpt: share of general text in the mix (sets data.mix.domain_ratio = 1 − share)."""
    init_adapter: Optional[str] = None
    """Start from a previous run's adapter (its run dir or adapter/ folder): CPT, then SFT on the same adapter."""
    price_per_device_hour: float = 0.0
    """For metrics.json cost/estimated_cost = device-hours × this (your currency; 0: not priced)."""
    loss_chunk: str = "auto"
    """Positions per chunk of the chunked cross-entropy (no batch × seq × vocab logits): auto (as many as keep
    one chunk's fp32 logits within 256 MiB, at least 512: SmolLM2's 49k vocabulary → 1365, Llama 3's 128k →
    523), a whole number, or 0 (the full-logits loss). A step with no more answer positions than one chunk
    recomputes nothing."""
    memory_limit_mb: int = 0
    """Plan against this much memory (MB) instead of what is free (0: free GPU memory, else the machine's or the
    container's available memory): gradient_checkpointing=auto and the fit check use it."""
    malloc_mmap_threshold_kb: int = 1024
    """Freed blocks of at least this many KiB go straight back to the OS (glibc M_MMAP_THRESHOLD; 0: the C
    library's default, whose freed activations stay resident — several times the step's real peak)."""

    def loss_chunk_positions(self, vocab_size: int) -> int:
        """train.loss_chunk as positions for a model with this vocabulary (0: the full-logits loss)."""
        if str(self.loss_chunk) == "auto":
            return max(512, AUTO_LOSS_CHUNK_MIB * 2 ** 20 // (4 * max(int(vocab_size or 0), 1)))
        return int(self.loss_chunk)

    def preference(self) -> bool:
        """True when the objective trains on preference pairs (dpo, orpo)."""
        return str(self.objective) in PREFERENCE_OBJECTIVES

    def check(self) -> None:
        check_choices(self, "train", CHOICE_MESSAGES)
        self.gradient_checkpointing = tristate(self.gradient_checkpointing, "train.gradient_checkpointing")
        require(self.memory_limit_mb >= 0, "train.memory_limit_mb", f"must be >= 0 (0: detect), got {self.memory_limit_mb}")
        require(0 <= self.malloc_mmap_threshold_kb <= 32768, "train.malloc_mmap_threshold_kb",
                f"must be in [0, 32768] KiB (0: the C library's default; glibc's maximum is 32 MiB), "
                f"got {self.malloc_mmap_threshold_kb}")
        self.loss_chunk = str(self.loss_chunk)
        require(self.loss_chunk == "auto" or self.loss_chunk.isdigit(), "train.loss_chunk",
                f"must be auto or a whole number >= 0 (0: full logits), got {self.loss_chunk!r}")
        check_objective(self)
        require(self.dpo.beta > 0, "train.dpo.beta", f"must be > 0 (0.1 is usual), got {self.dpo.beta}")
        require(0.0 <= self.dpo.label_smoothing < 0.5, "train.dpo.label_smoothing",
                f"must be in [0, 0.5), got {self.dpo.label_smoothing}")
        require(self.dpo.sft_weight >= 0, "train.dpo.sft_weight",
                f"must be >= 0 (0: plain DPO; 1: RPO's weight), got {self.dpo.sft_weight}")
        require(self.orpo.beta > 0, "train.orpo.beta", f"must be > 0 (0.1 is usual), got {self.orpo.beta}")
        require(self.price_per_device_hour >= 0, "train.price_per_device_hour",
                f"must be >= 0, got {self.price_per_device_hour}")
        require(self.epochs > 0 or self.max_steps > 0, "train.epochs", "must be > 0 unless train.max_steps > 0")
        require(self.batch_size > 0, "train.batch_size", f"must be > 0, got {self.batch_size}")
        require(self.grad_accum > 0, "train.grad_accum", f"must be > 0, got {self.grad_accum}")
        require(self.threads == "auto" or self.threads.isdigit(), "train.threads",
                f"must be auto or a whole number >= 0 (0: torch's default), got {self.threads!r}")
        require(self.eval_steps >= 0 and self.save_steps >= 0, "train.eval_steps",
                "eval_steps and save_steps must be >= 0")
        require(self.early_stopping_patience >= 0, "train.early_stopping_patience",
                f"must be >= 0, got {self.early_stopping_patience}")
        require(self.save_total_limit >= 1, "train.save_total_limit", f"must be >= 1, got {self.save_total_limit}")
        require(self.logging_steps >= 1, "train.logging_steps", f"must be >= 1, got {self.logging_steps}")
        require(self.dataloader_workers >= 0, "train.dataloader_workers", f"must be >= 0, got {self.dataloader_workers}")
        require(bool(self.resume), "train.resume", "must be none, auto, if_present or a checkpoint folder")
        if self.early_stopping_patience or self.keep_best:
            # Early stopping restores the best checkpoint: the Trainer needs a checkpoint at every evaluation.
            require((self.eval_steps == 0) == (self.save_steps == 0), "train.save_steps",
                    f"={self.save_steps} with train.eval_steps={self.eval_steps}: early stopping needs both 0 "
                    "(per epoch) or both > 0")
            require(self.eval_steps == 0 or self.save_steps % self.eval_steps == 0, "train.save_steps",
                    f"={self.save_steps} must be a multiple of train.eval_steps={self.eval_steps} with early stopping")
