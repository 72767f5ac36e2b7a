"""Formatting on the tiny tokenizer: templates, prompt masking and weights, system prompt, truncation,
packing and the collator; packed and unpacked batches give the same per-example loss."""

from __future__ import annotations

import copy

import pytest

from ftx.data import format as fmt
from ftx.data.ledger import Ledger
from ftx.engine.model import load_model, load_tokenizer
from ftx.errors import ConfigError, DataError
from ftx.spec.data import FormatConfig
from ftx.spec.model import ModelConfig
from tests.helpers import TINY


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(TINY)


def chat(i, prompt="what is a cache?", answer="a store", **extra):
    r = {"id": str(i), "source": "s", "role": "domain", "weight": 1.0, "text": None,
         "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
    r.update(extra)
    return r


def decode_where(tok, ex, pred):
    return tok.decode([t for t, keep in zip(ex["input_ids"], pred) if keep])


def test_prompt_is_masked_and_weights_follow_prompt_loss_weight(tok):
    ex, _ = fmt.encode(chat(1), tok, FormatConfig())
    trained = [l != fmt.IGNORE for l in ex["labels"]]
    assert decode_where(tok, ex, trained) == "a store<|im_end|>\n"
    assert all(w == 0.0 for w, t in zip(ex["loss_weight"], trained) if not t)
    assert all(w == 1.0 for w, t in zip(ex["loss_weight"], trained) if t)

    ex, _ = fmt.encode(chat(1, weight=0.5), tok, FormatConfig(prompt_loss_weight=0.3))
    n_prompt = len(ex["input_ids"]) - ex["n_response"]
    assert ex["loss_weight"][0] == 0.0, "the first token is never a target (keeps packed examples apart)"
    assert ex["loss_weight"][1:n_prompt] == pytest.approx([0.15] * (n_prompt - 1))
    assert ex["loss_weight"][n_prompt:] == [0.5] * ex["n_response"]
    assert ex["labels"][:n_prompt] == [fmt.IGNORE] * n_prompt, "held-out loss stays the answer loss"


def test_system_prompt_is_injected_once_and_never_overrides_a_records_own(tok):
    cfg = FormatConfig(system_prompt="You answer HTTP questions.")
    ex, _ = fmt.encode(chat(1), tok, cfg)
    text = tok.decode(ex["input_ids"])
    assert text.startswith("<|im_start|>system\nYou answer HTTP questions.<|im_end|>") and text.count("system") == 1
    own = chat(2)
    own["messages"].insert(0, {"role": "system", "content": "Be brief."})
    text = tok.decode(fmt.encode(own, tok, cfg)[0]["input_ids"])
    assert "Be brief." in text and "HTTP questions" not in text


def test_named_templates_and_templates_the_tokenizer_lacks(tok):
    t = copy.deepcopy(tok)
    with pytest.raises(ConfigError, match=r"data.format.template=llama3: the tokenizer lacks its special tokens "
                                          r"<\|start_header_id\|>.*usable here: auto, chatml, plain"):
        fmt.prepare_tokenizer(t, FormatConfig(template="llama3"))
    t.chat_template = None
    with pytest.raises(ConfigError, match="data.format.template=auto: the tokenizer has no chat template"):
        fmt.prepare_tokenizer(t, FormatConfig(template="auto"))
    fmt.prepare_tokenizer(t, FormatConfig(template="plain"))
    ex, _ = fmt.encode(chat(1), t, FormatConfig(template="plain"))
    trained = [l != fmt.IGNORE for l in ex["labels"]]
    assert tok.decode(ex["input_ids"]).startswith("### User:\nwhat is a cache?")
    assert decode_where(t, ex, trained).startswith("a store<|im_end|>")


def test_truncation_policies_count_and_report(tok):
    long_answer = "x " * 200
    recs = [chat(1), chat(2, answer=long_answer), chat(3, prompt="y " * 200)]
    ledger = Ledger()
    out, stats = fmt.encode_all(recs, tok, FormatConfig(max_length=64, truncation="drop"), "train", ledger)
    assert [e["id"] for e in out] == ["1"]
    assert stats["dropped_too_long"] == 1 and stats["dropped_prompt_too_long"] == 1 and stats["truncated"] == 0
    assert {d["reason"] for d in ledger.dropped_records} == {"too_long", "prompt_too_long"}
    ledger.check()

    ledger = Ledger()
    out, stats = fmt.encode_all(recs[:2], tok, FormatConfig(max_length=64, truncation="truncate"), "train", ledger)
    assert stats["truncated"] == 1 and len(out[1]["input_ids"]) == 64
    assert ledger.summary()[0]["modified_by_reason"] == {"truncated": 1}
    with pytest.raises(DataError, match=r"record '3' \(source s\): the prompt alone is \d+ tokens.*"
                                        r"data.format.max_length=64"):
        fmt.encode_all(recs, tok, FormatConfig(max_length=64, truncation="truncate"), "train")
    with pytest.raises(DataError, match=r"record '2'.*> data.format.max_length=64 .*truncation=drop\|truncate"):
        fmt.encode_all(recs, tok, FormatConfig(max_length=64, truncation="error"), "train")


def examples(tok, n=12):
    cfg = FormatConfig(max_length=256, prompt_loss_weight=0.5)
    return [fmt.encode(chat(i, prompt="q" * (3 + 11 * i % 40), answer="ans " * (1 + i % 5)), tok, cfg)[0]
            for i in range(n)]


def sized(lengths):
    return [{"id": str(i), "input_ids": [7] * n, "labels": [fmt.IGNORE] + [7] * (n - 1),
             "loss_weight": [0.0] + [1.0] * (n - 1)} for i, n in enumerate(lengths)]


def test_packing_fills_rows_and_restarts_positions():
    import random

    rng = random.Random(0)
    exs = sized([rng.randint(10, 120) for _ in range(40)])
    length = 256
    rows, stats = fmt.pack(exs, length)
    assert sorted(i for r in rows for i in r["ids"]) == sorted(e["id"] for e in exs)
    assert all(len(r["input_ids"]) <= length for r in rows)
    lower_bound = -(-sum(len(e["input_ids"]) for e in exs) // length)
    assert lower_bound <= len(rows) <= lower_bound + 1
    for r in rows:
        starts = [i for i, p in enumerate(r["position_ids"]) if p == 0]
        assert [b - a for a, b in zip(starts, starts[1:] + [len(r["input_ids"])])] == r["seq_lens"]
        assert all(r["loss_weight"][s] == 0.0 for s in starts)
    assert stats["fill"] > 0.9 and not rows.ordered
    kept, kept_stats = fmt.pack(exs, length, keep_order=True)
    assert [i for r in kept for i in r["ids"]] == [e["id"] for e in exs] and kept.ordered
    assert len(kept) >= len(rows) and kept_stats["fill"] <= stats["fill"]
    staged, staged_stats = fmt.pack(exs, length, bands=[15, 25])  # curriculum stages: no row mixes two
    first = {e["id"] for e in exs[:15]}
    in_first = [{i in first for i in r["ids"]} for r in staged]
    assert all(len(k) == 1 for k in in_first), "a row mixes two stages"
    flags = [k.pop() for k in in_first]
    assert flags == sorted(flags, reverse=True), "the first stage's rows come first"
    assert staged.ordered and staged_stats["fill"] > kept_stats["fill"]


def test_packing_search_beats_plain_best_fit_decreasing():
    # Best-fit decreasing puts 9+7 | 6+6+6 | 5 in three rows of 20; the squeeze finds 9+6+5 | 7+6+6.
    rows, stats = fmt.pack(sized([9, 7, 6, 6, 6, 5]), 20)
    assert sorted(sorted(r["seq_lens"]) for r in rows) == [[5, 6, 9], [6, 6, 7]]
    assert stats["fill"] == round(39 / 40, 4)


def test_collator_packed_rows_have_positions_and_no_attention_mask(tok):
    rows, _ = fmt.pack(examples(tok, 5), 120)
    batch = fmt.Collator(tok.pad_token_id)(rows)
    assert "attention_mask" not in batch
    w = batch["input_ids"].shape[1]
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        assert batch["position_ids"][i, n:].tolist() == list(range(w - n)), "padding is its own segment"
        assert batch["loss_weight"][i, n:].sum() == 0 and (batch["labels"][i, n:] == fmt.IGNORE).all()
    plain = fmt.Collator(tok.pad_token_id)(examples(tok, 3))
    assert "position_ids" not in plain and plain["attention_mask"].sum() == sum(len(e["input_ids"]) for e in examples(tok, 3))


def per_example_loss(model, batch, segments):
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        kw = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        logits = model(**kw, use_cache=False).logits.float()
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), batch["input_ids"][:, 1:], reduction="none")
    w = batch["loss_weight"][:, 1:]
    return [float((ce[r, s:s + n - 1] * w[r, s:s + n - 1]).sum() / w[r, s:s + n - 1].sum()) for r, s, n in segments]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_unpacked_batches_give_the_same_per_example_loss(tok, attn):
    model = load_model(ModelConfig(source="tiny", dtype="fp32", attn_implementation=attn)).eval()
    exs = examples(tok, 8)
    collate = fmt.Collator(tok.pad_token_id)
    unpacked = dict(zip([e["id"] for e in exs],
                        per_example_loss(model, collate(exs), [(i, 0, len(e["input_ids"])) for i, e in enumerate(exs)])))
    rows, _ = fmt.pack(exs, 200)
    assert any(len(r["ids"]) > 1 for r in rows)
    segments, ids = [], []
    for r, row in enumerate(rows):
        start = 0
        for i, n in zip(row["ids"], row["seq_lens"]):
            segments.append((r, start, n))
            ids.append(i)
            start += n
    batch = collate(rows)
    packed = dict(zip(ids, per_example_loss(model, batch, segments)))
    for i in unpacked:
        assert packed[i] == pytest.approx(unpacked[i], abs=1e-4), i
    # Control: the same rows without restarting positions let examples attend to each other.
    batch.pop("position_ids")
    leaky = dict(zip(ids, per_example_loss(model, batch, segments)))
    assert max(abs(leaky[i] - unpacked[i]) for i in ids) > 1e-3
