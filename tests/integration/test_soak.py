"""Soak: a real sweep on the tiny model SIGKILLed at random moments, then rerun with the same command until it
finishes. Afterwards every trial number is in the study and the report exactly once, every trial that ran
logged each step once in its metrics.jsonl, and every trial's data ledger holds `in == kept + dropped`.

Kill moments are drawn from a seeded RNG (reproducible) between the first trial going RUNNING and a few
seconds later, so kills land in job setup, data preparation, training, evaluation and the sweeper's
bookkeeping between trials.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import ftx_env
from tests.integration.test_sweep import _running, load, sweep_cmd

pytestmark = pytest.mark.slow

N_TRIALS = 5
KILLS = 3
SOAK = ["hydra.sweeper.n_trials=%d" % N_TRIALS, "hydra.sweeper.pruner.name=none", "train.max_steps=6",
        "train.eval_steps=3", "train.logging_steps=1", "hydra.sweeper.heartbeat=5"]


def _kind(event: dict) -> str:
    if "train_runtime" in event:
        return "train_summary"
    return "eval" if any(k.startswith("eval_") for k in event) else "train"


def _n_trials(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("select count(*) from trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def _new_trial_running(db: Path, before: int) -> bool:
    """A trial this sweeper process asked for (numbered from `before` on) is RUNNING with its owner recorded."""
    return any(_running(db, n) for n in range(before, before + 3))


def test_random_sigkills_of_a_sweep_then_reruns_lose_and_duplicate_nothing(tmp_path):
    cmd = sweep_cmd(tmp_path, *SOAK)
    sweep_dir = tmp_path / "outputs" / "sweeps" / "sweep_tiny"
    db = sweep_dir / "optuna.db"
    rnd = random.Random(15)
    killed = 0
    for _ in range(KILLS):
        before = _n_trials(db)
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=ftx_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.time() + 300
            while not _new_trial_running(db, before) and proc.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(rnd.uniform(0.0, 5.0))  # job setup, data, training, evaluation or the tell after it
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                killed += 1
            proc.wait()
    assert killed >= 2, "the sweep finished before it could be killed: raise N_TRIALS"

    final = subprocess.run(cmd, cwd=tmp_path, env=ftx_env(), capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]

    study = load(sweep_dir)
    trials = study.trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))), numbers  # each number once, none missing
    states = Counter(t.state.name for t in trials)
    assert states["RUNNING"] == 0 and states["WAITING"] == 0, states
    interrupted = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    retried = Counter(n for t in trials for n in t.system_attrs.get("retry_history", [])[-1:])
    assert all(c == 1 for c in retried.values()), retried  # an interrupted trial is queued again once
    assert all(trials[n].state.name == "FAIL" for n in interrupted)
    counted = [t for t in trials if t.number not in interrupted]
    assert len(counted) == N_TRIALS, [(t.number, t.state.name) for t in trials]  # n_trials reached, no more
    for t in counted:  # a point killed MAX_RETRY + 1 times in a row ends FAILED, with the reason recorded
        assert t.state.name == "COMPLETE" or "interrupted" in t.user_attrs.get("error", ""), (t.number, t.user_attrs)
    assert len(interrupted) >= 2, f"only {len(interrupted)} kills landed inside a trial: the retry path was barely exercised"
    print(f"soak: {killed} kills, {len(trials)} trials, states {dict(states)}, interrupted {sorted(interrupted)}")

    with open(sweep_dir / "report" / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    in_report = Counter(int(r["number"]) for r in rows)
    assert sorted(in_report) == numbers and set(in_report.values()) == {1}, in_report

    for t in trials:
        run_dir = sweep_dir / str(t.number)
        if t.state.name == "COMPLETE":
            assert Path(t.user_attrs["run_dir"]) == run_dir
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists():
            events = [json.loads(line) for line in metrics.read_text().splitlines()
                      if line.strip() and line.endswith("}")]
            seen = Counter((e["step"], _kind(e)) for e in events if "step" in e)
            assert all(c == 1 for c in seen.values()), (t.number, [k for k, c in seen.items() if c > 1])
            if t.state.name == "COMPLETE":
                assert {s for s, k in seen if k == "train"} == set(range(1, 7)), (t.number, sorted(seen))
                assert {s for s, k in seen if k == "eval"} >= {3, 6}, (t.number, sorted(seen))
        ledger = run_dir / "data" / "ledger.json"
        if t.state.name == "COMPLETE":
            assert ledger.is_file(), t.number
        if ledger.exists():
            for stage in json.loads(ledger.read_text()):
                assert stage["in"] == stage["kept"] + stage["dropped"], (t.number, stage)
                assert stage["dropped"] == sum(stage["dropped_by_reason"].values()), (t.number, stage)
