"""Generation metrics against lists of accepted answers: exact match, containment, token F1,
ROUGE-L (rouge-score) and BLEU (sacrebleu).

Answers are compared after SQuAD-style normalisation (Unicode NFKC, lower case, punctuation and
English articles removed, whitespace collapsed). Per-example scores take the best accepted answer;
BLEU is corpus-level over all references (0–100, sacrebleu's scale); the others are 0–1.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    p = normalize(prediction)
    return float(any(p == normalize(a) for a in answers))


def contains(prediction: str, answers: Sequence[str]) -> float:
    """1 when some accepted answer occurs as a whole-token phrase in the prediction."""
    p = f" {normalize(prediction)} "
    return float(any(normalize(a) and f" {normalize(a)} " in p for a in answers))


def _f1(pred: list[str], ref: list[str]) -> float:
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1 against the best accepted answer."""
    pred = tokens(prediction)
    return max((_f1(pred, tokens(a)) for a in answers), default=0.0)


class _Tokenizer:
    """rouge-score's default tokenizer drops every non-ASCII letter; use our normalisation instead."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())


def rouge_l(prediction: str, answers: Sequence[str]) -> float:
    """ROUGE-L F-measure against the best accepted answer."""
    return max((_rouge().score(a, prediction)["rougeL"].fmeasure for a in answers), default=0.0)


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu, 13a tokenisation); examples may have different numbers of references."""
    import sacrebleu

    if not predictions:
        return 0.0
    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return float(sacrebleu.corpus_bleu(list(predictions), streams).score)


def score_example(prediction: str, answers: Sequence[str]) -> dict:
    return {"exact_match": exact_match(prediction, answers), "contains": contains(prediction, answers),
            "token_f1": token_f1(prediction, answers), "rouge_l": rouge_l(prediction, answers)}


def aggregate(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> tuple[dict, list[dict]]:
    """Mean per-example scores plus corpus BLEU; and the per-example scores."""
    per = [score_example(p, a) for p, a in zip(predictions, answers)]
    n = len(per)
    summary = {k: (sum(e[k] for e in per) / n if n else None)
               for k in ("exact_match", "contains", "token_f1", "rouge_l")}
    summary["bleu"] = bleu(predictions, answers) if n else None
    summary["n"] = n
    return summary, per
