"""Attention alone on packed rows: transformers' block-diagonal-mask sdpa vs ftx's per-example sdpa.

    python benchmarks/attention.py                       # SmolLM2's shapes, 4 × 256, 2 threads (seconds)
    python benchmarks/attention.py --rows 8 --length 512 --heads 32 --kv-heads 8 --dim 128
    python benchmarks/attention.py --dtype bfloat16       # a bf16 run's attention (per example: fp32 inside on CPU)

Rows are filled with examples of uniformly random length in [--min, --max] tokens (the demo's average is 76)
and position ids restarting per example. Both paths get the same query/key/value; the forward + backward of
one attention call is timed, the two paths alternating call by call, medians over --reps. The outputs are
compared too. Whole training steps: benchmarks/packing.py.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--heads", type=int, default=9)
    ap.add_argument("--kv-heads", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--min", type=int, default=40)
    ap.add_argument("--max", type=int, default=120)
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="of query, key and value (bfloat16: what a bf16 run's attention sees)")
    a = ap.parse_args()

    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import find_packed_sequence_indices

    from ftx.engine.attention import bounds, packed_sdpa

    torch.set_num_threads(a.threads)
    rng = random.Random(0)
    pos = []
    for _ in range(a.rows):
        row = []
        while len(row) < a.length:
            row += list(range(min(rng.randint(a.min, a.max), a.length - len(row))))
        pos.append(row)
    pos = torch.tensor(pos)
    seg = find_packed_sequence_indices(pos)
    causal = torch.ones(a.length, a.length, dtype=torch.bool).tril()
    mask = ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]  # what transformers' sdpa_mask builds
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = a.heads // a.kv_heads, True
    torch.manual_seed(0)
    dtype = getattr(torch, a.dtype)
    q = torch.randn(a.rows, a.heads, a.length, a.dim, dtype=dtype, requires_grad=True)
    k = torch.randn(a.rows, a.kv_heads, a.length, a.dim, dtype=dtype, requires_grad=True)
    v = torch.randn(a.rows, a.kv_heads, a.length, a.dim, dtype=dtype, requires_grad=True)
    kw = bounds(pos)
    paths = {"block mask": lambda: sdpa_attention_forward(module, q, k, v, mask)[0],
             "per example": lambda: packed_sdpa(module, q, k, v, None, **kw)[0]}
    diff = (paths["block mask"]() - paths["per example"]()).abs().max().float().item()
    times: dict = {name: [] for name in paths}
    for rep in range(a.reps + 2):
        for name, f in paths.items():
            t0 = time.perf_counter()
            f().sum().backward()
            if rep >= 2:  # two warm-up calls each
                times[name].append(time.perf_counter() - t0)
    examples = int((pos == 0).sum())
    print(f"attention benchmark: {a.rows} × {a.length} packed rows, {examples} examples of {a.min}–{a.max} tokens, "
          f"{a.heads} heads / {a.kv_heads} key-value heads × {a.dim}, {a.dtype}, {a.threads} threads, forward + backward, "
          f"median of {a.reps}; max |difference| of the outputs {diff:.1e}")
    base = statistics.median(times["block mask"])
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<12}{1000 * m:>9.2f} ms{base / m:>8.2f}×")


if __name__ == "__main__":
    main()
