"""The data plan on crafted records: leak-free splits, decontamination, weights, the mix, the curriculum."""

from __future__ import annotations

import random

import pytest

from ftx.data.ledger import Ledger
from ftx.data.plan import assign_weights, curriculum, decontaminate, mix, split, split_key
from ftx.errors import DataError
from ftx.spec.data import DataConfig, SourceConfig

WORDS = ("header cache status request response server client proxy token cookie method body "
         "redirect origin agent query etag range chunk socket").split()


def rec(i, role="domain", source=None, cluster=None, synthetic=False, text=None, **extra):
    rng = random.Random(f"{role}{i}")
    q = text or " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) + f" number {i} {role}"
    r = {"id": f"{role[0]}{i}", "source": source or role, "role": role, "synthetic": synthetic or role == "synthetic",
         "weight": None, "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"answer {i}"}],
         "text": None}
    if cluster is not None:
        r["cluster"] = cluster
    r.update(extra)
    return r


def cfg(**mix) -> DataConfig:
    c = DataConfig(sources={"domain": SourceConfig(path="d.jsonl"), "general": SourceConfig(path="g.jsonl", role="general"),
                            "synthetic": SourceConfig(path="s.jsonl", role="synthetic")})
    for k, v in mix.items():
        setattr(c.mix, k, v)
    c.check()
    return c


def where(parts):
    return {r["id"]: name for name, recs in parts.items() for r in recs}


# ---- split ---------------------------------------------------------------------------------------

def test_near_duplicate_clusters_never_straddle_splits():
    records = []
    for c in range(60):  # clusters of 1–4 near-duplicates, as curation marks them
        for j in range(1 + c % 4):
            records.append(rec(c * 10 + j, cluster=f"c{c}"))
    records += [rec(i, role="general", cluster=f"g{i // 2}") for i in range(40)]
    data = cfg()
    ledger = Ledger()
    parts = split(records, data, ledger)
    loc = where(parts)
    by_cluster = {}
    for r in records:
        by_cluster.setdefault(r["cluster"], set()).add(loc[r["id"]])
    assert all(len(s) == 1 for s in by_cluster.values()), "a cluster straddles splits"
    assert parts["val"] and parts["train"] and parts["general_eval"]
    assert sum(len(p) for p in parts.values()) == len(records)
    ledger.check()


def test_split_is_deterministic_and_salted_by_seed():
    records = [rec(i) for i in range(80)]
    a, b = where(split(records, cfg())), where(split(list(reversed(records)), cfg()))
    assert a == b, "the split must depend on content only, not on input order"
    other = cfg()
    other.split.seed = 7
    assert where(split(records, other)) != a
    # Roughly the configured fraction (content hash ≈ uniform).
    assert 4 <= sum(v == "val" for v in a.values()) <= 22


def test_cross_role_and_synthetic_near_duplicates_of_held_out_data_are_dropped_not_trained_on():
    data = cfg()
    records = [rec(i, cluster=f"c{i}") for i in range(40)]
    val_cluster = next(split_key(r) for r in records if where(split(records, data))[r["id"]] == "val")
    twin_synth = rec(900, role="synthetic", cluster=val_cluster)
    twin_general = rec(901, role="general", cluster=val_cluster)
    ledger = Ledger()
    parts = split(records + [twin_synth, twin_general], data, ledger)
    loc = where(parts)
    assert "s900" not in loc and "g901" not in loc
    reasons = {d["id"]: d["reason"] for d in ledger.dropped_records}
    assert reasons == {"s900": "near_duplicate_of_held_out", "g901": "near_duplicate_of_held_out"}
    ledger.check()


def test_synthetic_records_are_never_held_out():
    records = [rec(i) for i in range(30)] + [rec(i, role="synthetic") for i in range(50)]
    parts = split(records, cfg())
    assert all(not r["synthetic"] for p in ("val", "test", "general_eval") for r in parts[p])
    assert sum(r["synthetic"] for r in parts["train"]) == 50


def test_tiny_data_still_gets_a_validation_record():
    data = cfg()
    data.split.val = 0.01
    parts = split([rec(i) for i in range(5)], data)
    assert len(parts["val"]) == 1 and len(parts["train"]) == 4


# ---- decontamination -----------------------------------------------------------------------------

def test_decontamination_drops_held_out_records_that_overlap_train_with_a_reason():
    train = [rec(i, text=f"the server sends a cache control header with max age {i} seconds to every client")
             for i in range(5)]
    leaked = rec(100, text="the server sends a cache control header with max age 3 seconds to every client today")
    clean = rec(101, text="a proxy may rewrite the host of a request when it forwards it upstream")
    short_leak = dict(rec(102), messages=None, text="max age 3 seconds to every")  # < n words: a whole phrase
    parts = {"train": train, "val": [leaked, clean, short_leak], "test": [], "general_eval": []}
    ledger = Ledger()
    counts = decontaminate(parts, cfg().split, ledger)
    assert [r["id"] for r in parts["val"]] == ["d101"]
    assert counts["val"] == 2
    dropped = {d["id"]: d for d in ledger.dropped_records}
    assert dropped["d100"]["reason"] == "overlaps_train_val" and dropped["d100"]["score"] >= 0.5
    assert "d102" in dropped
    ledger.check()


