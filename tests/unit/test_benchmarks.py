"""The speed benchmarks behind docs/training.md's "Speed" figures run and print every row they promise (tiny
shapes and the tiny model: seconds; the figures themselves come from running them at full size)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers import ROOT


def _run(*args: str) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_attention_benchmark_times_both_paths_and_finds_them_equal():
    out = _run("benchmarks/attention.py", "--rows", "2", "--length", "96", "--reps", "2", "--threads", "1")
    diff = float(re.search(r"max \|difference\| of the outputs (\S+)", out).group(1))
    assert diff < 1e-5
    assert re.search(r"^block mask\s+[\d.]+ ms\s+1\.00×$", out, re.M)
    assert re.search(r"^per example\s+[\d.]+ ms\s+[\d.]+×$", out, re.M)
    # bf16 inputs: the per-example path computes in fp32 and rounds, the block mask stays in bf16 (bf16's
    # resolution at these magnitudes: 2^-7).
    out = _run("benchmarks/attention.py", "--rows", "2", "--length", "96", "--reps", "2", "--threads", "1",
               "--dtype", "bfloat16")
    assert "bfloat16, 1 threads" in out
    assert float(re.search(r"max \|difference\| of the outputs (\S+)", out).group(1)) < 0.05


def test_packing_benchmark_prints_every_mode_against_unpacked_and_bare():
    out = _run("benchmarks/packing.py", "--steps", "1", "--", "model=tiny_llama")
    for mode in ("unpacked", "bare", "packed", "packed 2×", "packed, mask", "packed, dropout", "packed, heap"):
        assert re.search(rf"^{re.escape(mode)}\s+\d+\s+\d+\s+[\d.]+%\s+\d+\s+\d+%\s+[\d.]+×\s+[\d.]+×\s+\d+$", out, re.M), \
            (mode, out)
    assert re.search(r"^bare\s.*\s1\.00×\s+\d+$", out, re.M)  # the bare loop is the "vs bare" baseline
    peak = float(re.search(r"matmul peak ([\d.]+) GFLOP/s", out).group(1))
    assert peak > 0 and re.search(r"model FLOPs \d+ M per token", out), out
