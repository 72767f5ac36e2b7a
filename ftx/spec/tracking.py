"""The `tracking` group schema: W&B and progress display (runtime: ftx/track/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ftx.errors import require
from ftx.spec.choices import EITHER, Choice, check_choices


class Backend(Choice):
    none = "none"
    wandb = "wandb"


class WandbMode(Choice):
    auto = "auto"
    online = "online"
    offline = "offline"
    disabled = "disabled"


class Progress(Choice):
    auto = "auto"
    bar = "bar"
    log = "log"
    off = "off"


CHOICE_MESSAGES = {"tracking.backend": EITHER}


@dataclass
class TrackingConfig:
    """Where metrics go besides the run directory, and how progress is shown."""

    backend: Backend = Backend.none
    """none | wandb."""
    project: str = "ftx"
    entity: Optional[str] = None
    mode: WandbMode = WandbMode.auto
    """auto (WANDB_MODE if set, else online when a W&B key is configured, else offline) | online | offline |
    disabled."""
    group: Optional[str] = None
    """W&B group; null: the sweep's study, the multirun's folder, or the run name."""
    job_type: Optional[str] = None
    """null: sweep for sweep/multirun jobs, train otherwise."""
    run_name: Optional[str] = None
    """W&B run name; null: the run directory's name (with its sweep folder in a multirun)."""
    tags: List[str] = field(default_factory=list)
    tag_overrides: bool = True
    """Add the run's command-line overrides (the ablation) as tags, e.g. `lora.r=16`."""
    log_artifacts: bool = False
    """Upload the adapter and the data manifest (split manifest, ledger, stats) as W&B artifacts."""
    init_timeout: float = 30.0
    """Seconds wandb.init may take online before the run falls back to offline logging."""
    progress: Progress = Progress.auto
    """auto (bars on a terminal, one line per interval otherwise) | bar | log | off."""
    progress_interval: float = 30.0
    """Seconds between progress lines in log mode (CI logs)."""

    def check(self) -> None:
        check_choices(self, "tracking", CHOICE_MESSAGES)
        require(self.init_timeout > 0, "tracking.init_timeout", f"must be > 0 seconds, got {self.init_timeout}")
        require(self.progress_interval > 0, "tracking.progress_interval",
                f"must be > 0 seconds, got {self.progress_interval}")