def templated(i: int, split: str = "") -> dict:
    """A templated question (13 words, 6 word 8-grams, 3 of them the template's own words)."""
    r = dict(rec(i), messages=[{"role": "user", "content": f"What is the MIME type of files with the extension .e{i}?"},
                               {"role": "assistant", "content": f"application/t{i}"}], text=None)
    return dict(r, split=split) if split else r


def test_a_shared_question_template_is_not_a_leak_but_a_copied_record_still_is():
    """Templated Q&A (a real set: 102 of 200 training questions were dropped as overlapping the held-out set by
    the template's words alone): n-grams common to both sides are left out of the count, so only what differs
    between records decides; a held-out record copied into train — even three times — is still caught."""
    train = [templated(i) for i in range(40)]
    declared = [templated(100 + i, "val") for i in range(12)]
    data = cfg()
    data.split.common_ngram_share = 0.0  # the old count: the template alone is half of every record's 8-grams
    parts = {"train": list(train), "val": list(declared), "test": [], "general_eval": []}
    with pytest.raises(DataError, match="every domain training record overlaps a declared val/test source"):
        decontaminate(parts, data.split, Ledger())
    data.split.common_ngram_share = 0.1
    copies = [dict(templated(105), id=f"copy{k}", split=None) for k in range(3)]
    parts = {"train": train + copies, "val": list(declared), "test": [], "general_eval": []}
    ledger = Ledger()
    counts = decontaminate(parts, data.split, ledger)
    assert counts["train_vs_declared_val"] == 3, counts
    assert {d["id"] for d in ledger.dropped_records} == {"copy0", "copy1", "copy2"}
    assert ledger.dropped_records[0]["detail"] == "3/3 8-grams found in the declared val set"  # template left out
    assert len(parts["train"]) == 40
    # the other direction (held-out drawn from the same pool): templated val records stay, a leaked one goes
    auto_val = [templated(200 + i) for i in range(10)] + [dict(templated(7), id="leak")]
    parts = {"train": list(train), "val": auto_val, "test": [], "general_eval": []}
    ledger = Ledger()
    assert decontaminate(parts, data.split, ledger)["val"] == 1
    assert [d["id"] for d in ledger.dropped_records] == ["leak"] and len(parts["val"]) == 10


def test_decontamination_off_and_all_leaked_val_is_an_error():
    data = cfg()
    train = [rec(i, text="one two three four five six seven eight nine ten") for i in range(2)]
    parts = {"train": train, "val": [rec(5, text="one two three four five six seven eight nine ten")],
             "test": [], "general_eval": []}
    data.split.decontaminate = False
    assert decontaminate(dict(parts), data.split) == {"val": 0, "test": 0, "general_eval": 0}
    data.split.decontaminate = True
    with pytest.raises(DataError, match="data.split.decontaminate"):
        decontaminate(parts, data.split)


# ---- weights -------------------------------------------------------------------------------------

def test_weights_by_role_source_and_trust():
    data = cfg()
    data.sources["domain"].weight = 2.0
    records = [rec(1), rec(2, role="general"), rec(3, role="synthetic"), rec(4, role="general", synthetic=True),
               rec(5, role="general", trust=0.25)]
    records[0]["weight"] = 2.0  # sources.py copies the source's weight when set
    assign_weights(records, data)
    assert [r["weight"] for r in records] == [2.0, 1.0, 0.5, 0.5, 0.25]


# ---- mix -----------------------------------------------------------------------------------------

def encoded(n, role, lengths=(10, 40), seed=0, source=None):
    rng = random.Random(f"{role}{seed}")
    return [{"id": f"{role}{i}", "source": source or role, "role": role, "n_response": 1,
             "input_ids": [1] * rng.randint(*lengths)} for i in range(n)]


