"""`ftx chat RUN_DIR [--base]`: talk to a finished run's tuned model in the terminal, the base beside it if asked.

The models are loaded as `ftx eval` loads them (ftx.record.rerun.load_models: the base as training loaded it,
the adapter on top; with PEFT the base is the same model with the adapter switched off), prompts are rendered
with the run's chat format (its system prompt included) and answered with the run's eval.generation settings
(greedy by default) through transformers' generate, like the evaluation. Each side keeps its own history.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ftx.data.format import prepare_tokenizer
from ftx.errors import RunError
from ftx.eval.generate import generate
from ftx.eval.heldout import own_precision
from ftx.precision import use_bf16
from ftx.record.rerun import load_models
from ftx.record.rundir import load_run, run_spec


class Chat:
    def __init__(self, run_dir: Path, base: bool = False, overrides: tuple[str, ...] = ()):
        run_dir = Path(run_dir)
        adapter = run_dir / "adapter"
        if (run_dir / "config.yaml").is_file() and not ((adapter / "adapter_config.json").is_file()
                                                        or (adapter / "config.json").is_file()):
            raise RunError(f"ftx chat: {run_dir} has no trained adapter ({adapter} holds no adapter_config.json; "
                           "did the run finish?)")
        record = load_run(run_dir, finished=True)
        self.spec = spec = run_spec(record, list(overrides))
        stored = (record.metrics.get("eval") or {}).get("precision")
        self.bf16 = stored == "bf16" if stored else use_bf16(spec.train.precision)
        self.model, self.tok, _path, self.base_model = load_models(spec, run_dir, self.bf16)
        prepare_tokenizer(self.tok, spec.data.format)
        self.sides = ["tuned", "base"] if base else ["tuned"]
        self.history: dict[str, list[dict]] = {}
        self.reset()

    def reset(self) -> None:
        system = self.spec.data.format.system_prompt
        self.history = {s: ([{"role": "system", "content": system}] if system else []) for s in self.sides}

    def _model(self, side: str):
        if side == "tuned":
            return self.model, contextlib.nullcontext()
        if self.base_model is not None:
            return self.base_model, contextlib.nullcontext()
        return self.model, self.model.disable_adapter()  # PEFT: the adapter off is exactly the base

    def ask(self, prompt: str) -> dict[str, tuple[str, float]]:
        """side → (answer, seconds); the answer joins that side's history."""
        out = {}
        for side in self.sides:
            msgs = self.history[side] + [{"role": "user", "content": prompt}]
            ids = list(self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))
            model, ctx = self._model(side)
            t0 = time.perf_counter()
            with ctx, own_precision(model):
                answer = generate(model, self.tok, [ids], self.spec.eval.generation, self.bf16)[0]
            out[side] = (answer, time.perf_counter() - t0)
            self.history[side] = msgs + [{"role": "assistant", "content": answer}]
        return out
