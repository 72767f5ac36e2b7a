"""The dataset of the shipped lm-evaluation-harness task `ftx_general_qa` (ftx_general_qa.yaml names
`load` with `custom_dataset: !function`; lm-eval resolves the file next to the YAML, so the task works
from a checkout and from an installed wheel alike). Reads the demo's general Q&A and builds 4-way
multiple choice from it; imports nothing of ftx."""

from __future__ import annotations

import json
import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "demo" / "general_qa.jsonl"
CHOICES = 4


def first_sentence(text: str) -> str:
    """The direct answer: the demo's responses open with it (up to the first full stop before a space)."""
    m = re.match(r"(.+?[.!?])(\s|$)", text.strip())
    return (m.group(1) if m else text).strip()


def docs(path: Path = SOURCE) -> list[dict]:
    """One {id, question, choices, label} per question: its own first sentence and those of the next
    CHOICES − 1 questions in the file (the same topic), the right answer rotated to position i mod CHOICES."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    answers = [first_sentence(r["response"]) for r in rows]
    out = []
    for i, r in enumerate(rows):
        others = [answers[(i + k) % len(rows)] for k in range(1, CHOICES)]
        label = i % CHOICES
        out.append({"id": r["id"], "question": r["prompt"], "choices": others[:label] + [answers[i]] + others[label:],
                    "label": label})
    return out


def load(**kwargs):
    """lm-eval's `custom_dataset` hook (called with the task's metadata and dataset_kwargs): a DatasetDict
    with one `test` split."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs())})
