"""Synthetic augmentation: the model writes marked records with a source pointer; they pass curation,
keep their own loss weight to the loss, never reach validation, and never leak a held-out record."""

from __future__ import annotations

import json

import pytest

from ftx.data.augment import AugmentConfig, augment, clean
from ftx.data.build import prepare
from ftx.engine.model import load_model, load_tokenizer
from ftx.errors import ConfigError
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig, FormatConfig, SourceConfig
from tests.helpers import TINY, write_jsonl

TOPICS = "cache cookie header proxy status redirect etag range socket token".split()


def real(n=30):
    return [{"id": f"d{i}", "prompt": f"What does the {TOPICS[i % 10]} field number {i} control in HTTP?",
             "response": f"The {TOPICS[i % 10]} field number {i} controls how item {i} is handled by servers."}
            for i in range(n)]


def test_the_model_writes_marked_records_pointing_to_their_source(monkeypatch):
    tok, model = load_tokenizer(TINY), load_model(TINY).eval()
    recs = [{"id": "a", "messages": [{"role": "user", "content": "What is an ETag?"},
                                     {"role": "assistant", "content": "A validator of a resource version."}]},
            {"id": "b", "text": "Range requests fetch part of a resource."}]
    out, stats = augment(recs, model, tok, AugmentConfig(max_new_tokens=12, min_chars=1,
                                                                     require_question=False))
    # paraphrase: only the record with a question; backtranslate: both.
    assert stats["paraphrase"]["generated"] == 1 and stats["backtranslate"]["generated"] == 2
    assert all(s["generated"] == s["written"] + s["empty"] + s["not_question"] + s["copied"] for s in stats.values())
    assert len(out) == sum(s["written"] for s in stats.values())
    for r in out:
        assert r["synthetic"] is True and r["source_id"] in ("a", "b") and r["augment"] in ("paraphrase", "backtranslate")
        assert r["response"] == {"a": "A validator of a resource version.",
                                 "b": "Range requests fetch part of a resource."}[r["source_id"]]
    assert clean('\n Question: "What is a cookie?"\nmore') == "What is a cookie?"
    # The filters: a statement, a copy of the response and a too-short line are rejected, a question kept.
    strict = AugmentConfig(kinds=["backtranslate"])
    fake = {"The ETag is a validator.": "not_question", "A validator of a resource version?": "copied",
            "Why?": "empty", "What does an ETag validate?": None}
    for text, why in fake.items():  # the "generation" is the text to classify
        monkeypatch.setattr("ftx.data.augment._generate", lambda m, t, prompts, c, text=text: [[text] for _ in prompts])
        got, st = augment(recs[:1], model, tok, strict)
        assert (len(got) == 1) if why is None else st["backtranslate"][why] == 1, text
    with pytest.raises(ConfigError, match="data.augment.kinds"):
        AugmentConfig(kinds=["translate"]).check()


def test_synthetic_records_carry_mark_and_weight_to_the_loss_and_stay_out_of_validation(tmp_path):
    dom = real()
    dom.append({"id": "flagged", "prompt": "Which header carries cookies back to the server?",
                "response": "The Cookie request header carries them back.", "synthetic": True})
    synth = [{"id": f"{r['id']}~para0", "prompt": f"Explain what {r['prompt'][10:]}", "response": r["response"],
              "synthetic": True, "source_id": r["id"]} for r in dom[:30]]
    data = DataConfig(sources={"http": SourceConfig(path=str(write_jsonl(tmp_path / "d.jsonl", dom))),
                               "synth": SourceConfig(path=str(write_jsonl(tmp_path / "s.jsonl", synth)),
                                                     role="synthetic")},
                      format=FormatConfig(max_length=96))
    data.split.decontaminate = False
    cur = CurationConfig(enabled=True, stages=["normalize", "quality", "exact_dedup"], cache_dir=None)
    cur.quality.min_words = 3
    prep = prepare(data, cur, load_tokenizer(TINY), tmp_path)
    val_ids = {e["id"] for e in prep.val}
    train = {e["id"]: e for e in prep.train}
    assert not any("~" in i or i == "flagged" for i in val_ids)          # validation is real data only
    assert val_ids and all(f"{v}~para0" not in train for v in val_ids)    # no paraphrase of a held-out record
    leaks = [d for d in prep.ledger.dropped_records if d["reason"] == "derived_from_held_out"]
    assert {d["record"]["source_id"] for d in leaks} == val_ids
    synth_train = [e for i, e in train.items() if "~" in i]
    assert synth_train and all(e["weight"] == 0.5 for e in synth_train)
    for e in synth_train:  # response tokens carry the synthetic weight into the loss, prompt tokens 0
        assert {w for w in e["loss_weight"] if w} == {0.5}
    assert train["flagged"]["weight"] == 0.5  # flagged inside a domain source: still synthetic after curation
    assert all(e["weight"] == 1.0 for i, e in train.items() if i.startswith("d") and "~" not in i)
    report = json.loads((tmp_path / "curation" / "report.json").read_text())
    assert report["synthetic"]["in"] == 31  # the synthetic records went through the same curation stages
