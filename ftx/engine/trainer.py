"""RunSpec → HF Trainer: arguments, the weighted loss, DeepSpeed from the zero group."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Optional

from ftx import memory
from ftx.errors import RunError
from ftx.engine import attention
from ftx.engine.accel import training_options
from ftx.engine.loss import LOSS_CHUNK, chunked_loss, keep_one_logit, loss_head
from ftx.engine.zero import deepspeed_config
from ftx.runs import checkpoint_problem, flatten
from ftx.spec.run import as_dict, is_not_hashed

log = logging.getLogger("ftx")


def make_trainer_class():
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    class WeightedTrainer(Trainer):
        """Per-token loss weights: prompt_loss_weight and per-example (source/trust) weights.

        Training loss = Σ w·CE / Σ w over the batch. Evaluation loss is the plain answer loss
        (response tokens only, unweighted) so runs with different weights stay comparable.
        """

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weights = inputs.pop("loss_weight")
            labels = inputs.pop("labels")
            if "position_ids" in inputs:
                # Packed rows: transformers 5.x derives the per-example mask from position ids only when
                # no KV cache exists; with use_cache on (TrainingArguments.use_cache) it builds one.
                inputs["use_cache"] = False
                if self._packed_attention:  # ftx.engine.attention: each example's own SDPA, no block mask
                    inputs.update(attention.bounds(inputs["position_ids"]))
            targets = F.pad(inputs["input_ids"][:, 1:], (0, 1), value=-100)
            if model.training:
                w = F.pad(weights[:, 1:], (0, 1)).float()
            else:
                w = F.pad((labels[:, 1:] != -100), (0, 1)).float()
            head = None if return_outputs else loss_head(self.accelerator.unwrap_model(model), self.loss_chunk)
            if head is not None:  # ftx.engine.trainer.chunked_loss: no batch × seq × vocab tensor
                keep = keep_one_logit(self.accelerator.unwrap_model(model), inputs["input_ids"].device)
                outputs = model(**inputs, output_hidden_states=-1, logits_to_keep=keep)  # the final (normed) one only
                with self.accelerator.autocast():
                    loss = chunked_loss(head, outputs.hidden_states[-1], targets, w, self.loss_chunk)
                return loss
            outputs = model(**inputs)
            # Shift the targets, not the logits: slicing logits copies the largest tensor of the step.
            logits = outputs.logits.float()
            ce = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1),
                                 ignore_index=-100, reduction="none").view_as(targets)
            loss = (ce * w).sum() / w.sum().clamp_min(1e-8)
            return (loss, outputs) if return_outputs else loss

        def train(self, *args, **kwargs):
            # Packed rows under sdpa train through ftx.engine.attention for the run, then the model is switched
            # back (evaluation, generation and the saved adapter see plain sdpa). Not under torch.compile: the
            # per-example loop would break its graph.
            with attention.per_example(self.model, self.packed_attention and not self.args.torch_compile) as on:
                self._packed_attention = on
                try:
                    return super().train(*args, **kwargs)
                finally:
                    self._packed_attention = False

        def evaluate(self, *args, **kwargs):
            with memory.stage("train_eval"):  # evaluation during training: its own peak in metrics.json memory
                return super().evaluate(*args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            # A curriculum fixes the order (ftx.data.plan.Examples.ordered): no shuffling.
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if getattr(dataset, "ordered", False):
                return torch.utils.data.SequentialSampler(dataset)
            return super()._get_train_sampler(train_dataset)

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            # Loss only: no logits are returned, so the evaluation loop accumulates none (test_memory.py).
            with torch.no_grad():
                loss = self.compute_loss(model, dict(inputs))
            return loss.detach(), None, None

    WeightedTrainer.loss_chunk = LOSS_CHUNK
    WeightedTrainer.packed_attention = True  # False: the block mask (benchmarks/engine.py measures both)
    WeightedTrainer._packed_attention = False
    return WeightedTrainer


def _damaged(ckpt: Path) -> bool:
    """A file cut or garbled by a crash (e.g. a full disk while saving): resume=auto passes over it."""
    problem = checkpoint_problem(ckpt)
    if problem:
        log.warning("skipping damaged checkpoint %s: %s", ckpt, problem)
    return bool(problem)


def _complete(ckpt: Path) -> bool:
    """trainer_state.json is written last: a checkpoint cut off by a kill has none or half of one."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def newest_checkpoint(run_dir: Path) -> Optional[str]:
    """The complete checkpoint with the highest step under run_dir/checkpoints, or None."""
    ckpts = [p for p in (run_dir / "checkpoints").glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and _complete(p) and not _damaged(p)]
    ckpts.sort(key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def resume_path(resume: str, run_dir: Path) -> Optional[str]:
    """train.resume → the checkpoint folder to resume from (None: start fresh)."""
    if resume == "none":
        return None
    if resume in ("auto", "if_present"):
        found = newest_checkpoint(run_dir)
        if found is None and resume == "auto":
            raise RunError(f"train.resume=auto: no complete checkpoint in {run_dir / 'checkpoints'} "
                           "(resume needs the interrupted run's dir: add hydra.run.dir=<that dir>; "
                           "train.resume=if_present starts fresh instead)")
        return found
    p = Path(resume).expanduser()
    if not _complete(p):
        raise RunError(f"train.resume: {resume!r} is not a complete checkpoint folder (no readable "
                       "trainer_state.json); use none, auto, if_present or a checkpoint-N folder")
    problem = checkpoint_problem(p)
    if problem:
        raise RunError(f"train.resume: {resume!r}: {problem}; resume from an earlier checkpoint-N "
                       "or use train.resume=auto, which skips damaged checkpoints")
    return str(p)


def spec_differences(old: dict, new: dict) -> list[str]:
    """Keys whose values differ between two resolved specs, except those a resume may change."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and k != "train.resume" and not is_not_hashed(k))


def resume_checkpoint(spec, run_dir: Path, resolved: Optional[dict] = None) -> Optional[str]:
    """The checkpoint to resume from, after checking it was written by the same run spec
    (`resolved`: the spec as plain data, when the caller has it already)."""
    import yaml

    ckpt = resume_path(spec.train.resume, run_dir)
    if ckpt is None:
        return None
    config = Path(ckpt).parent.parent / "config.yaml"
    if config.is_file():
        diff = spec_differences(yaml.safe_load(config.read_text()) or {}, resolved or as_dict(spec))
        if diff:
            msg = (f"train.resume: {ckpt} was written by a different run spec (differs in "
                   f"{', '.join(diff[:6])}{' …' if len(diff) > 6 else ''})")
            if spec.train.resume in ("auto", "if_present"):
                raise RunError(msg + "; resume with the same overrides, or start a new run dir")
            log.warning("%s; continuing from it as asked", msg)
    log.info("resuming from %s", ckpt)
    return ckpt


def training_arguments(spec, run_dir: Path, bf16: bool, select_metric: Optional[str] = None,
                       checkpointing: Optional[bool] = None, cls=None, **extra):
    """`select_metric`: a Trainer metric (e.g. eval_val_contains, higher is better) that chooses the best
    checkpoint and drives early stopping instead of eval_loss. `checkpointing`: train.gradient_checkpointing
    as planned (ftx.memory.decide resolves auto); None: on only when it is true. `cls`: a TrainingArguments
    subclass (TRL's DPOConfig) built from the same settings plus `extra`."""
    import torch
    from transformers import TrainingArguments

    t, o = spec.train, spec.optimizer
    ckpt = t.gradient_checkpointing is True if checkpointing is None else checkpointing
    per_epoch = t.eval_steps == 0
    kwargs = dict(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=t.epochs, max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=spec.eval.batch_size,
        gradient_accumulation_steps=t.grad_accum, activation_checkpointing=ckpt,
        # Non-reentrant recomputation gives LoRA its gradients without forcing inputs to require grad.
        activation_checkpointing_kwargs={"use_reentrant": False} if ckpt else None,
        learning_rate=o.lr, weight_decay=o.weight_decay, adam_beta1=o.betas[0], adam_beta2=o.betas[1],
        adam_epsilon=o.eps, lr_scheduler_type=o.scheduler, warmup_steps=o.warmup_ratio,
        max_grad_norm=o.max_grad_norm, optim=o.name,
        bf16=bf16, use_cpu=not torch.cuda.is_available(),
        eval_strategy="epoch" if per_epoch else "steps", eval_steps=None if per_epoch else t.eval_steps,
        save_strategy="epoch" if t.save_steps == 0 else "steps", save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit, logging_steps=t.logging_steps, logging_first_step=True,
        seed=t.seed, data_seed=t.seed, report_to=[], remove_unused_columns=False,
        dataloader_num_workers=t.dataloader_workers, disable_tqdm=False,
        load_best_model_at_end=t.early_stopping_patience > 0 or t.keep_best,
        metric_for_best_model=select_metric or "eval_loss", greater_is_better=select_metric is not None, deepspeed=deepspeed_config(spec.zero, bf16), save_only_model=False,
        prediction_loss_only=True,  # evaluation during training: the loss, never the logits
    )
    kwargs.update(training_options(spec))  # train.compile, train.liger (ftx/engine/accel.py)
    if cls is not None and "gradient_checkpointing" in {f.name for f in dataclasses.fields(cls)}:
        kwargs["gradient_checkpointing"] = ckpt  # TRL's DPOConfig turns it on by default: keep ftx's plan
    kwargs.update(extra)
    return (cls or TrainingArguments)(**kwargs)
