"""The job side of a sweep: storage, pruners, and the callback that reports to the Optuna trial.

A sweep job runs in its own Hydra job (in-process, a joblib worker or a SLURM node), so it cannot
share the sweeper's Trial object. The sweeper passes `++sweep.study/trial/trial_id/storage`; the
job reopens the study from storage, rebuilds `optuna.trial.Trial(study, trial_id)` and reports
the validation loss at every evaluation. When the pruner says so it raises `optuna.TrialPruned`;
Hydra returns that as a failed job and the sweeper records the trial as PRUNED.

    ftx sweep-report SWEEP_DIR [--storage URL] [--study NAME] [--plots png|html|none]
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Optional

from ftx.errors import ConfigError
from ftx.secrets import redact_text

log = logging.getLogger("ftx.track.sweep")

STORAGE_ENV = "FTX_SWEEP_STORAGE"
PRUNERS = ("none", "median", "hyperband")


def describe_storage(url: str) -> str:
    """The storage URL as it may be printed or written to disk: no password."""
    if url.startswith(("journal:", "env:")):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def job_storage_ref(url: str) -> str:
    """What the jobs are told: the URL itself, or `env:FTX_SWEEP_STORAGE` when it holds a password
    (overrides end up in config.yaml, overrides.txt and Hydra's logs; secrets must not)."""
    if describe_storage(url) != url:
        os.environ[STORAGE_ENV] = url
        return f"env:{STORAGE_ENV}"
    return url


def open_storage(url: str, heartbeat: Optional[int] = None, on_stale=None):
    """An Optuna storage from `journal:PATH`, `env:VAR` or an SQLAlchemy URL (one-line errors)."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("env:"):
        name = url[4:]
        if not os.environ.get(name):
            raise ConfigError(f"sweep.storage: environment variable {name} is not set (it should hold the storage URL)")
        url = os.environ[name]
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"hydra.sweeper.storage: {describe_storage(url)!r} is not a storage URL (use null for "
                          "SQLite in the sweep dir, journal, journal:PATH, or an SQLAlchemy URL such as "
                          "sqlite:///sweep.db or postgresql://user@host/db)") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        hint = "; did you mean postgresql://…?" if parsed.get_backend_name() == "postgres" else ""
        raise ConfigError(f"hydra.sweeper.storage: unknown database {parsed.drivername!r} in "
                          f"{describe_storage(url)!r} (sqlite, postgresql, mysql, …, or journal:PATH{hint})") from None
    engine_kwargs = {"connect_args": {"timeout": 60}} if parsed.get_backend_name() == "sqlite" else None
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs = dict(heartbeat_interval=heartbeat, heartbeat_stale_trial_callback=on_stale) if heartbeat else {}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except Exception as e:  # connection refused, bad credentials, unwritable file, missing driver
        raise ConfigError(f"hydra.sweeper.storage: cannot open {describe_storage(url)!r}: "
                          f"{_why_not(e, parsed)}") from None


def _why_not(e: Exception, parsed) -> str:
    """The first line of a database's refusal, without the driver's exception name, the password masked
    even if a driver echoed it, and what to do for the common cases."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    first = re.sub(r"^\([\w.]+\)\s*", "", " ".join(first.split()))  # "(psycopg2.OperationalError) …"
    if parsed.password:
        first = redact_text(first, [str(parsed.password)])
    if "DB access module" in first or "No module named" in first:
        return "its Python driver is not installed (for postgresql: pip install 'ftx[postgres]')"
    if "password authentication failed" in first:
        return f"{first} (check the user and password in the URL)"
    if re.search(r'database ".*" does not exist', first):
        return f"{first} (create it first: createdb {parsed.database})"
    return first


def check_overrides(overrides: list[str]) -> None:
    """Parse a multirun's overrides up front: a bad sweep (e.g. an empty choice()) is one line naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for line in overrides:
        try:
            parser.parse_overrides([line])
        except OverrideParseException as e:
            detail = [l for l in str(e).splitlines()[1:] if l and not l.startswith("See ")]
            detail = detail[0] if detail else str(e).splitlines()[0]
            raise ConfigError(f"override '{line}': {detail.replace('ValueError while evaluating ', '')}") from None


def make_pruner(conf: Optional[dict]):
    """An Optuna pruner from the sweeper's `pruner` settings (stored with the study, read by jobs)."""
    import optuna

    conf = dict(conf or {})
    name = conf.get("name", "none")
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=conf.get("n_startup_trials", 2),
                                           n_warmup_steps=conf.get("n_warmup_steps", 0),
                                           interval_steps=conf.get("interval_steps", 1))
    if name == "hyperband":
        max_resource = conf.get("max_resource", "auto")
        return optuna.pruners.HyperbandPruner(min_resource=conf.get("min_resource", 1),
                                              max_resource=max_resource if max_resource == "auto" else int(max_resource),
                                              reduction_factor=conf.get("reduction_factor", 3))
    raise ConfigError(f"hydra.sweeper.pruner.name: must be one of {', '.join(PRUNERS)}; got {name!r}")


def trial_callbacks(spec) -> list:
    """Trainer callbacks for a sweep job: [] outside a sweep, else the trial reporter."""
    sweep = dict(spec.sweep or {})
    if not sweep.get("study") or sweep.get("trial_id") is None or not sweep.get("storage"):
        return []
    reporter = reporter_for(sweep)
    return [reporter] if reporter else []


def reporter_for(sweep: dict):
    """Rebuild the sweep's trial inside this job and wrap it in a TrialReporter."""
    import optuna

    storage = open_storage(str(sweep["storage"]))
    attrs = optuna.load_study(study_name=sweep["study"], storage=storage).user_attrs
    pruning = attrs.get("ftx:pruner") or {}
    study = optuna.load_study(study_name=sweep["study"], storage=storage, pruner=make_pruner(pruning))
    if len(study.directions) > 1:  # Optuna has no intermediate values (nor pruning) for several objectives
        return None
    return _reporter_class()(optuna.trial.Trial(study, int(sweep["trial_id"])), pruning.get("metric", "eval_loss"))


def _reporter_class():
    import optuna
    from transformers import TrainerCallback

    class TrialReporter(TrainerCallback):
        """Reports each evaluation's loss to the trial; raises optuna.TrialPruned when told to stop."""

        def __init__(self, trial, metric: str):
            self.trial, self.metric = trial, metric

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if not metrics or self.metric not in metrics or not state.is_world_process_zero:
                return
            value, step = float(metrics[self.metric]), state.global_step
            self.trial.report(value, step)
            # Under torchrun only rank 0 reports; pruning there alone would strand the other ranks.
            if int(os.environ.get("WORLD_SIZE", "1")) == 1 and self.trial.should_prune():
                log.info("trial %d pruned at step %d (%s %.4f)", self.trial.number, step, self.metric, value)
                raise optuna.TrialPruned(f"pruned at step {step}: {self.metric}={value:.4f}")

    return TrialReporter


