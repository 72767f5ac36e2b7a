"""The `tracking` group and the local metrics sink every run writes (metrics.jsonl)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import require


@dataclass
class TrackingConfig:
    """Where metrics go besides the run directory."""

    backend: str = "none"
    """none | wandb."""
    project: str = "ftx"
    entity: Optional[str] = None
    mode: str = "auto"
    """auto (online when a W&B key is configured, else offline) | online | offline | disabled."""
    group: Optional[str] = None
    """W&B group; null: the experiment or sweep name."""
    tags: List[str] = field(default_factory=list)
    log_artifacts: bool = False
    """Upload the adapter and data manifest as W&B artifacts."""

    def check(self) -> None:
        require(self.backend in ("none", "wandb"), "tracking.backend", f"must be none or wandb; got {self.backend!r}")
        require(self.mode in ("auto", "online", "offline", "disabled"), "tracking.mode",
                f"must be one of auto, online, offline, disabled; got {self.mode!r}")


def metrics_callback(metrics_log, objective_reporter=None):
    """A TrainerCallback that appends every log event to metrics.jsonl."""
    from transformers import TrainerCallback

    class _Sink(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step and state.is_world_process_zero:  # resumed: forget the steps redone
                metrics_log.rewind(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                metrics_log.log({"step": state.global_step, "epoch": state.epoch, **logs})

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if objective_reporter is not None and metrics and "eval_loss" in metrics:
                objective_reporter(metrics["eval_loss"], state.global_step, control)

    return _Sink()
