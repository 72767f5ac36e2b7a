"""Checkpoint selection by the task metric: at every evaluation during training, greedy generation on a
fixed sample of validation prompts (eval.select.sample) scored with the run's primary metric, added to the
Trainer's metrics as `eval_<metric>` so `metric_for_best_model`, `load_best_model_at_end` and early stopping
use it. Added before EarlyStoppingCallback, which reads the same metrics dict.
"""

from __future__ import annotations

from typing import Callable, Optional

from ftx.spec.eval import parse_primary


def select_key(primary: str) -> str:
    """The Trainer metric name: selection always runs on validation prompts, whatever split eval.primary names
    (selecting on test would leak it into the result): eval_val_<metric>."""
    return f"eval_val_{parse_primary(primary)[1]}"


def select_callback(score: Callable[[object], float], key: str, log: Optional[Callable[[dict], None]] = None):
    """A TrainerCallback adding metrics[key] = score(model) at every evaluation (rank 0 and the others alike:
    every rank must see the same metric for the best-checkpoint decision)."""
    from transformers import TrainerCallback

    class _Select(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if metrics is None or model is None:
                return
            metrics[key] = float(score(model))
            if log is not None and state.is_world_process_zero:
                log({"step": state.global_step, "epoch": state.epoch, key: metrics[key]})

    return _Select()
