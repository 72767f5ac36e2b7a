"""LLM-as-judge: a pluggable scorer of generated answers, off by default.

A judge is any object with `name` and `score(items) -> list[float]` (0–1, higher is better), where
each item is {"prompt", "prediction", "answers"}. Built in:

  reference  deterministic, no model: best token F1 against the accepted answers (tests, baselines)
  lm         a local causal LM asked "is the candidate correct?"; score = P(yes) / (P(yes) + P(no))
             from its next-token distribution (deterministic: no sampling)

  pairwise   a local causal LM shown the question and two answers, asked which is better; P(first) =
             P("1") / (P("1") + P("2")). Run in both orders on base vs tuned (ftx.eval.suite): win rate,
             the share of verdicts that flip with the order (position bias), agreement with human reviews

`eval.judge.kind=my_pkg.judges:make` plugs in your own: `make(JudgeConfig, context) -> Judge`,
where context holds the run's `model_cfg` and base model `path`. A judge with a
`compare(items) -> list[float]` method (items {"prompt", "first", "second", "answers"}, P(first is better))
is pairwise: it judges base against tuned instead of scoring answers one by one.
"""

from __future__ import annotations

import importlib
from typing import Optional, Protocol

from ftx.errors import ConfigError
from ftx.engine.model import load_tokenizer
from ftx.eval.metrics import token_f1
from ftx.eval.paired import wilson

RUBRIC = ("You are grading an answer.\nQuestion: {prompt}\nReference answer: {reference}\n"
          "Candidate answer: {prediction}\nIs the candidate answer correct and consistent with the "
          "reference? Reply with yes or no.")


PAIRWISE_RUBRIC = ("You are comparing two answers to a question.\nQuestion: {prompt}\nReference answer: {reference}\n"
                   "Answer 1: {first}\nAnswer 2: {second}\nWhich answer is better: correct, consistent with the "
                   "reference and helpful? Reply with 1 or 2.")


class Judge(Protocol):
    name: str

    def score(self, items: list[dict]) -> list[float]: ...


class ReferenceJudge:
    name = "reference"

    def score(self, items: list[dict]) -> list[float]:
        return [token_f1(it["prediction"], it["answers"]) for it in items]


class NextTokenOdds:
    """What both LM judges share: a chat prompt, and the odds of one set of next tokens against another."""

    model = tok = None
    batch_size = 8

    def _first_ids(self, words, vocab) -> list[int]:
        ids = {self.tok.encode(w, add_special_tokens=False)[0] for w in words
               if self.tok.encode(w, add_special_tokens=False)}
        return sorted(ids)

    def _chat(self, text: str) -> list[int]:
        msgs = [{"role": "user", "content": text}]
        if getattr(self.tok, "chat_template", None):
            return list(self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False))
        return self.tok(text + "\nAnswer:", add_special_tokens=False)["input_ids"]

    def _odds(self, prompts: list[list[int]], pos: list[int], neg: list[int]) -> list[float]:
        """P(pos) / (P(pos) + P(neg)) of the next token after each prompt, batched, left-padded."""
        import torch

        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        out: list[float] = []
        self.model.eval()
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                chunk = prompts[i:i + self.batch_size]
                width = max(len(c) for c in chunk)
                ids = torch.tensor([[pad] * (width - len(c)) + c for c in chunk])
                mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk])
                probs = self.model(input_ids=ids, attention_mask=mask).logits[:, -1].float().softmax(-1)
                yes, no = probs[:, pos].sum(-1), probs[:, neg].sum(-1)
                out += (yes / (yes + no).clamp_min(1e-12)).tolist()
        return out


class LMJudge(NextTokenOdds):
    """A causal LM as judge; loaded once, scored in fp32 for determinism across runs."""

    name = "lm"

    def __init__(self, model, tok, batch_size: int = 8):
        self.model, self.tok, self.batch_size = model, tok, batch_size
        vocab = tok.get_vocab()
        self.yes = self._first_ids(("yes", "Yes", " yes", " Yes"), vocab)
        self.no = self._first_ids(("no", "No", " no", " No"), vocab)
        if not self.yes or not self.no:
            raise ConfigError("eval.judge.kind=lm: the judge tokenizer has no single tokens for yes/no")

    def _prompt(self, it: dict) -> list[int]:
        return self._chat(RUBRIC.format(prompt=it["prompt"], reference=(it["answers"] or [""])[0],
                                        prediction=it["prediction"]))

    def score(self, items: list[dict]) -> list[float]:
        return self._odds([self._prompt(it) for it in items], self.yes, self.no)


