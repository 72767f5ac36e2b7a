"""Engine benchmark: training throughput and memory per quant × zero, ftx vs a bare loop, MFU.

    python benchmarks/engine.py                                  # tiny + SmolLM2, a few minutes
    python benchmarks/engine.py --models tiny --steps 20         # quick
    python benchmarks/engine.py --models smollm2 --batch 4 --seq 256 --steps 12 --threads 2

Every configuration runs in its own process (clean peak memory; DeepSpeed state is per process):
  - ftx: the run's own model build (ftx.engine.build.build_model) and Trainer (ftx.engine.trainer), the same
    WeightedTrainer loss, DeepSpeed config and optimizer a `ftx train` run uses, on fixed batches;
  - ftx vs bare (one extra process per compared quant option, zero=none): the same model built
    twice; a hand-written transformers+peft loop (forward with labels, backward, clip, AdamW step)
    runs one step right after each ftx step on the same batch, so both see the same machine load.
Step times are medians over the measured steps (after warm-up). tokens/s counts every position of
the batch. Peak memory is the process's max RSS (includes ~0.4–0.6 GB of Python/torch/libraries).
MFU = model FLOPs/s ÷ the matmul peak measured in this run at the same dtype and thread count;
model FLOPs per token = 2·(matmul params) forward + the same backward for activations (+ the same
again for weight gradients when every weight trains), + attention scores; frozen 4-bit/8-bit
weights count at their logical size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = {"tiny": "tiny_llama", "smollm2": "smollm2_135m"}


def matmul_peak(dtype, threads: int, n: int = 1024, reps: int = 8) -> float:
    """Best FLOP/s of an n×n matmul in this process (same dtype and thread count as training)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def flops_per_token(model, seq: int, full: bool) -> float:
    import torch

    matmul = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and "lora_" not in type(m).__name__:
            matmul += m.in_features * m.out_features  # logical size, also for 4-bit/8-bit layers
    cfg = model.config
    attn = 2 * cfg.num_hidden_layers * seq * cfg.hidden_size  # QK^T and AV per token, forward
    forward = 2 * matmul + 2 * attn
    return forward * (3 if full else 2)


def make_batches(vocab: int, batch: int, seq: int, n: int) -> list[dict]:
    import torch

    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (batch, seq), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone(),
                    "loss_weight": torch.ones(batch, seq)})
    return out


def worker(a) -> dict:
    """One configuration, measured inside this process."""
    import torch

    from ftx.engine.build import build_model
    from ftx.engine.dist import apply_threads
    from ftx.engine.model import resolve_model_path
    from ftx.engine.optim import trainer_kwargs
    from ftx.engine.trainer import make_trainer_class, training_arguments
    from ftx.engine.zero import prepare_deepspeed
    from ftx.precision import use_bf16
    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    overrides = [f"model={MODELS[a.model]}", f"quant={a.quant}", f"zero={a.zero}", f"train.threads={a.threads}",
                 f"train.batch_size={a.batch}", f"train.max_steps={a.warmup + a.steps}", "train.logging_steps=1000",
                 "train.save_steps=100000", "train.eval_steps=100000", f"train.precision={a.precision}",
                 "lora.dropout=0.0", "optimizer.warmup_ratio=0.0"]
    spec = build_spec(compose(overrides))
    apply_threads(spec.train.threads)
    bf16 = use_bf16(spec.train.precision)
    path = resolve_model_path(spec.model)
    t0 = time.time()
    model = build_model(spec, path, bf16)
    load_s = time.time() - t0
    vocab = model.config.vocab_size
    batches = make_batches(vocab, a.batch, a.seq, a.warmup + a.steps)
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    fpt = flops_per_token(model, a.seq, spec.lora.method == "full")

    class Fixed(torch.utils.data.Dataset):  # the batches, one example at a time, in order
        def __init__(self):
            self.rows = [{k: v[i] for k, v in b.items()} for b in batches for i in range(a.batch)]

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return self.rows[i]

    def collate(rows):
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    bare = make_bare(spec, path, bf16) if a.bare else None  # built before training: same conditions
    times: list[float] = []
    bare_times: list[float] = []
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)
            if bare is not None:  # interleaved: ftx step, bare step, ftx step, …
                bare_times.append(bare(batches[len(times) - 1]))

    prepare_deepspeed(spec.zero)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args = training_arguments(spec, Path(tmp), bf16)
        args.train_sampling_strategy = "sequential"  # the batches in order, as the bare loop sees them
        args.dataloader_drop_last = True
        apply_threads(spec.train.threads)  # accelerate may have reset it
        Trainer = make_trainer_class()
        trainer = Trainer(model=model, args=args, train_dataset=Fixed(), eval_dataset=Fixed(), data_collator=collate,
                          callbacks=[Clock()], **trainer_kwargs(model, spec.optimizer, args))
        trainer.train()
    dtype = torch.bfloat16 if bf16 else torch.float32
    result = {"model": a.model, "quant": a.quant, "zero": a.zero, "bf16": bf16, "threads": a.threads,
              "tokens_per_step": a.batch * a.seq, "ftx_step_s": statistics.median(times[a.warmup:]),
              "load_s": load_s, "weights_mb": weights_mb, "flops_per_token": fpt,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "matmul_peak_flops": matmul_peak(dtype, a.threads)}
    if bare is not None:
        result["bare_step_s"] = statistics.median(bare_times[a.warmup:])
    return result


