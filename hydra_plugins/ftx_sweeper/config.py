"""Settings of the ftx sweeper (`hydra/sweeper=ftx`).

Registered in Hydra's ConfigStore when Hydra scans the `hydra_plugins` namespace, so
`ftx train -m hydra/sweeper=ftx …` works with no extra flags. The ready search spaces
(`ftx train -m +sweep=NAME`) are the `sweep` group of the config tree, ftx/conf/sweep/*.yaml.
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module before it is in
# sys.modules, and dataclasses cannot resolve string annotations then.
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class SamplerConf:
    """How trials are proposed."""

    name: str = "tpe"
    """tpe | random | grid | nsgaii (multi-objective)."""
    seed: Optional[int] = 0
    """Sampler seed (a resumed study offsets it by its trial count, so it does not repeat trials)."""
    n_startup_trials: int = 5
    """tpe: random trials before the model takes over."""
    multivariate: bool = True
    """tpe: model the parameters jointly."""
    constant_liar: bool = True
    """tpe: keep parallel trials from being proposed the same point."""


@dataclass
class PrunerConf:
    """Stopping unpromising trials from inside training (the validation loss at each evaluation)."""

    name: str = "none"
    """none | median | hyperband."""
    metric: str = "eval_loss"
    """Trainer metric reported at each evaluation (lower is better)."""
    n_startup_trials: int = 2
    """median: trials that must finish before any is pruned."""
    n_warmup_steps: int = 0
    """median: training steps before a trial can be pruned."""
    interval_steps: int = 1
    """median: check every N reported steps."""
    min_resource: int = 1
    """hyperband: steps a trial gets before its first rung."""
    max_resource: Any = "auto"
    """hyperband: steps of a full trial (auto: from the first finished trial; or ${train.max_steps})."""
    reduction_factor: int = 3
    """hyperband: 1/N of the trials go on at each rung."""


@dataclass
class FtxSweeperConf:
    """ftx's Optuna sweeper."""

    _target_: str = "hydra_plugins.ftx_sweeper.sweeper.FtxSweeper"
    study: Optional[str] = None
    """Study name (null: the run's `name`). Same name + same storage = the same, resumable study."""
    storage: Optional[str] = None
    """null: SQLite in the sweep dir | journal (file in the sweep dir) | journal:PATH | any SQLAlchemy URL."""
    direction: Any = None
    """minimize | maximize | a list for several objectives (null: objective.direction)."""
    objectives: Optional[List[str]] = None
    """metrics.json paths to optimise (e.g. [tuned/val_loss, train/seconds]); null: the run's objective."""
    n_trials: int = 20
    """Trials the study should hold when done (finished ones from earlier runs count)."""
    n_jobs: int = 1
    """Trials launched together; set it to the launcher's parallelism (hydra.launcher.n_jobs)."""
    max_failures: int = 3
    """Failed trials tolerated before the sweep stops (-1: no limit). Pruned trials are not failures."""
    heartbeat: int = 60
    """Seconds between heartbeats (RDB storage): a trial whose sweeper died is failed and re-queued."""
    plots: str = "png"
    """Report plots: png (matplotlib) | html (plotly) | none."""
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    params: Dict[str, Any] = field(default_factory=dict)
    """Search space: key → Hydra sweep syntax (choice, interval, tag(log, …), range) or a dict
    {type: float|int|categorical, low, high, log, step, choices}. A config group name picks options."""


def register() -> None:
    """`hydra/sweeper=ftx`: this schema, with its defaults, under Hydra's sweeper group."""
    ConfigStore.instance().store(group="hydra/sweeper", name="ftx", node=FtxSweeperConf, provider="ftx_sweeper")


register()
