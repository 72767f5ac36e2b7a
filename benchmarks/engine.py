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
    from ftx import memory
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
        trainer.loss_chunk = spec.train.loss_chunk_positions(memory.vocab_size(model.config))  # as ftx train sets it
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


def defaults_worker(a) -> dict:
    """ftx at its shipped defaults (`ftx train` with no overrides but the step budget: threads auto, packed
    rows, the demo data through curation) or, with --side bare, the loop a user would write on the same
    examples: shuffled padded batches of train.batch_size, torch's default threads, forward with labels,
    backward, clip, AdamW; with --side mask, ftx's defaults with packed rows attending through the
    block-diagonal mask instead of one example at a time (ftx.engine.attention). Real (non-pad) tokens/s over
    the measured steps."""
    import contextlib
    import random
    import tempfile

    import torch

    from ftx.data.build import prepare
    from ftx.data.format import IGNORE, Collator
    from ftx.engine.build import build_model
    from ftx.engine.dist import apply_threads
    from ftx.engine.model import load_tokenizer, resolve_model_path
    from ftx.engine.optim import trainer_kwargs
    from ftx import memory
    from ftx.engine.trainer import make_trainer_class, training_arguments
    from ftx.precision import use_bf16
    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    n = a.warmup + a.steps
    spec = build_spec(compose([f"model={MODELS[a.model]}", f"train.max_steps={n}", "train.logging_steps=1000",
                               "train.save_steps=100000", "train.eval_steps=100000", *a.extra]))
    bare = a.side == "bare"
    threads = torch.get_num_threads() if bare else apply_threads(spec.train.threads)
    bf16 = use_bf16(spec.train.precision)
    path = resolve_model_path(spec.model)
    tok = load_tokenizer(spec.model, path)
    data = prepare(spec.data, spec.curation, tok)
    model = build_model(spec, path, bf16)
    bs = spec.train.batch_size
    times: list[float] = []
    real: list[int] = []
    if bare:
        rows = list(data.train_examples)
        random.Random(0).shuffle(rows)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=spec.optimizer.lr)
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        for i in range(n):
            batch = [rows[(i * bs + j) % len(rows)] for j in range(bs)]
            width = max(len(r["input_ids"]) for r in batch)
            ids = torch.tensor([r["input_ids"] + [tok.pad_token_id] * (width - len(r["input_ids"])) for r in batch])
            mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in batch])
            labels = torch.tensor([r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in batch])
            t = time.perf_counter()
            with ctx():
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, spec.optimizer.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t)
            real.append(int(mask.sum()))
    else:
        from transformers import TrainerCallback

        collate = Collator(tok.pad_token_id)

        def counting(batch):  # batches are collated in step order (a prefetch only moves it earlier)
            real.append(sum(len(r["input_ids"]) for r in batch))
            return collate(batch)

        class Clock(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                self.t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                times.append(time.perf_counter() - self.t)

        with tempfile.TemporaryDirectory() as tmp:
            args = training_arguments(spec, Path(tmp), bf16)
            trainer = make_trainer_class()(model=model, args=args, train_dataset=data.train, eval_dataset=data.val,
                                           data_collator=counting, callbacks=[Clock()],
                                           **trainer_kwargs(model, spec.optimizer, args))
            trainer.loss_chunk = spec.train.loss_chunk_positions(memory.vocab_size(model.config))
            trainer.packed_attention = a.side != "mask"  # mask: the block-diagonal mask instead
            apply_threads(spec.train.threads)  # accelerate may have reset it
            trainer.train()
    w = a.warmup
    return {"side": a.side, "extra": a.extra, "threads": threads, "packing": bool(spec.data.format.packing) and not bare,
            "real_tokens_per_s": sum(real[w:n]) / sum(times[w:n]), "step_s": statistics.median(times[w:n]),
            "real_tokens_per_step": statistics.median(real[w:n]), "batch_size": bs}


def run_defaults(model: str, side: str, extra: list[str], a) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--defaults-worker", "--side", side, "--models", model,
           "--steps", str(a.steps), "--warmup", str(a.warmup), *[f"--extra={e}" for e in extra]]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    for k in ("WORLD_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # torch's own default in the bare loop
        env.pop(k, None)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"side": side, "extra": extra, "error": (r.stderr.strip().splitlines() or ["?"])[-1][:160]}