class PairwiseLMJudge(NextTokenOdds):
    """A causal LM choosing between two answers: P(first better) = P("1") / (P("1") + P("2"))."""

    name = "pairwise"

    def __init__(self, model, tok, batch_size: int = 8):
        self.model, self.tok, self.batch_size = model, tok, batch_size
        vocab = tok.get_vocab()
        one, two = set(self._first_ids(("1", " 1"), vocab)), set(self._first_ids(("2", " 2"), vocab))
        self.one, self.two = sorted(one - two), sorted(two - one)  # " 1" may start with a bare space token
        if not self.one or not self.two:
            raise ConfigError("eval.judge.kind=pairwise: the judge tokenizer has no distinct single tokens for 1/2")

    def compare(self, items: list[dict]) -> list[float]:
        prompts = [self._chat(PAIRWISE_RUBRIC.format(prompt=it["prompt"], reference=(it["answers"] or [""])[0],
                                                     first=it["first"], second=it["second"])) for it in items]
        return self._odds(prompts, self.one, self.two)


def both_orders(judge, pairs: list[dict]) -> tuple[list[dict], dict]:
    """Judge tuned against base in both orders. `pairs`: {set, id, prompt, answers, tuned, base}. Per item:
    p_tuned_first = P(tuned better) shown first, p_base_first = P(base better) shown first; the verdict is
    tuned/base when both orders agree, a tie when they disagree (a flip: the order decided) or either is 0.5.
    Items whose two answers are the same text are ties without asking the judge (`identical`), and are left
    out of the position statistics (with nothing to choose between, only the position differs)."""
    same = [p["tuned"].strip() == p["base"].strip() for p in pairs]
    asked = [p for p, s in zip(pairs, same) if not s]
    ask = lambda first, second: [{"prompt": p["prompt"], "answers": p["answers"], "first": p[first],
                                  "second": p[second]} for p in asked]
    tf, bf = (judge.compare(ask("tuned", "base")), judge.compare(ask("base", "tuned"))) if asked else ([], [])
    scores = iter(zip(tf, bf))
    rows, firsts = [], 0
    for p, s in zip(pairs, same):
        if s:
            rows.append({"set": p["set"], "id": p["id"], "verdict": "tie", "flipped": False, "identical": True})
            continue
        a, b = next(scores)
        v1 = "tuned" if a > 0.5 else "base" if a < 0.5 else "tie"  # tuned shown first
        v2 = "base" if b > 0.5 else "tuned" if b < 0.5 else "tie"  # base shown first
        firsts += (a > 0.5) + (b > 0.5)
        rows.append({"set": p["set"], "id": p["id"], "p_tuned_first": float(a), "p_base_first": float(b),
                     "verdict": v1 if v1 == v2 else "tie", "flipped": v1 != v2})
    n, k = len(rows), len(asked)
    c = {v: sum(r["verdict"] == v for r in rows) for v in ("tuned", "base", "tie")}
    flips = sum(r["flipped"] for r in rows)
    summary = {"items": n, "identical": n - k, "win": c["tuned"], "tie": c["tie"], "loss": c["base"],
               "win_rate": c["tuned"] / n if n else None, "win_rate_ci": wilson(c["tuned"], n),
               "position_flip_rate": flips / k if k else None, "first_position_rate": firsts / (2 * k) if k else None}
    return rows, summary


def load_judge(cfg, context: dict) -> Optional[Judge]:
    """The configured judge, or None when eval.judge.kind=none."""
    if cfg.kind == "none":
        return None
    if cfg.kind == "reference":
        return ReferenceJudge()
    if cfg.kind in ("lm", "pairwise"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = cfg.model or context["path"]
        tok = load_tokenizer(context["model_cfg"], path) if cfg.model is None else AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                     trust_remote_code=context["model_cfg"].trust_remote_code)
        return (LMJudge if cfg.kind == "lm" else PairwiseLMJudge)(model, tok)
    module, _, attr = cfg.kind.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"eval.judge.kind: cannot import {cfg.kind!r} ({e})") from None
    judge = factory(cfg, context)
    if not callable(getattr(judge, "score", None)) and not callable(getattr(judge, "compare", None)):
        raise ConfigError(f"eval.judge.kind: {cfg.kind!r} returned {type(judge).__name__}, "
                          "which has neither score(items) nor compare(items) (pairwise)")
    return judge
