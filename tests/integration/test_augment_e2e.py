"""`ftx augment` as a subprocess on the tiny model (moved from tests/unit/test_augment.py)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import write_jsonl
from tests.unit.test_augment import real


@pytest.mark.slow
def test_ftx_augment_cli_writes_a_usable_source(ftx):
    src = write_jsonl(ftx.cwd / "d.jsonl", real(3))
    r = ftx("augment", "model=tiny_llama", f"data.sources.http.path={src}", "~data.sources.general",
            "data.augment.max_new_tokens=8", "data.augment.min_chars=1", "data.augment.require_question=false", "--out", "synth.jsonl")
    assert r.returncode == 0, r.stderr
    stats = json.loads((ftx.cwd / "synth.stats.json").read_text())
    assert stats["source_records"] == 3 and stats["kinds"]["paraphrase"]["generated"] == 3
    lines = [json.loads(x) for x in (ftx.cwd / "synth.jsonl").read_text().splitlines()]
    assert len(lines) == sum(k["written"] for k in stats["kinds"].values())
    r = ftx("augment", "model=tiny_llama")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "the following arguments are required: --out" in r.stderr
