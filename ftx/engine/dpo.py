"""train.objective=dpo: Direct Preference Optimization (Rafailov et al. 2023) through TRL's DPOTrainer, and
train.objective=orpo: Odds Ratio Preference Optimization (Hong et al. 2024) through TRL's ORPOTrainer
(trl.experimental.orpo since TRL 1.x), on the same prepared pairs.

The model is the run's own (ftx/engine/build.py: base → quantise → seed → wrap → init adapter), so LoRA,
DoRA, QLoRA, ZeRO (the `zero` group, passed as for SFT), the optimizer group and the sweeper's callbacks
apply unchanged; `DPOConfig` is built by the same `training_arguments` as the SFT trainer's arguments.

The reference model π_ref:
- with an adapter (lora/dora/rslora, QLoRA too): no second model. TRL keeps a frozen copy of the adapter
  ("ref", a few MB) and computes the reference log-probabilities through it; a fresh adapter is zero
  (LoRA B = 0), so the reference is the base with the adapter switched off; after `train.init_adapter=<SFT
  run>` it is the SFT model, the usual SFT → DPO recipe. The copy is deleted before the adapter is saved.
- with lora.method=full: a frozen copy of the whole model, which must fit in free memory beside the policy;
  when it does not, the run stops before the copy with one line saying why and what to use.
ORPO has no reference model: its loss is the SFT loss on the chosen reply plus β × log σ(log odds(chosen) −
log odds(rejected)), so lora.method=full needs no second copy.
"""

from __future__ import annotations

import copy
import logging

from ftx.errors import ConfigError, ModelError

log = logging.getLogger("ftx")
REFERENCE_ADAPTER = "ref"
HEADROOM = 0.8
"""A full reference copy may use at most this share of the free memory (activations need the rest)."""


def trl(objective: str = "dpo"):
    """TRL, or one line saying how to install it (the optional extra `dpo`)."""
    try:
        import trl as module
    except ImportError:
        raise ConfigError(f"train.objective={objective} needs TRL, which is not installed: "
                          "pip install 'ftx[dpo]'") from None
    return module


def orpo():
    """TRL's ORPO (moved to trl.experimental in TRL 1.x; its import warning silenced: ftx documents the status)."""
    import warnings

    trl("orpo")
    with warnings.catch_warnings():  # TRLExperimentalWarning, once, at import
        warnings.simplefilter("ignore")
        try:
            from trl.experimental import orpo as module
        except ImportError:
            raise ConfigError("train.objective=orpo needs TRL's ORPOTrainer (trl.experimental.orpo, TRL >= 1.0), "
                              "which this TRL does not have: pip install 'ftx[dpo]' --upgrade") from None
    return module


def config_class(spec=None):
    if spec is not None and str(spec.train.objective) == "orpo":
        return orpo().ORPOConfig
    return trl().DPOConfig


def conversational(pair: dict) -> dict:
    """A prepared pair (ftx.data.format.encode_pairs) → TRL's conversational preference row: TRL renders it
    with the tokenizer's chat template, the one data.format.template installed."""
    return {"prompt": pair["prompt"], "chosen": [{"role": "assistant", "content": pair["chosen_text"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected_text"]}]}


def pair_dataset(pairs: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([conversational(p) for p in pairs])


def model_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def free_bytes(model) -> int:
    """Free memory where the model lives: the GPU's (torch.cuda.mem_get_info), else the machine's RAM."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_reference_fits(need: int, free: int) -> None:
    gib = 1024 ** 3
    if need > HEADROOM * free:
        raise ModelError(
            f"lora.method=full with train.objective=dpo: DPO compares the policy with a frozen reference model, "
            f"which full fine-tuning must keep as a second copy ({need / gib:.2f} GiB) but only {free / gib:.2f} GiB "
            f"is free (at most {HEADROOM:.0%} of it may go to the copy); use lora.method=lora (the reference is "
            "the same weights with the adapter switched off: no copy), with quant=nf4 to shrink the base further")


def check_reference(model, spec) -> None:
    """Run right after the model is built (before the base evaluation): a full reference copy must fit."""
    if spec.train.objective == "dpo" and spec.lora.method == "full":
        check_reference_fits(model_bytes(model), free_bytes(model))


def reference_model(model, spec):
    """lora.method=full: a frozen, evaluation-mode copy of the policy before training (None with an adapter)."""
    if spec.lora.method != "full":
        return None
    check_reference(model, spec)
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    ref.eval()
    log.info("DPO reference: a frozen copy of the full model (%.1f MiB)", model_bytes(ref) / 2 ** 20)
    return ref


def make_trainer(spec, model, tok, pairs: dict, args, callbacks: list, **optim_kwargs):
    """TRL's DPOTrainer (or ORPOTrainer) over the run's model and the prepared train/val pairs."""
    if str(spec.train.objective) == "orpo":
        log.info("ORPO: SFT loss + %g x odds-ratio term, no reference model", spec.train.orpo.beta)
        return orpo().ORPOTrainer(model=model, args=args, train_dataset=pair_dataset(pairs["train"]),
                                  eval_dataset=pair_dataset(pairs["val"]), processing_class=tok,
                                  callbacks=callbacks, **optim_kwargs)
    DPOTrainer = trl().DPOTrainer
    if spec.lora.method != "full":
        log.info("DPO reference: the starting weights through a frozen copy of the adapter (no second model)")
    return DPOTrainer(model=model, ref_model=reference_model(model, spec), args=args,
                      train_dataset=pair_dataset(pairs["train"]), eval_dataset=pair_dataset(pairs["val"]),
                      processing_class=tok, callbacks=callbacks, **optim_kwargs)


def dpo_arguments(spec) -> dict:
    """What DPOConfig (or ORPOConfig) adds to the shared TrainingArguments settings."""
    d, f = spec.train.dpo, spec.data.format
    if str(spec.train.objective) == "orpo":
        # Pairs over data.format.max_length were dropped (or truncated) by ftx's format step, as for DPO.
        return dict(beta=spec.train.orpo.beta, max_length=f.max_length, remove_unused_columns=True,
                    dataset_num_proc=None)
    losses = dict(loss_type=[str(d.loss_type)])
    if d.sft_weight > 0:  # RPO: the DPO loss plus sft_weight x the NLL of the chosen reply
        losses = dict(loss_type=[str(d.loss_type), "sft"], loss_weights=[1.0, d.sft_weight])
    return dict(beta=d.beta, **losses, label_smoothing=d.label_smoothing,
                max_length=f.max_length, truncation_mode="keep_start", remove_unused_columns=True,
                # Pairs over data.format.max_length were dropped (or truncated) by ftx's format step with a
                # ledger entry; TRL's own pass then has nothing left to drop.
                dataset_num_proc=None, precompute_ref_log_probs=False)


def drop_reference(model) -> None:
    """Delete TRL's frozen reference adapter, so evaluation and the saved adapter/ hold the trained one only."""
    peft_config = getattr(model, "peft_config", None)
    if peft_config and REFERENCE_ADAPTER in peft_config:
        model.set_adapter("default")
        model.delete_adapter(REFERENCE_ADAPTER)
