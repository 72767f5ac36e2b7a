"""Exact resume: a run killed with SIGKILL mid-training and resumed with train.resume=auto ends where an
uninterrupted run ends (weights, optimizer, scheduler, RNG and data position all restored)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ftx_env
from tests.engine_helpers import read_metrics, step_losses, tiny_args

LOOP = ["train.max_steps=40", "train.save_steps=5", "train.eval_steps=20", "train.save_total_limit=2",
        "lora.dropout=0.1"]  # dropout: the resumed RNG state matters


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(ftx, tmp_path):
    args = tiny_args(tmp_path, *LOOP)
    ref = ftx(*args, "hydra.run.dir=runs/ref")
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = ftx.cwd / "runs" / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "ftx", *args, f"hydra.run.dir={run}"], cwd=ftx.cwd,
                            env=ftx_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (run / "checkpoints" / "checkpoint-5" / "trainer_state.json").exists():
            assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (run / "metrics.json").exists(), "the kill came after the run had finished"
    assert not (run / "checkpoints" / "checkpoint-40").exists()

    resumed = ftx(*args, "train.resume=auto", f"hydra.run.dir={run}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr + resumed.stdout + (run / "train.log").read_text()

    a, b = read_metrics(ftx.cwd / "runs" / "ref"), read_metrics(run)
    assert b["train"]["steps"] == a["train"]["steps"] == 40
    assert abs(a["tuned"]["val_loss"] - b["tuned"]["val_loss"]) < 1e-3
    la, lb = step_losses(ftx.cwd / "runs" / "ref"), step_losses(run)
    assert abs(la[40] - lb[40]) < 1e-3
    assert la[40] < la[1], "the loss did not fall"


def test_resume_auto_without_checkpoint_is_one_line(ftx, tmp_path):
    r = ftx(*tiny_args(tmp_path, "train.resume=auto", "hydra.run.dir=runs/empty"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("ftx: run error: train.resume=auto: no complete checkpoint in"), r.stderr[-2000:]
    assert "hydra.run.dir" in lines[-1]

