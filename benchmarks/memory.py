"""Memory benchmark: peak resident memory per stage of a real `ftx train` run of SmolLM2-135M LoRA.

    python benchmarks/memory.py                                # 4×1024 then 4×256, packing off/on, quant none/nf4
    python benchmarks/memory.py --shapes 4x1024 --quant none --packing off --before
    python benchmarks/memory.py --out /tmp/membench --steps 2
    python benchmarks/memory.py --shapes 4x1024 --packing off --quant none -- train.malloc_mmap_threshold_kb=0

Each case is one `ftx train` process (clean peak) on a synthetic FAQ set whose answers fill the row
(~90% of max_length), so every batch is batch × max_length tokens. The stages are the ones the run itself
records in metrics.json `memory` (resident-set sampling every 50 ms in a thread, ftx/memory.py): data,
model (load, quantise, wrap), base_eval (with base_generate), train (every step; train_eval: evaluation
during training), tuned_eval (tuned_generate), save. `--before` adds, for each case, the run as ftx made it
before the memory work: the full-logits loss and no gradient checkpointing (train.loss_chunk=0
train.gradient_checkpointing=false), so the table shows before and after from the same machine and data.
"largest" is the stage at the run's peak and, from the run's own plan (metrics.json memory.plan), the
largest planned contributor of a training step there (activations, loss logits or the weights' share).
The 4×1024 cases run first: they are the point.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STAGES = ("data", "model", "base_eval", "base_generate", "train", "train_eval", "tuned_eval", "tuned_generate",
          "save")
WORDS = ("kettle lamp river engine garden ladder mirror window tower bridge valve pump sensor cable router "
         "switch module filter gasket bearing").split()


def write_data(folder: Path, length: int, n: int = 40) -> tuple[Path, Path]:
    """FAQ records whose answers are about `length` tokens (~14 tokens a sentence); rows run cut to max_length
    (truncation=truncate), so every row fills it."""
    r = random.Random(length)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        sentences = [f"The {r.choice(WORDS)} of unit {r.randint(1, 99)} needs check {r.randint(1, 9)}."
                     for _ in range(int(length / 12))]
        rows.append({"id": f"q{i}", "prompt": f"How do I service the {r.choice(WORDS)} number {i}?",
                     "response": " ".join(sentences)})
    general = [{"id": f"g{i}", "prompt": f"Count to {i % 7 + 2}.",
                "response": " ".join(str(k) for k in range(1, i % 7 + 3))} for i in range(20)]
    d, g = folder / f"faq_{length}.jsonl", folder / "general.jsonl"
    d.write_text("".join(json.dumps(x) + "\n" for x in rows))
    g.write_text("".join(json.dumps(x) + "\n" for x in general))
    return d, g


def run_case(out: Path, batch: int, length: int, packing: bool, quant: str, before: bool, steps: int,
             threads: int, extra: tuple[str, ...] = ()) -> dict:
    name = f"{batch}x{length}_{'pack' if packing else 'nopack'}_{quant}{'_before' if before else ''}"
    if extra:
        name += "_" + "_".join(re.sub(r"[^A-Za-z0-9.]+", "-", x) for x in extra)
    d, g = write_data(out / "data", length)
    run_dir = out / name
    args = [sys.executable, "-m", "ftx", "train", "model=smollm2_135m", "curation=none",
            f"data.sources.http.path={d}", f"data.sources.general.path={g}",
            f"data.format.max_length={length}", "data.format.truncation=truncate",
            f"data.format.packing={str(packing).lower()}",
            f"quant={quant}", f"train.batch_size={batch}", f"train.max_steps={steps}", "train.eval_steps=1",
            "train.save_steps=0", f"train.threads={threads}", "eval.max_examples=8",
            "eval.generation.max_examples=4", "eval.generation.max_new_tokens=16", "eval.golden.path=null",
            "tracking=none", f"hydra.run.dir={run_dir}"]
    if before:
        args += ["train.loss_chunk=0", "train.gradient_checkpointing=false"]
    args += list(extra)
    t0 = time.time()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"name": name, "error": " | ".join(tail), "seconds": seconds}
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"name": name, "seconds": round(seconds), "memory": m["memory"], "train_loss": m["train"]["loss"],
            "val_loss": m.get("tuned", {}).get("val_loss")}


def largest(r: dict) -> str:
    mem = r["memory"]
    plan = mem.get("plan") or {}
    peak = mem.get("peak", {})
    parts = {"activations": plan.get("activations_mb") if not plan.get("gradient_checkpointing")
             else plan.get("checkpointed_mb"), "loss logits": plan.get("loss_mb")}
    top = max(parts, key=lambda k: parts[k] or 0)
    return f"{peak.get('stage')}: {top} ~{parts[top]} MB planned"


def table(results: list[dict]) -> str:
    head = ["case", *STAGES, "peak", "largest at peak", "train loss", "val loss", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} |")
            continue
        mem = r["memory"]
        cells = [f"{mem[s]['rss_mb']:.0f}" if s in mem else "–" for s in STAGES]
        lines.append("| " + " | ".join([r["name"], *cells, f"**{mem['peak']['rss_mb']:.0f}**", largest(r),
                                        f"{r['train_loss']:.4f}", f"{r['val_loss']:.4f}" if r["val_loss"] else "–",
                                        str(r["seconds"])]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="4x1024,4x256")
    ap.add_argument("--packing", default="off,on")
    ap.add_argument("--quant", default="none,nf4")
    ap.add_argument("--before", action="store_true", help="also run each case as before (full logits, no checkpointing)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ftx_membench"))
    ap.add_argument("extra", nargs="*", help="more ftx overrides for every case (after --), e.g. eval.batch_size=4")
    a = ap.parse_args()
    results = []
    for shape in a.shapes.split(","):
        batch, length = (int(x) for x in shape.split("x"))
        for packing in a.packing.split(","):
            for quant in a.quant.split(","):
                for before in ((True, False) if a.before else (False,)):
                    r = run_case(a.out, batch, length, packing == "on", quant, before, a.steps, a.threads,
                                 tuple(a.extra))
                    results.append(r)
                    print(json.dumps(r), flush=True)
    print("peak RSS per stage, MB (metrics.json memory)")
    print(table(results))


if __name__ == "__main__":
    main()
