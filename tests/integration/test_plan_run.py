"""The data plan through the CLI: `ftx spec` shows it, a run records the split manifest and achieved mix."""

from __future__ import annotations

import json
import random
import re

import pytest

from tests.helpers import only_run_dir, write_jsonl

TOPICS = "cache cookie header proxy status redirect etag range socket token".split()


@pytest.fixture
def crafted(ftx):
    rng = random.Random(0)
    dom = [{"id": f"d{i}", "prompt": f"What does {rng.choice(TOPICS)} {i} do?",
            "response": f"It handles {rng.choice(TOPICS)} number {i}.",
            "scores": {"relevance": rng.random()}} for i in range(40)]
    dom.append(dict(dom[3], id="d3-copy"))  # an exact duplicate: same content hash, same split
    gen = [{"id": f"g{i}", "prompt": f"Name a colour {i}.", "response": f"Colour {i} is blue."} for i in range(30)]
    d = write_jsonl(ftx.cwd / "dom.jsonl", dom)
    g = write_jsonl(ftx.cwd / "gen.jsonl", gen)
    return [f"data.sources.http.path={d}", f"data.sources.general.path={g}", "model=tiny_llama", "curation=none",
            "data.format.max_length=128"]


def test_spec_shows_the_data_plan_and_with_data_the_counts(ftx, crafted):
    r = ftx("spec", *crafted, "data.mix.domain_ratio=0.75", "data.format.packing=true", timeout=300)
    assert r.returncode == 0, r.stderr
    plan = [l for l in r.stdout.splitlines() if l.startswith("#   ") or l.startswith("# data plan")]
    text = "\n".join(plan)
    assert "source http: role=domain weight=1" in text and "source general: role=general" in text
    assert "domain val 0.15" in text and "8-gram overlap >= 0.5" in text
    assert "mix: domain 0.75 / general 0.25, counted in examples; short side: downsample" in text
    assert "curriculum: none" in text and "packing=on, 128 tokens/row" in text
    assert "train mix:" not in r.stdout, "counts need --data"
    r = ftx("spec", *crafted, "data.mix.domain_ratio=0.75", "data.format.packing=true", "--data", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "# data counts:" in r.stdout and "records per split: train" in r.stdout
    n, share = re.search(r"train mix: (\d+) examples .* domain share ([0-9.]+) of examples", r.stdout).groups()
    assert abs(float(share) - 0.75) <= 1 / int(n), "within one example of the target"
    assert "packing:" in r.stdout and "rows of 128" in r.stdout


def test_bad_plan_input_on_the_command_line_is_one_line(ftx, crafted):
    r = ftx("train", *crafted, "data.mix.domain_ratio=1.3", timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["ftx: config error: data.mix.domain_ratio: must be in [0, 1] "
                                             "(0.8 = 80% domain), got 1.3"]
    r = ftx("spec", *crafted, "data.format.template=llama3", "--data", timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "data.format.template=llama3: the tokenizer lacks its special tokens" in r.stderr


@pytest.mark.slow
def test_a_run_records_split_manifest_achieved_mix_and_applies_the_plan(ftx, crafted):
    r = ftx("train", "experiment=tiny_smoke", *crafted, "data.mix.domain_ratio=0.75", "data.mix.unit=tokens",
            "data.format.packing=true", "data.curriculum.strategy=score", "data.format.prompt_loss_weight=0.1",
            "train.max_steps=2", "eval.base_vs_tuned=false", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run_dir(ftx.cwd)
    manifest = json.loads((run / "data" / "split_manifest.json").read_text())
    stats = json.loads((run / "data" / "stats.json").read_text())
    where = {e["id"]: s for s in ("train", "val", "test", "general_eval") for e in manifest[s]}
    assert where["d3"] == where["d3-copy"], "identical records share a split"
    assert not {e["sha256"] for e in manifest["val"]} & {e["sha256"] for e in manifest["train"]}
    m = stats["mix"]
    assert m["unit"] == "tokens" and m["off_target_examples"] <= 1.0
    assert set(m["by_source"]) == {"http", "general"} and all(v["tokens"] > 0 for v in m["by_source"].values())
    assert stats["curriculum"]["strategy"] == "score"
    scores = stats["curriculum"]["first_scores"]
    assert scores == sorted(scores, reverse=True)
    assert stats["packing"]["rows"] < stats["packing"]["examples"]
    assert len(manifest["train_order"]) == stats["train"]["examples"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["mix"] == m
