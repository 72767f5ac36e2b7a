"""Padding waste and training throughput, packed vs unpacked, on the demo data.

    python benchmarks/packing.py                                  # SmolLM2-135M + LoRA (a few minutes)
    python benchmarks/packing.py --steps 4 -- model=tiny_llama    # the tiny model (seconds)
    python benchmarks/packing.py -- data=http_mix train.batch_size=8   # any overrides after --

Padding waste = padded positions / all positions over one epoch of training batches drawn as the
Trainer draws them (shuffled, train.batch_size rows). Throughput = real (non-pad) tokens per
second of forward + backward + optimizer step through WeightedTrainer.compute_loss, median over
--steps steps per mode; the modes alternate step by step so machine load hits both alike. MFU = real
tokens/s × model FLOPs per token (benchmarks/engine.py's count: every linear layer incl. the LM head at
every position, attention over the mean example length; 2× the forward for LoRA, 3× for full tuning) ÷
the best 1024² matmul of this process at the training dtype and threads (measured before and after the
steps): how close a mode runs to what the machine can do. Modes:
  unpacked          padded batches of train.batch_size examples
  bare              the same padded batches through model(..., labels=...).loss: the loop a user writes
  packed            the default: packed rows, each example attending on its own (ftx.engine.attention)
  packed 2×         rows of 2 × max_length
  packed, mask      packed rows through transformers' block-diagonal mask instead
  packed, dropout   packed, with lora.dropout=0.05 (the default until 2026-12-04) — one model serves
                    every mode: it is wrapped with dropout modules whose p is set per step
  packed, heap      packed, with glibc's own heap instead of ftx's train.malloc_mmap_threshold_kb

The C heap is set per step as each side runs it: ftx's modes with train.malloc_mmap_threshold_kb (what `ftx
train` sets at start: blocks of at least that size are mapped when allocated and unmapped when freed), the
bare loop and `packed, heap` as glibc leaves a plain process once its first large tensors are freed (the
mmap threshold at its 32 MiB ceiling, the trim threshold at twice that).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


M_TRIM_THRESHOLD = -1  # glibc mallopt: free space at the heap's top beyond this is returned to the OS


def epoch_batches(rows: list, batch_size: int, seed: int) -> list[list]:
    import torch

    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    return [[rows[i] for i in order[j:j + batch_size]] for j in range(0, len(order), batch_size)]


def waste(batches: list[list]) -> tuple[float, int]:
    real = sum(len(r["input_ids"]) for b in batches for r in b)
    total = sum(len(b) * max(len(r["input_ids"]) for r in b) for b in batches)
    return 1 - real / total, real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per mode (after one warm-up step)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    import dataclasses

    import torch
    from transformers import TrainingArguments

    from ftx.data.build import prepare
    from ftx.data.format import Collator
    from ftx.engine import attention
    from ftx.engine import lora as lora_mod
    from ftx.engine import model as model_mod
    from ftx.engine.trainer import make_trainer_class
    from ftx.eval.heldout import autocast
    from ftx.precision import use_bf16
    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    spec = build_spec(compose(args.overrides))
    from ftx.engine.dist import apply_threads

    apply_threads(spec.train.threads)
    bf16 = use_bf16(spec.train.precision)
    path = model_mod.resolve_model_path(spec.model)
    tok = model_mod.load_tokenizer(spec.model, path)
    bs, max_len = spec.train.batch_size, spec.data.format.max_length
    modes = {}
    for name, packing, length in (("unpacked", False, None), ("packed", True, max_len), ("packed 2×", True, 2 * max_len)):
        data = copy.deepcopy(spec.data)
        data.format.packing, data.format.pack_length = packing, length
        rows = prepare(data, spec.curation, tok).train
        batches = epoch_batches(rows, bs, spec.train.seed)
        w, real = waste(batches)
        modes[name] = {"rows": len(rows), "steps": len(batches), "waste": w, "tokens": real, "batches": batches}
    modes = {"unpacked": modes["unpacked"], "bare": dict(modes["unpacked"], bare=True, heap=True),
             "packed": modes["packed"], "packed 2×": modes["packed 2×"], "packed, mask": dict(modes["packed"], mask=True),
             "packed, dropout": dict(modes["packed"], dropout=0.05), "packed, heap": dict(modes["packed"], heap=True)}

    model = model_mod.load_model(spec.model, path)
    torch.manual_seed(spec.train.seed)
    model = lora_mod.wrap(model, dataclasses.replace(spec.lora, dropout=0.05))  # p set per mode below
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    model.train()
    collate = Collator(tok.pad_token_id)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer_class()(model=model, data_collator=collate, args=TrainingArguments(
            output_dir=tmp, use_cpu=True, report_to=[], remove_unused_columns=False, bf16=bf16))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    from engine import flops_per_token, matmul_peak

    dtype = torch.bfloat16 if bf16 else torch.float32
    examples = [len(r["input_ids"]) for b in modes["unpacked"]["batches"] for r in b]
    fpt = flops_per_token(model, round(statistics.mean(examples)), spec.lora.method == "full")
    peak = matmul_peak(dtype, torch.get_num_threads())
    from ftx import memory

    def heap(plain: bool) -> None:
        """glibc's thresholds for this step: a plain process's (dynamic, at their ceiling), or ftx's."""
        lib = memory._glibc()
        if lib is None:
            return
        mmap_kb = 32 * 1024 if plain else spec.train.malloc_mmap_threshold_kb
        lib.mallopt(memory.M_MMAP_THRESHOLD, (mmap_kb or 32 * 1024) * 1024)
        lib.mallopt(M_TRIM_THRESHOLD, (2 * 32 * 1024 if plain or not mmap_kb else 128) * 1024)

    rates: dict = {name: [] for name in modes}
    for step in range(args.steps + 1):
        for name, m in modes.items():
            batch = m["batches"][step % len(m["batches"])]
            inputs = collate(batch)
            n = sum(len(r["input_ids"]) for r in batch)
            for d in dropouts:
                d.p = m.get("dropout", spec.lora.dropout)
            heap(m.get("heap", False))
            t0 = time.perf_counter()
            # the trainer's own switch (WeightedTrainer.train), per step: packed rows, unless this mode keeps the mask
            with attention.per_example(model, "position_ids" in inputs and not m.get("mask")) as on, autocast(bf16):
                trainer._packed_attention = on
                if m.get("bare"):
                    loss = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                 labels=inputs["labels"]).loss
                else:
                    loss = trainer.compute_loss(model, inputs)
                loss.backward()
            opt.step()
            opt.zero_grad()
            if step:  # the first step warms up allocators and kernels
                rates[name].append(n / (time.perf_counter() - t0))

    peak = max(peak, matmul_peak(dtype, torch.get_num_threads()))
    base = statistics.median(rates["unpacked"])
    sources = ", ".join(f"{k}={v.path}" for k, v in spec.data.sources.items() if str(v.role) == "domain")
    print(f"packing benchmark: {spec.model.name}, data={spec.data.name} ({sources}), batch {bs}, max_length {max_len}, "
          f"{'bf16' if bf16 else 'fp32'}, {torch.get_num_threads()} threads, {args.steps} timed steps per mode (medians)")
    print(f"examples: mean {statistics.mean(examples):.0f} tokens, median {statistics.median(examples):.0f}, "
          f"max {max(examples)}; model FLOPs {fpt / 1e6:.0f} M per token; matmul peak {peak / 1e9:.1f} GFLOP/s")
    bare = statistics.median(rates["bare"])
    print(f"{'mode':<16}{'rows':>7}{'steps/epoch':>13}{'pad waste':>11}{'tokens/s':>11}{'MFU':>7}{'vs unpacked':>13}"
          f"{'vs bare':>9}{'epoch (s)':>11}")
    for name, m in modes.items():
        rate = statistics.median(rates[name])
        print(f"{name:<16}{m['rows']:>7}{m['steps']:>13}{m['waste']:>10.1%}{rate:>11.0f}{rate * fpt / peak:>7.0%}"
              f"{rate / base:>12.2f}×{rate / bare:>8.2f}×{m['tokens'] / rate:>11.0f}")


if __name__ == "__main__":
    main()
