"""DeepSpeed ZeRO on CPU through the shipped launch scripts: 2 ranks (gloo, no compiled ops) under
torchrun, the DeepSpeed launcher (hostfile), accelerate and Hydra's submitit launcher; one process
for the remaining options. Kept short: 6 steps of the tiny model each."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open

from tests.helpers import ROOT, ftx_env
from tests.engine_helpers import read_metrics, tiny_args

LAUNCH = ROOT / "launch"
TINY = {"hidden": 64, "intermediate": 128}  # ftx/conf/model/tiny_llama.yaml defaults (ftx/spec/model.py TinyConfig)


def launch(script: str, cwd: Path, *overrides: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    args = tiny_args(cwd, *overrides)[1:]  # drop "train": the scripts add it
    r = subprocess.run(["bash", str(LAUNCH / script), *args], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env=ftx_env(NPROC="2", **env))
    assert r.returncode == 0, f"{script} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def run_dirs(cwd: Path) -> list[Path]:
    return sorted(p.parent for p in cwd.glob("outputs/**/metrics.json"))


def check_distributed_run(run: Path, r: int = 8) -> dict:
    """Two ranks trained (2× the data per step), the loss fell, rank 0 alone wrote, full adapter shapes."""
    m = read_metrics(run)
    events = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if "loss" in e]
    assert m["train"]["steps"] == 6 and losses[-1] < losses[0] and m["delta"]["val_loss"] < 0
    assert max(e["epoch"] for e in events) > 0.5, "one rank's worth of data: the second rank did not train"
    assert not [p for p in run.rglob("*rank1*")], "a non-zero rank wrote into the run dir"
    with safe_open(str(run / "adapter" / "adapter_model.safetensors"), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    up = next(k for k in shapes if "layers.0.mlp.up_proj.lora_A" in k)
    down = next(k for k in shapes if "layers.0.mlp.down_proj.lora_B" in k)
    assert shapes[up] == (r, TINY["hidden"]) and shapes[down] == (TINY["hidden"], r)
    assert all(0 not in s for s in shapes.values()), "ZeRO-3 saved partitioned (empty) tensors"
    return m


@pytest.mark.slow
def test_two_ranks_zero2_torchrun_and_zero3_deepspeed_hostfile_agree(tmp_path):
    launch("torchrun.sh", tmp_path / "z2", "zero=zero2")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=2\n")
    launch("deepspeed.sh", tmp_path / "z3", "zero=zero3", HOSTFILE=str(hostfile), NODE_RANK="0",
           MASTER_ADDR="127.0.0.1", MASTER_PORT="29517")
    (z2,), (z3,) = run_dirs(tmp_path / "z2"), run_dirs(tmp_path / "z3")
    assert z2.name.endswith("-dist2") and z3.name.endswith("-dist2")  # one run dir agreed across ranks
    m2, m3 = check_distributed_run(z2), check_distributed_run(z3)
    # ZeRO partitions state, it does not change the maths: same batches, same result.
    assert abs(m2["tuned"]["val_loss"] - m3["tuned"]["val_loss"]) < 1e-4


@pytest.mark.slow
def test_qlora_under_zero3_offload_with_accelerate(tmp_path):
    launch("accelerate.sh", tmp_path, "zero=zero3_offload", "quant=nf4", MASTER_PORT="29518")
    (run,) = run_dirs(tmp_path)
    check_distributed_run(run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["quant"]["mode"] == "nf4" and config["zero"]["offload_param"] is True


@pytest.mark.slow
def test_submitit_job_with_two_tasks_trains_as_two_ranks(tmp_path):
    launch("slurm_sweep.sh", tmp_path, "zero=zero2_offload", LAUNCHER="submitit_local", GPUS="2")
    (run,) = run_dirs(tmp_path)
    check_distributed_run(run)
    logs = "".join(p.read_text() for p in run.parent.glob(".submitit/*/*_log.*"))
    assert "rank 1 of 2" in logs


@pytest.mark.slow
def test_single_process_zero1_matches_no_zero(tmp_path):
    r = subprocess.run(["bash", str(LAUNCH / "single_gpu.sh"), "-m", *tiny_args(tmp_path, "zero=none,zero1")[1:]],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ftx_env())
    assert r.returncode == 0, r.stderr[-3000:]
    runs = {yaml.safe_load((p / "config.yaml").read_text())["zero"]["stage"]: read_metrics(p)
            for p in run_dirs(tmp_path)}
    assert set(runs) == {None, 1}
    assert abs(runs[None]["tuned"]["val_loss"] - runs[1]["tuned"]["val_loss"]) < 1e-5
    assert runs[1]["delta"]["val_loss"] < 0