def defaults_section(model: str, a) -> list[str]:
    """`ftx` at its shipped defaults vs the bare loop, and ftx at fixed thread counts: every variant once
    per round, rounds interleaved (machine load drifts across all alike), medians over the rounds."""
    fixed = [int(t) for t in a.thread_counts.split(",") if t]
    variants = [("defaults", "ftx", []), ("bare", "bare", []), ("block mask", "mask", [])] + [
        (f"threads={t}", "ftx", [f"train.threads={t}"]) for t in fixed] + [
        (also, "ftx", also.split(",")) for also in a.also]
    got: dict = {name: [] for name, _, _ in variants}
    t0 = time.time()
    for rnd in range(a.rounds):
        for name, side, extra in variants:
            r = run_defaults(model, side, extra, a)
            got[name].append(r)
            print(f"  {model} {name} round {rnd + 1}: {r.get('real_tokens_per_s', r.get('error'))} "
                  f"({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    med = {name: statistics.median(r["real_tokens_per_s"] for r in rs if "error" not in r)
           for name, rs in got.items() if any("error" not in r for r in rs)}
    lines = [f"{model}: ftx at its shipped defaults vs the bare loop (real tokens/s, median of {a.rounds} rounds, "
             f"{a.steps} measured steps each)",
             f"{'variant':<18}{'threads':>8}{'packed':>8}{'real tok/step':>14}{'step ms':>9}{'real tok/s':>11}"
             f"{'× bare':>8}{'runs':>16}"]
    for name, _, _ in variants:
        ok = [r for r in got[name] if "error" not in r]
        if not ok:
            lines.append(f"{name:<18}  failed: {got[name][-1].get('error')}")
            continue
        r0 = ok[0]
        runs = "/".join(f"{r['real_tokens_per_s']:.0f}" for r in ok)
        lines.append(f"{name:<18}{r0['threads']:>8}{'yes' if r0['packing'] else 'no':>8}"
                     f"{statistics.median(r['real_tokens_per_step'] for r in ok):>14.0f}"
                     f"{1000 * statistics.median(r['step_s'] for r in ok):>9.0f}{med[name]:>11.1f}"
                     f"{med[name] / med['bare'] if 'bare' in med else float('nan'):>8.2f}{runs:>16}")
    if "defaults" in med and "bare" in med:
        lines.append(f"defaults vs bare: {med['defaults'] / med['bare']:.2f}× real tokens/s (goal ≥ 1.5×)")
    best = max((t for t in fixed if f"threads={t}" in med), key=lambda t: med[f"threads={t}"], default=None)
    if best is not None and "defaults" in med:
        lines.append(f"threads: auto={got['defaults'][0].get('threads')} gives {med['defaults']:.1f} real tok/s, the "
                     f"best fixed count ({best}) {med[f'threads={best}']:.1f}: auto/best = "
                     f"{med['defaults'] / med[f'threads={best}']:.3f}")
    return lines


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
    p.add_argument("--defaults", default="smollm2", help="models for the defaults-vs-bare and thread-count "
                   "section ('' to skip)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the defaults section (medians over them)")
    p.add_argument("--thread-counts", default="1,2", help="fixed train.threads compared with auto")
    p.add_argument("--defaults-steps", type=int, default=4, help="measured steps per defaults-section worker")
    p.add_argument("--also", action="append", default=[], help="another ftx variant for the defaults section: "
                   "comma-separated overrides, e.g. --also lora.dropout=0.05 (repeatable)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--defaults-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--side", default="ftx", help=argparse.SUPPRESS)
    p.add_argument("--extra", action="append", default=[], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        a.model, a.bare = a.models, a.bare_worker
        print("RESULT " + json.dumps(defaults_worker(a) if a.defaults_worker else worker(a)), flush=True)
        return
    a.batch_for = lambda m: a.batch or (8 if m == "tiny" else 2)
    a.seq_for = lambda m: a.seq or 128
    steps = a.steps
    rows = []
    t0 = time.time()
    for model in filter(None, a.models.split(",")):
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
    a.steps = a.defaults_steps
    for model in filter(None, a.defaults.split(",")):
        print("\n".join(defaults_section(model, a)))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
