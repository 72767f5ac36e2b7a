"""Crafted data and CLI arguments shared by the engine tests (tiny model, seconds per run)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.helpers import write_jsonl

COLOURS = ["red", "green", "blue", "amber", "violet", "cyan", "white", "black"]
THINGS = ["kettle", "lamp", "river", "engine", "garden", "ladder", "mirror", "window", "tower", "bridge"]


def write_data(root: Path, n_domain: int = 80, n_general: int = 30) -> tuple[Path, Path]:
    """A learnable toy domain (things have colours) and a little general data, as prompt/response."""
    r = random.Random(0)
    domain = [{"id": f"d{i}", "prompt": f"What colour is the {t} number {i}?",
               "response": f"The {t} number {i} is {COLOURS[(i + len(t)) % len(COLOURS)]}."}
              for i, t in ((i, r.choice(THINGS)) for i in range(n_domain))]
    general = [{"id": f"g{i}", "prompt": f"Count to {i % 7 + 2}.",
                "response": " ".join(str(k) for k in range(1, i % 7 + 3))} for i in range(n_general)]
    return write_jsonl(root / "domain.jsonl", domain), write_jsonl(root / "general.jsonl", general)


def tiny_args(root: Path, *extra: str) -> list[str]:
    """`ftx train` arguments for a seconds-long run of the tiny model on the crafted data."""
    d, g = write_data(root)
    return ["train", "experiment=tiny_smoke", "curation=none",  # templated toy data: curation is not the subject
            f"data.sources.http.path={d}", f"data.sources.general.path={g}", *extra]


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def step_losses(run_dir: Path) -> dict[int, float]:
    """Training loss per logged step from metrics.jsonl (a resumed run's later entries win)."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        e = json.loads(line)
        if "loss" in e:
            out[e["step"]] = e["loss"]
    return out
