"""What one side of the evaluation suite costs on the demo (base SmolLM2-135M, demo data, eval=default).

    python benchmarks/eval_cost.py                   # eval=default, generation batch 8 vs 1
    python benchmarks/eval_cost.py --repeats 3       # medians over 3 passes
    python benchmarks/eval_cost.py -- model=tiny_llama   # any overrides after --

A training run pays this twice (base before, tuned after; the tuned side adds the unmerged LoRA
path). Prints one table; figures are medians (machines here are noisy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from ftx.data.build import prepare
    from ftx.engine import model as model_mod
    from ftx.eval.suite import Evaluator
    from ftx.precision import use_bf16
    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    rows = {}
    for batch in (8, 1):
        spec = build_spec(compose([*args.overrides, f"eval.generation.batch_size={batch}"]))
        from ftx.engine.dist import apply_threads

        apply_threads(spec.train.threads)
        path = model_mod.resolve_model_path(spec.model)
        tok = model_mod.load_tokenizer(spec.model, path)
        data = prepare(spec.data, spec.curation, tok, None)
        model = model_mod.load_model(spec.model, path)
        bf16 = use_bf16(spec.train.precision)
        ev = Evaluator(spec, tok, data, bf16, None, path)
        prompts = sum(len(v) for v in ev.prompts.values()) + len(ev.golden) + (
            len(ev.probe) if spec.eval.offdomain.generate else 0)
        # Warm-up outside the timings: first-call kernels, rouge-score/nltk and sacrebleu imports.
        from ftx.eval.generate import generate
        from ftx.eval.heldout import loss_pass
        from ftx.eval.metrics import aggregate

        aggregate(["warm up"], [["warm up"]])
        loss_pass(model, data.val[:2], ev.collator, 2, bf16)
        generate(model, tok, [ev.golden[0]["prompt_ids"]] if ev.golden else [], spec.eval.generation, bf16)
        runs = []
        for _ in range(args.repeats):
            ev.run(model, "base")
            runs.append(ev.seconds["base"])
        rows[batch] = {"total": statistics.median(r["total"] for r in runs),
                       "generation": statistics.median(r["generation"] for r in runs), "prompts": prompts}
        del model
    b8, b1 = rows[8], rows[1]
    print(f"eval cost, one side, {args.repeats} run(s), medians; overrides: {' '.join(args.overrides) or '(none)'}")
    print(f"{'prompts answered':<36}{b8['prompts']:>10d}")
    print(f"{'side total (s), gen batch 8':<36}{b8['total']:>10.1f}")
    print(f"{'  of which generation (s)':<36}{b8['generation']:>10.1f}")
    print(f"{'  loss passes etc. (s)':<36}{b8['total'] - b8['generation']:>10.1f}")
    print(f"{'generation s/prompt, batch 8':<36}{b8['generation'] / max(b8['prompts'], 1):>10.2f}")
    print(f"{'generation s/prompt, batch 1':<36}{b1['generation'] / max(b1['prompts'], 1):>10.2f}")
    print(f"{'batch 1 / batch 8 generation time':<36}{b1['generation'] / max(b8['generation'], 1e-9):>10.2f}")
    print(f"{'estimated eval cost of a run (s)':<36}{2 * b8['total']:>10.1f}")


if __name__ == "__main__":
    main()
