"""Real sweeps on the tiny model through `ftx train -m`: pruning, kill-and-resume, failures, parallel jobs."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.helpers import ftx_env, write_jsonl

pytestmark = pytest.mark.slow

CODES = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
         304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
         405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 429: "Too Many Requests",
         500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def crafted_data(root: Path) -> list[str]:
    """Small HTTP-status Q&A (domain) and arithmetic (general) files; the overrides that use them."""
    rnd = random.Random(0)
    domain = [{"id": f"d{c}-{j}", "prompt": q.format(c=c), "response": f"HTTP {c} means {n}."}
              for c, n in CODES.items()
              for j, q in enumerate(["What does HTTP status {c} mean?", "Explain status code {c}.",
                                     "Which reason phrase goes with {c}?"])]
    general = [{"id": f"g{i}", "prompt": f"What is {a} plus {b}?", "response": f"{a} plus {b} is {a + b}."}
               for i, (a, b) in enumerate((rnd.randint(1, 20), rnd.randint(1, 20)) for _ in range(30))]
    write_jsonl(root / "domain.jsonl", domain)
    write_jsonl(root / "general.jsonl", general)
    return [f"data.sources.http.path={root / 'domain.jsonl'}", f"data.sources.general.path={root / 'general.jsonl'}"]


SHORT = ["train.max_steps=12", "train.eval_steps=3", "curation=none"]  # crafted data are templated near-duplicates


def sweep_cmd(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ftx", "train", "-m", "+sweep=tiny", *crafted_data(tmp_path), *SHORT, *extra]


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=ftx_env(), capture_output=True, text=True, timeout=timeout)


def load(sweep_dir: Path, name: str = "sweep_tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def test_pruned_tpe_sweep_on_the_tiny_model(tmp_path):
    r = run(sweep_cmd(tmp_path, "hydra.sweeper.n_trials=6"), tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep_dir = tmp_path / "outputs" / "sweeps" / "sweep_tiny"
    study = load(sweep_dir)
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "PRUNED" in states and "COMPLETE" in states, states
    for t in study.trials:
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir == sweep_dir / str(t.number)  # one job dir per trial, named by its number
        if t.state.name == "PRUNED":  # stopped early: fewer steps, no final evaluation
            assert max(t.intermediate_values) < 12 and not (run_dir / "metrics.json").exists()
        else:
            assert max(t.intermediate_values) == 12
            metrics = json.loads((run_dir / "metrics.json").read_text())
            assert metrics["objective"]["value"] == t.value
    # seeded TPE: the sampler's choices are recorded in the job configs exactly
    cfg = yaml.safe_load((sweep_dir / "0" / "config.yaml").read_text())
    assert cfg["sweep"]["trial"] == 0 and cfg["sweep"]["study"] == "sweep_tiny"
    assert cfg["tracking"]["group"] == "sweep_tiny"  # W&B runs of a study share a group
    assert cfg["optimizer"]["lr"] == study.trials[0].params["optimizer.lr"]

    report = sweep_dir / "report"
    for name in ("best_overrides.txt", "best.yaml", "trials.csv", "report.md", "history.png", "importances.png",
                 "parallel.png", "intermediate.png"):
        assert (report / name).stat().st_size > 0, name
    best = yaml.safe_load((report / "best.yaml").read_text())["best"]
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    line = (report / "best_overrides.txt").read_text().split()
    assert line[:3] == ["ftx", "train", "+sweep=tiny"]
    # the override line is ready to use: it composes to the best trial's configuration
    spec = run([sys.executable, "-m", "ftx", "spec", *line[2:]], tmp_path, timeout=300)
    assert spec.returncode == 0, spec.stderr[-2000:]
    resolved = yaml.safe_load(spec.stdout)
    assert resolved["optimizer"]["lr"] == study.best_params["optimizer.lr"]
    assert resolved["lora"]["r"] == study.best_params["lora.r"] and resolved["train"]["max_steps"] == 12
    # the report can be rebuilt from the storage alone
    for f in report.iterdir():
        f.unlink()
    again = run([sys.executable, "-m", "ftx", "sweep-report", str(sweep_dir)], tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (report / "best_overrides.txt").read_text().split() == line and (report / "parallel.png").is_file()


def _running(db: Path, number: int) -> bool:
    """Trial `number` is RUNNING and its sweeper has recorded itself as the owner (it is past `ask`)."""
    try:
        with sqlite3.connect(db, timeout=5) as c:
            rows = c.execute("select t.number from trials t join trial_system_attributes a on a.trial_id = t.trial_id"
                             " where t.state = 'RUNNING' and a.key = 'ftx:owner'").fetchall()
            return (number,) in rows
    except sqlite3.Error:
        return False


def test_killed_sweep_resumes_with_no_trial_lost_or_duplicated(tmp_path):
    cmd = sweep_cmd(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner.name=none")
    sweep_dir = tmp_path / "outputs" / "sweeps" / "sweep_tiny"
    db = sweep_dir / "optuna.db"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ftx_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not _running(db, 1) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole sweep, as an OOM kill or a lost node would
        proc.wait()
    before = load(sweep_dir)
    states = [t.state.name for t in before.trials]
    assert states[-1] == "RUNNING" and set(states[:-1]) == {"COMPLETE"}, states  # killed inside a trial
    k = len(states) - 1
    first = before.trials[0]

    r = run(cmd, tmp_path)  # the same command resumes
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"trial {k} was interrupted; its parameters are queued again" in r.stdout + r.stderr
    study = load(sweep_dir)
    trials = study.trials
    interrupted = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    assert interrupted == {k} and trials[k].state.name == "FAIL"
    counted = [t for t in trials if t.number not in interrupted]
    assert [t.state.name for t in counted] == ["COMPLETE"] * 4  # n_trials reached, nothing left RUNNING
    retry = [t for t in trials if t.system_attrs.get("retry_history") == [k]]
    assert len(retry) == 1 and retry[0].params == trials[k].params  # the lost point was run, once
    assert trials[0].value == first.value and trials[0].params == first.params  # finished work kept
    points = [tuple(sorted(t.params.items())) for t in counted]
    assert len(set(points)) == len(points)  # no trial duplicated (the sampler seed was offset)
    for t in counted:
        metrics = json.loads((sweep_dir / str(t.number) / "metrics.json").read_text())
        assert metrics["objective"]["value"] == t.value


def test_failed_trials_and_failure_budget_with_parallel_joblib_jobs(tmp_path):
    """Jobs in two joblib worker processes; trials whose data file is missing crash and are recorded
    FAILED while the sweep goes on, until more than max_failures have failed."""
    data = crafted_data(tmp_path)
    cmd = [sys.executable, "-m", "ftx", "train", "-m", "+sweep=tiny", *SHORT, data[1],
           f"data.sources.http.path=choice({tmp_path / 'domain.jsonl'},{tmp_path / 'missing.jsonl'})",
           "lora.r=choice(2,4,8)", "optimizer.lr=0.01", "hydra.sweeper.sampler.name=grid",
           "hydra.sweeper.max_failures=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
           "hydra.sweeper.n_jobs=2"]
    r = run(cmd, tmp_path, timeout=900)
    assert r.returncode == 2, r.stderr[-3000:]
    # one line (after whatever a job's progress bar left on the terminal line)
    [last] = [line[line.index("ftx: "):] for line in r.stderr.splitlines() if "ftx: " in line]
    assert last.startswith("ftx: run error: sweep stopped: 3 trials failed, more than hydra.sweeper.max_failures=2")
    assert "missing.jsonl" in last
    study = load(tmp_path / "outputs" / "sweeps" / "sweep_tiny")
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 3 and len(study.trials) >= 4  # it went on after the first failures
    assert all("DataError" in t.user_attrs["error"] and "missing.jsonl" in t.user_attrs["error"] for t in failed)
    assert all(t.params["data.sources.http.path"].endswith("missing.jsonl") for t in failed)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert all(t.params["data.sources.http.path"].endswith("domain.jsonl") for t in complete)
    assert "Joblib.Parallel(n_jobs=2" in r.stdout + r.stderr
    assert (tmp_path / "outputs" / "sweeps" / "sweep_tiny" / "report" / "trials.csv").stat().st_size > 0