@pytest.mark.parametrize("on_short", ["downsample", "upsample"])
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])
def test_achieved_ratio_is_within_one_example_of_the_target(ratio, on_short):
    for n_dom, n_gen in ((37, 200), (120, 11), (50, 50)):
        data = cfg(domain_ratio=ratio, on_short=on_short)
        ledger = Ledger()
        out, stats = mix(encoded(n_dom, "domain") + encoded(n_gen, "general"), data, ledger)
        dom = sum(e["role"] == "domain" for e in out)
        assert abs(dom - ratio * len(out)) <= 1.0, (n_dom, n_gen, dom, len(out))
        assert stats["off_target_examples"] <= 1.0
        assert stats["by_role"].get("domain", {}).get("examples", 0) == dom
        ledger.check()
        if on_short == "downsample":  # nothing repeated; one side kept whole
            assert len({e["id"] for e in out}) == len(out)
            if 0 < ratio < 1:
                assert dom == n_dom or len(out) - dom == n_gen
        elif 0 < ratio < 1:  # upsample keeps every domain example and repeats general if short
            assert dom == n_dom


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8, 0.9])
def test_token_ratio_is_within_one_example_of_the_target(ratio):
    for on_short in ("downsample", "upsample"):
        data = cfg(domain_ratio=ratio, unit="tokens", on_short=on_short)
        examples = encoded(60, "domain", (20, 120)) + encoded(90, "general", (5, 60))
        out, stats = mix(examples, data)
        dom_tok = sum(len(e["input_ids"]) for e in out if e["role"] == "domain")
        tot = sum(len(e["input_ids"]) for e in out)
        assert abs(dom_tok - ratio * tot) <= max(len(e["input_ids"]) for e in examples)
        assert abs(stats["domain_ratio_tokens"] - ratio) < 0.03
        assert stats["by_source"]["domain"]["tokens"] == dom_tok


def test_upsampling_repeats_every_record_before_any_twice_and_counts_repeats():
    data = cfg(domain_ratio=0.5, on_short="upsample")
    out, stats = mix(encoded(30, "domain") + encoded(7, "general"), data)
    gen = [e["id"] for e in out if e["role"] == "general"]
    assert len(gen) == 30 and len({g.split("#")[0] for g in gen}) == 7
    assert stats["by_source"]["general"]["repeats"] == 23


def test_short_side_with_on_short_error_names_the_key():
    with pytest.raises(DataError, match=r"data.mix.domain_ratio=0.5: needs 30 general examples, only 7"):
        mix(encoded(30, "domain") + encoded(7, "general"), cfg(domain_ratio=0.5, on_short="error"))


def test_synthetic_share_of_the_mix():
    data = cfg(domain_ratio=0.8, synthetic_ratio=0.2)
    out, stats = mix(encoded(60, "domain") + encoded(100, "synthetic") + encoded(100, "general"), data)
    n = len(out)
    counts = {r: sum(e["role"] == r for e in out) for r in ("domain", "synthetic", "general")}
    assert counts["domain"] == 60
    for role, share in (("domain", 0.6), ("synthetic", 0.2), ("general", 0.2)):
        assert abs(counts[role] - share * n) <= 1.0
    # Without synthetic_ratio, synthetic counts on the domain side.
    out, stats = mix(encoded(60, "domain") + encoded(20, "synthetic") + encoded(100, "general"), cfg(domain_ratio=0.8))
    assert abs(stats["domain_ratio_examples"] - 0.8) <= 1 / len(out) and stats["by_role"]["synthetic"]["examples"] == 20


def test_no_ratio_keeps_everything():
    examples = encoded(10, "domain") + encoded(5, "general")
    out, stats = mix(examples, cfg())
    assert sorted(e["id"] for e in out) == sorted(e["id"] for e in examples)
    assert stats["target_domain_ratio"] is None and stats["domain_ratio_examples"] == round(10 / 15, 4)


# ---- curriculum ----------------------------------------------------------------------------------

def scored(n):
    out = encoded(n, "domain")
    for i, e in enumerate(out):
        e["scores"] = {"relevance": random.Random(i).random()}
    return out


def test_curriculum_off_by_default_and_score_order():
    data = cfg()
    ex = scored(20)
    out, info = curriculum(ex, data)
    assert not out.ordered and info == {"strategy": "none"}
    data.curriculum.strategy = "score"
    out, _ = curriculum(ex, data)
    rel = [e["scores"]["relevance"] for e in out]
    assert out.ordered and rel == sorted(rel, reverse=True)
    data.curriculum.descending = False
    data.curriculum.score = "length"
    out, _ = curriculum(ex, data)
    assert [len(e["input_ids"]) for e in out] == sorted(len(e["input_ids"]) for e in ex)


def test_curriculum_stages_put_the_top_band_first():
    data = cfg()
    data.curriculum.strategy = "stages"
    data.curriculum.stages = [0.25, 0.5]
    ex = scored(40)
    out, info = curriculum(ex, data)
    assert info["stage_sizes"] == [10, 10, 20]
    rel = [e["scores"]["relevance"] for e in out]
    assert min(rel[:10]) > max(rel[10:]) and min(rel[10:20]) > max(rel[20:])
    assert rel[:10] != sorted(rel[:10], reverse=True), "examples are shuffled inside a stage"


def test_curriculum_puts_unscored_examples_last_and_needs_some_scores():
    data = cfg()
    data.curriculum.strategy = "score"
    ex = scored(6) + encoded(4, "general")
    out, info = curriculum(ex, data)
    assert [e["role"] for e in out] == ["domain"] * 6 + ["general"] * 4
    assert info["stage_sizes"] == [6, 4] and info["unscored_last"] == 4
    with pytest.raises(DataError, match=r"data.curriculum.score='relevance': no training example has this score"):
        curriculum(encoded(5, "domain"), data)
