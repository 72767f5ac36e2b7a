"""Study bookkeeping: samplers, progress counting, owners and heartbeats of running trials, retries.

A trial is RUNNING from ask to tell. If its sweeper dies (kill -9, OOM, a lost node) it stays RUNNING
forever; these helpers find such trials — by the owner process on this host, or by stale heartbeats
in SQL storage — and fail them with Optuna's RetryHeartbeatStaleTrialCallback, which queues the same
parameters again and records the lineage in the retry's `retry_history` system attribute.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import warnings
from typing import List

from . import _space

log = logging.getLogger("ftx.track.sweep")

MAX_RETRY = 2


@contextlib.contextmanager
def quiet():
    """Optuna flags heartbeats outside Study.optimize and its retry helpers as experimental: known, noise."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        yield


def grid_size(space) -> int:
    size = 1
    for values in _space.grid(space).values():
        size *= len(values)
    return size


def interrupted(study) -> set:
    """Numbers of the trials that were interrupted and re-queued (named in a retry's history)."""
    return {n for t in study.get_trials(deepcopy=False) for n in t.system_attrs.get("retry_history", [])}


def progress(study):
    """(trials that count as done, trials running, failed ones among the done) — a trial that was
    interrupted and re-queued does not count; its retry does."""
    trials = study.get_trials(deepcopy=False)
    retried = interrupted(study)
    done = [t for t in trials if t.state.is_finished() and t.number not in retried]
    running = [t for t in trials if t.state.name == "RUNNING"]
    # a trial failed for a flagged regression (objective.on_regression=fail) is a verdict, not a crash
    return done, running, [t for t in done if t.state.name == "FAIL" and not t.user_attrs.get("flagged")]


def counts(study) -> dict:
    done, running, _ = progress(study)
    out = {}
    for t in done:
        key = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}[t.state.name]
        key = "flagged" if key == "failed" and t.user_attrs.get("flagged") else key
        out[key] = out.get(key, 0) + 1
    requeued = len(interrupted(study))
    if requeued:
        out["interrupted and re-queued"] = requeued
    if running:
        out["running elsewhere"] = len(running)
    return out


def owner() -> dict:
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def _alive(owner: dict) -> bool:
    import psutil

    try:
        return abs(psutil.Process(int(owner["pid"])).create_time() - float(owner["started"])) < 1.0
    except (psutil.Error, KeyError, ValueError, TypeError):
        return False


def retry_interrupted(study, trial) -> None:
    """A trial whose sweeper died: queue the same parameters again (at most MAX_RETRY times, so a
    trial that kills its sweeper, e.g. out of memory, ends FAILED instead of looping)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    error = _given_up(trial)
    if error:  # Optuna's callback would stop silently: say why the point ends FAILED
        log.warning("trial %d %s", trial.number, error)
        return
    with quiet():  # the retry's system attr retry_history names this trial
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)
    log.info("trial %d was interrupted; its parameters are queued again", trial.number)


def _given_up(trial):
    """Why an interrupted trial is not queued again (it was interrupted MAX_RETRY + 1 times), or None."""
    history = trial.system_attrs.get("retry_history", [])
    if len(history) < MAX_RETRY:
        return None
    return (f"interrupted {len(history) + 1} times (trials {', '.join(map(str, history + [trial.number]))}: "
            "its sweeper was killed each time); not queued again")


def fail_and_retry(study, trial_id: int) -> None:
    import optuna

    error = _given_up(study._storage.get_trial(trial_id))
    if error:  # recorded while the trial is still RUNNING: a finished trial takes no attributes
        try:
            study._storage.set_trial_user_attr(trial_id, "error", error)
        except optuna.exceptions.UpdateFinishedTrialError:
            return
    try:
        if not study._storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
            return
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    retry_interrupted(study, study._storage.get_trial(trial_id))


def reap_dead_owners(study, grace: float) -> None:
    """RUNNING trials started by a sweeper process on this host that no longer exists, and RUNNING
    trials with no owner older than `grace` seconds (a sweeper killed between `ask` and recording
    itself as owner, a window of milliseconds)."""
    import time

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "RUNNING":
            continue
        owner = t.system_attrs.get("ftx:owner")
        dead = owner.get("host") == host and not _alive(owner) if owner else \
            t.datetime_start is not None and time.time() - t.datetime_start.timestamp() > grace
        if dead:
            fail_and_retry(study, t._trial_id)


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """GridSampler calls Study.stop() when the grid is used up, which only works inside
        Study.optimize; the sweeper caps n_trials at the grid size instead."""

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return GridSampler


def _GridSampler(*args, **kwargs):
    return _grid_sampler_class()(*args, **kwargs)


class Heartbeat:
    """Records heartbeats for the trials this sweeper is running (RDB storage only)."""

    def __init__(self, storage, trial_ids: List[int], interval: int):
        from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

        self._stop = threading.Event()
        self._thread = None
        if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
            def run():
                while True:
                    for tid in trial_ids:
                        try:
                            storage.record_heartbeat(tid)
                        except Exception as e:  # a lost connection must not kill the sweep
                            log.warning("heartbeat for trial id %d failed: %s", tid, e)
                    if self._stop.wait(interval):
                        return
            self._thread = threading.Thread(target=run, name="ftx-sweep-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def make_sampler(conf: dict, space, offset: int):
    """The configured sampler; a seed is offset by the trials already in the study so a resumed
    sweep does not replay the proposals of the first run."""
    import optuna

    seed = conf.get("seed")
    seed = None if seed is None else int(seed) + offset
    name = conf.get("name", "tpe")
    with quiet():
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "grid":
            return _GridSampler(_space.grid(space), seed=seed)
        if name == "nsgaii":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=conf.get("n_startup_trials", 5),
                                          multivariate=conf.get("multivariate", True),
                                          constant_liar=conf.get("constant_liar", True))
