"""LLM-as-judge: a pluggable scorer of generated answers, off by default.

A judge is any object with `name` and `score(items) -> list[float]` (0–1, higher is better), where
each item is {"prompt", "prediction", "answers"}. Built in:

  reference  deterministic, no model: best token F1 against the accepted answers (tests, baselines)
  lm         a local causal LM asked "is the candidate correct?"; score = P(yes) / (P(yes) + P(no))
             from its next-token distribution (deterministic: no sampling)

`eval.judge.kind=my_pkg.judges:make` plugs in your own: `make(JudgeConfig, context) -> Judge`,
where context holds the run's `model_cfg` and base model `path`.
"""

from __future__ import annotations

import importlib
from typing import Optional, Protocol

from ftx.errors import ConfigError
from ftx.engine.model import load_tokenizer
from ftx.eval.metrics import token_f1

RUBRIC = ("You are grading an answer.\nQuestion: {prompt}\nReference answer: {reference}\n"
          "Candidate answer: {prediction}\nIs the candidate answer correct and consistent with the "
          "reference? Reply with yes or no.")


class Judge(Protocol):
    name: str

    def score(self, items: list[dict]) -> list[float]: ...


class ReferenceJudge:
    name = "reference"

    def score(self, items: list[dict]) -> list[float]:
        return [token_f1(it["prediction"], it["answers"]) for it in items]


class LMJudge:
    """A causal LM as judge; loaded once, scored in fp32 for determinism across runs."""

    name = "lm"

    def __init__(self, model, tok, batch_size: int = 8):
        self.model, self.tok, self.batch_size = model, tok, batch_size
        vocab = tok.get_vocab()
        self.yes = self._first_ids(("yes", "Yes", " yes", " Yes"), vocab)
        self.no = self._first_ids(("no", "No", " no", " No"), vocab)
        if not self.yes or not self.no:
            raise ConfigError("eval.judge.kind=lm: the judge tokenizer has no single tokens for yes/no")

    def _first_ids(self, words, vocab) -> list[int]:
        ids = {self.tok.encode(w, add_special_tokens=False)[0] for w in words
               if self.tok.encode(w, add_special_tokens=False)}
        return sorted(ids)

    def _prompt(self, it: dict) -> list[int]:
        text = RUBRIC.format(prompt=it["prompt"], reference=(it["answers"] or [""])[0],
                             prediction=it["prediction"])
        msgs = [{"role": "user", "content": text}]
        if getattr(self.tok, "chat_template", None):
            return list(self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False))
        return self.tok(text + "\nAnswer:", add_special_tokens=False)["input_ids"]

    def score(self, items: list[dict]) -> list[float]:
        import torch

        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        out: list[float] = []
        self.model.eval()
        with torch.no_grad():
            for i in range(0, len(items), self.batch_size):
                chunk = [self._prompt(it) for it in items[i:i + self.batch_size]]
                width = max(len(c) for c in chunk)
                ids = torch.tensor([[pad] * (width - len(c)) + c for c in chunk])
                mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk])
                probs = self.model(input_ids=ids, attention_mask=mask).logits[:, -1].float().softmax(-1)
                yes, no = probs[:, self.yes].sum(-1), probs[:, self.no].sum(-1)
                out += (yes / (yes + no).clamp_min(1e-12)).tolist()
        return out


def load_judge(cfg, context: dict) -> Optional[Judge]:
    """The configured judge, or None when eval.judge.kind=none."""
    if cfg.kind == "none":
        return None
    if cfg.kind == "reference":
        return ReferenceJudge()
    if cfg.kind == "lm":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = cfg.model or context["path"]
        tok = load_tokenizer(context["model_cfg"], path) if cfg.model is None else AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                     trust_remote_code=context["model_cfg"].trust_remote_code)
        return LMJudge(model, tok)
    module, _, attr = cfg.kind.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"eval.judge.kind: cannot import {cfg.kind!r} ({e})") from None
    judge = factory(cfg, context)
    if not callable(getattr(judge, "score", None)):
        raise ConfigError(f"eval.judge.kind: {cfg.kind!r} returned {type(judge).__name__}, "
                          "which has no score(items) method")
    return judge
