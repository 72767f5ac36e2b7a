"""Output folders with real processes: SIGKILL mid-write then the same command, two writers at once,
Ctrl-C/SIGTERM (one line, exit 130). `ftx curate` with curation=none on a source big enough that writing
takes a moment; a few seconds each."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ftx_env, run_ftx, write_jsonl

N = 20000


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("outputs")
    rows = [{"id": f"r{i}", "prompt": f"What does header {i} carry?", "response": f"Header {i} carries value {i}. " * 8}
            for i in range(N)]
    write_jsonl(d / "big.jsonl", rows)
    write_jsonl(d / "small.jsonl", rows[:10])
    return d


def curate_args(src: Path, out: Path) -> list[str]:
    return ["curate", "model=tiny_llama", "curation=none", f"data.sources.http.path={src}",
            f"data.sources.general.path={src}", "--out", str(out)]


def _default_sigint() -> None:
    # A test runner started in the background (`nohup … &`, some CI shells) ignores SIGINT, and an ignored
    # signal is inherited through exec: Python then never turns Ctrl-C into KeyboardInterrupt. The command
    # under test gets the disposition a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ftx", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ftx_env(), preexec_fn=_default_sigint)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"finished before {path} appeared: {proc.communicate()}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def count(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_sigkill_mid_write_then_the_same_command_succeeds(big, tmp_path):
    out = tmp_path / "O"
    args = curate_args(big / "big.jsonl", out)
    proc = start(args, tmp_path)
    wait_for(tmp_path / ".O.partial" / "lineage.json", proc)  # it is writing its outputs
    proc.kill()
    proc.wait()
    assert not out.exists(), "a killed writer leaves no half-written target"
    assert (tmp_path / ".O.partial").exists()
    r = run_ftx(args, tmp_path)  # the same command
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / ".ftx-complete").is_file() and count(out / "kept.jsonl") + count(out / "dropped.jsonl") == 2 * N
    ledger = json.loads((out / "ledger.json").read_text())
    assert ledger and (out / "version.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_two_writers_one_wins_the_other_is_one_line(big, tmp_path):
    out = tmp_path / "O"
    a = start(curate_args(big / "big.jsonl", out), tmp_path)
    b = start(curate_args(big / "small.jsonl", out), tmp_path)
    results = {name: (p.wait(timeout=600), p.communicate()) for name, p in (("big", a), ("small", b))}
    codes = sorted(code for code, _ in results.values())
    assert codes == [0, 2], results
    winner = next(n for n, (code, _) in results.items() if code == 0)
    _, (_, err) = next(v for n, v in results.items() if n != winner)
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and err.count("ftx: ") == 1, err
    assert (f"ftx: run error: --out: {out} is being written by another ftx process (pid " in line
            or line.startswith(f"ftx: config error: --out {out}: directory exists and is not empty")), line
    assert count(out / "kept.jsonl") == (2 * N if winner == "big" else 20)  # only the winner's files
    assert f"{winner}.jsonl" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_an_interrupt_is_one_line_and_exit_130(big, tmp_path, sig):
    out = tmp_path / "O"
    proc = start(curate_args(big / "big.jsonl", out), tmp_path)
    wait_for(tmp_path / ".O.partial", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("ftx: interrupted; rerun the same command (with train.resume=auto for "
                                            "training) to continue")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_ctrl_c_in_training_is_one_line_and_the_run_dir_is_then_reused_only_to_resume(tmp_path):
    """Ctrl-C while a run trains: one line, exit 130, the run dir's lock released. Then the same dir with
    other settings and no train.resume is refused in one line, and nothing in it changes (before, its
    config.yaml was replaced and a second curve appended to metrics.jsonl)."""
    args = ["train", "experiment=tiny_smoke", "lora.r=2", "train.max_steps=400"]
    proc = start([*args, "hydra.run.dir=R"], tmp_path)
    wait_for(tmp_path / "R" / "metrics.jsonl", proc, timeout=300)  # training has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[max(err.find("Traceback") - 300, 0):][:4000]
    assert err.strip().splitlines()[-1] == (
        "ftx: interrupted; rerun the same command (with train.resume=auto for training) to continue")
    assert not (tmp_path / ".R.lock").exists(), "the run dir's lock is released"

    before = {p.name: p.read_bytes() for p in (tmp_path / "R").iterdir() if p.is_file()}
    again = run_ftx(["train", "experiment=tiny_smoke", "lora.r=4", "hydra.run.dir=R"], tmp_path)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    line = again.stderr.strip().splitlines()[-1]
    assert line.startswith("ftx: config error: hydra.run.dir: R holds an interrupted run (no metrics.json) "
                           "(config.yaml, manifest.json, metrics.jsonl"), line
    assert line.endswith("a run dir takes one run: continue an interrupted one with train.resume=auto, or choose "
                         "a new hydra.run.dir"), line
    assert {p.name: p.read_bytes() for p in (tmp_path / "R").iterdir() if p.is_file()} == before
