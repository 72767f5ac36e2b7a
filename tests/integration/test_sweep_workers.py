"""Sweeps with two trials at a time on shared storage: a real PostgreSQL server (started here, Debian's
`postgresql` package) and Optuna's journal file. Each sweep runs on the tiny model through
`ftx train -m … hydra/launcher=joblib`, is SIGKILLed (the whole process group) while its second batch
runs, and is resumed by the same command: every trial number appears once, each counted trial has its
one run directory and metrics, the interrupted points are run again exactly once, and the best trial is
reported. Bad PostgreSQL URLs (wrong password, missing database) are one line with the password masked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.helpers import Postgres, ftx_env
from tests.integration.test_sweep import sweep_cmd

pytestmark = pytest.mark.slow

N_TRIALS = 4  # two batches of two


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres()
    try:
        yield pg
    finally:
        pg.stop()


def parallel_cmd(tmp_path: Path, storage: str) -> list[str]:
    return sweep_cmd(tmp_path, f"hydra.sweeper.n_trials={N_TRIALS}", "hydra.sweeper.pruner.name=none",
                     "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                     f"hydra.sweeper.storage={storage}")


def study_of(storage):
    """The study in `storage` (a URL, or a callable opening the storage), None while it does not exist."""
    storage = storage() if callable(storage) else storage
    if storage is None:
        return None
    try:
        return optuna.load_study(study_name="sweep_tiny", storage=storage)
    except Exception:  # not created yet
        return None


def second_batch_running(url: str) -> bool:
    """Trials 0 and 1 finished, 2 and 3 RUNNING with their owner recorded (launched)."""
    study = study_of(url)
    if study is None:
        return False
    trials = study.get_trials(deepcopy=False)
    return len(trials) >= 4 and [t.state.name for t in trials[:2]] == ["COMPLETE"] * 2 and \
        all(t.state.name == "RUNNING" and "ftx:owner" in t.system_attrs for t in trials[2:4])


def kill_then_resume(tmp_path: Path, storage: str, url, env: dict) -> subprocess.CompletedProcess:
    cmd = parallel_cmd(tmp_path, storage)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        while not second_batch_running(url) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # the two joblib workers are training now
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # sweeper and both workers, as a lost node would
        proc.wait()
    states = [t.state.name for t in study_of(url).trials]
    assert states == ["COMPLETE", "COMPLETE", "RUNNING", "RUNNING"], states  # killed inside the second batch
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def check_resumed(tmp_path: Path, url, r: subprocess.CompletedProcess) -> None:
    sweep_dir = tmp_path / "outputs" / "sweeps" / "sweep_tiny"
    study = study_of(url)
    trials = study.trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # every trial number once
    for k in (2, 3):
        assert f"trial {k} was interrupted; its parameters are queued again" in r.stdout + r.stderr
    interrupted = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    assert interrupted == {2, 3} and all(trials[k].state.name == "FAIL" for k in (2, 3))
    counted = [t for t in trials if t.number not in interrupted]
    assert [t.state.name for t in counted] == ["COMPLETE"] * N_TRIALS and len(trials) == N_TRIALS + 2
    for k in (2, 3):  # each lost point ran again, exactly once
        [retry] = [t for t in trials if t.system_attrs.get("retry_history") == [k]]
        assert retry.params == trials[k].params
    for t in counted:  # one run dir per trial, named by its number, holding that trial's result
        cfg = yaml.safe_load((sweep_dir / str(t.number) / "config.yaml").read_text())
        assert cfg["sweep"]["trial"] == t.number
        metrics = json.loads((sweep_dir / str(t.number) / "metrics.json").read_text())
        assert metrics["objective"]["value"] == t.value
    # two trials at a time: the trials of a batch overlapped
    a, b = trials[0], trials[1]
    assert a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
    # the best trial is reported, from the shared storage
    best = yaml.safe_load((sweep_dir / "report" / "best.yaml").read_text())["best"]
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    assert best["trial"] in {t.number for t in counted}
    line = (sweep_dir / "report" / "best_overrides.txt").read_text()
    assert f"lora.r={study.best_params['lora.r']}" in line and "best: ftx train +sweep=tiny" in r.stdout + r.stderr


def test_parallel_sweep_on_postgresql_killed_and_resumed(tmp_path, postgres):
    url = postgres.url()
    env = ftx_env(FTX_SWEEP_STORAGE=url)
    r = kill_then_resume(tmp_path, "${oc.env:FTX_SWEEP_STORAGE}", url, env)
    check_resumed(tmp_path, url, r)
    sweep_dir = tmp_path / "outputs" / "sweeps" / "sweep_tiny"
    # the password is in no file of the sweep and in no log line
    assert postgres.PASSWORD not in r.stdout + r.stderr
    for f in sweep_dir.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".yaml", ".txt", ".log", ".csv", ".md", ".jsonl"):
            assert postgres.PASSWORD not in f.read_text(errors="replace"), f
    assert json.loads((sweep_dir / "sweep.json").read_text())["storage"] == url.replace(postgres.PASSWORD, "***")


def test_parallel_sweep_on_a_journal_file_killed_and_resumed(tmp_path):
    """The sweeper and both joblib workers write the journal (the workers report each evaluation's loss)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "shared" / "study.journal"

    def storage():
        return JournalStorage(JournalFileBackend(str(journal))) if journal.exists() else None

    r = kill_then_resume(tmp_path, f"journal:{journal}", storage, ftx_env())
    check_resumed(tmp_path, storage, r)
    trials = study_of(storage).trials
    # both workers of each batch wrote their evaluations into the one journal while the other ran
    assert all(sorted(t.intermediate_values) == [3, 6, 9, 12] for t in trials if t.state.name == "COMPLETE")


@pytest.mark.parametrize("what,db,password,needle", [
    ("wrong password", "optuna", "not-the-password",
     'FATAL: password authentication failed for user "ftx" (check the user and password in the URL)'),
    ("missing database", "nope", None, 'FATAL: database "nope" does not exist (create it first: createdb nope)'),
])
def test_bad_postgresql_url_is_one_line_with_the_password_masked(tmp_path, postgres, what, db, password, needle):
    url = postgres.url(db, password)
    r = subprocess.run(parallel_cmd(tmp_path, "${oc.env:FTX_SWEEP_STORAGE}"), cwd=tmp_path,
                       env=ftx_env(FTX_SWEEP_STORAGE=url), capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    masked = url.replace(f":{password or postgres.PASSWORD}@", ":***@")
    assert last.startswith(f"ftx: config error: hydra.sweeper.storage: cannot open '{masked}': "), last
    assert last.endswith(needle), last
    assert (password or postgres.PASSWORD) not in r.stdout + r.stderr
    assert r.stderr.count("ftx: ") == 1