def make_bare(spec, path, bf16: bool):
    """transformers + peft by hand, what ftx's step is compared against: returns step(batch) → seconds."""
    import contextlib

    import torch

    from ftx.engine.build import build_model

    model = build_model(spec, path, bf16)  # same base, quantisation, adapter and seed
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec.optimizer.lr, weight_decay=0.0)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step(b: dict) -> float:
        t = time.perf_counter()
        with ctx():
            loss = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, spec.optimizer.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    return step


def run_config(model: str, quant: str, zero: str, a, bare: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--models", model, "--quant", quant, "--zero", zero,
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch", str(a.batch_for(model)),
           "--seq", str(a.seq_for(model)), "--threads", str(a.threads), "--precision", a.precision]
    if bare:
        cmd.append("--bare-worker")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"model": model, "quant": quant, "zero": zero, "error": (r.stderr.strip().splitlines() or ["?"])[-1][:120]}


def table(rows: list[dict]) -> str:
    head = (f"{'model':<8}{'quant':<6}{'zero':<6}{'tok/s':>9}{'step ms':>9}{'peak RSS MB':>12}{'weights MB':>11}"
            f"{'MFU %':>7}{'bare tok/s':>11}{'ftx/bare':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:<8}{r['quant']:<6}{r['zero']:<6}  failed: {r['error']}")
            continue
        tps = r["tokens_per_step"] / r["ftx_step_s"]
        mfu = 100 * tps * r["flops_per_token"] / r["matmul_peak_flops"]
        pair = r.get("pair")
        bare_tps = f"{r['tokens_per_step'] / pair['bare_step_s']:11.0f}" if pair else f"{'-':>11}"
        ratio = f"{pair['bare_step_s'] / pair['ftx_step_s']:9.3f}" if pair else f"{'-':>9}"
        lines.append(f"{r['model']:<8}{r['quant']:<6}{r['zero']:<6}{tps:9.0f}{1000 * r['ftx_step_s']:9.1f}"
                     f"{r['peak_rss_mb']:12.0f}{r['weights_mb']:11.1f}{mfu:7.2f}{bare_tps}{ratio}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="tiny,smollm2")
    p.add_argument("--quant", default="none,int8,nf4")
    p.add_argument("--zero", default="none,zero2")
    p.add_argument("--steps", type=int, default=None, help="measured steps (default: tiny 20, smollm2 6)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="default: tiny 8, smollm2 2")
    p.add_argument("--seq", type=int, default=None, help="default: tiny 128, smollm2 128")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    p.add_argument("--bare", default="first", choices=("first", "all", "off"),
                   help="compare against a bare transformers+peft loop for the first quant option (default), "
                        "every quant option, or none (zero=none only; an extra worker each)")
    p.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the raw rows here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        a.model, a.bare = a.models, a.bare_worker
        print("RESULT " + json.dumps(worker(a)), flush=True)
        return
    a.batch_for = lambda m: a.batch or (8 if m == "tiny" else 2)
    a.seq_for = lambda m: a.seq or 128
    steps = a.steps
    rows = []
    t0 = time.time()
    for model in a.models.split(","):
        a.steps = steps or (20 if model == "tiny" else 6)
        for i, quant in enumerate(a.quant.split(",")):
            for zero in a.zero.split(","):
                rows.append(run_config(model, quant, zero, a))
                print(f"  {model} quant={quant} zero={zero}: done ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
            if a.bare == "all" or (a.bare == "first" and i == 0):
                pair = run_config(model, quant, "none", a, bare=True)
                for r in rows:
                    if (r["model"], r["quant"], r["zero"]) == (model, quant, "none") and "error" not in pair:
                        r["pair"] = pair
                print(f"  {model} quant={quant}: ftx vs bare, interleaved ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    ok = [r for r in rows if "error" not in r]
    import torch

    print(f"ftx engine benchmark — torch {torch.__version__}, {a.threads} thread(s), "
          f"{'bf16' if ok and ok[0]['bf16'] else 'fp32'} compute, batch×seq tiny "
          f"{a.batch_for('tiny')}×{a.seq_for('tiny')} / smollm2 {a.batch_for('smollm2')}×{a.seq_for('smollm2')}, "
          f"medians over measured steps")
    if ok:
        peaks = sorted({round(r["matmul_peak_flops"] / 1e9) for r in ok})
        print(f"matmul peak measured in this run: {peaks[0]}–{peaks[-1]} GFLOP/s (1024² matmul, per worker)")
    print(table(rows))
    for r in ok:
        if r.get("pair"):
            p_ = r["pair"]
            print(f"{r['model']} quant={r['quant']}: ftx step {1000 * p_['ftx_step_s']:.1f} ms vs bare transformers+peft "
                  f"{1000 * p_['bare_step_s']:.1f} ms on the same batches, interleaved step by step in one process: "
                  f"ratio {p_['bare_step_s'] / p_['ftx_step_s']:.3f} (target ≥ 0.95)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
