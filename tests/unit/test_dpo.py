"""train.objective=dpo: preference records, pairs through split and ledger, the reference model, and DPO on the
tiny model raising the held-out preference margin and accuracy (docs/feedback.md, Preference tuning)."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest

from ftx.data.sources import _to_record
from ftx.errors import DataError, ModelError
from ftx.spec.data import SourceConfig
from tests.helpers import run_main, write_jsonl

COLOURS = ("blue", "green", "amber", "violet", "teal", "coral")


def pairs(n: int, seed: int = 0) -> list[dict]:
    """Learnable preferences for a random model: the chosen reply always ends in 'correct', the rejected one in
    'wrong', after the same varied words; held-out prompts are new, so only the preference itself transfers."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = " ".join(rng.choice(COLOURS) for _ in range(3))
        out.append({"id": f"p{i}", "prompt": f"Question {i}: which colour is {words}?",
                    "chosen": f"{words} is correct", "rejected": f"{words} is wrong", "rater": f"r{i % 3}"})
    return out


def test_preference_records_read_from_prompt_or_messages():
    src = SourceConfig(path="x.jsonl")
    rec = _to_record({"prompt": "Q?", "chosen": "A", "rejected": "B", "rater": "ann"}, src, "s", "x.jsonl:1")
    assert rec["messages"] == [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}]
    assert rec["rejected"] == "B" and rec["rater"] == "ann"
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    rec = _to_record({"messages": conv, "chosen": [{"role": "assistant", "content": "A"}],
                      "rejected": {"role": "assistant", "content": "B"}}, src, "s", "x.jsonl:2")
    assert rec["messages"] == conv + [{"role": "assistant", "content": "A"}] and rec["rejected"] == "B"
    with pytest.raises(DataError, match=r"^x.jsonl:3: field 'messages' of a preference pair .* cannot be the "):
        _to_record({"messages": conv + [{"role": "assistant", "content": "A"}], "chosen": "A", "rejected": "B"},
                   src, "s", "x.jsonl:3")
    with pytest.raises(DataError, match=r"^x.jsonl:4: preference record without a prompt"):
        _to_record({"chosen": "A", "rejected": "B"}, src, "s", "x.jsonl:4")
    with pytest.raises(DataError, match=r"^x.jsonl:5: field 'rejected' is empty"):
        _to_record({"prompt": "Q", "chosen": "A", "rejected": "  "}, src, "s", "x.jsonl:5")


def _prepare(tmp_path, records, objective="dpo", general=()):
    from ftx.data.build import prepare
    from ftx.engine.model import load_tokenizer
    from ftx.spec.curation import CurationConfig
    from ftx.spec.data import DataConfig
    from tests.helpers import TINY

    sources = {"prefs": SourceConfig(path=str(write_jsonl(tmp_path / "prefs.jsonl", records)))}
    if general:
        sources["general"] = SourceConfig(path=str(write_jsonl(tmp_path / "general.jsonl", general)), role="general")
    data = DataConfig(name="t", sources=sources)
    data.split.val, data.split.test = 0.2, 0.2
    return prepare(data, CurationConfig(stages=[]), load_tokenizer(TINY), None, objective)


def test_pairs_of_one_prompt_never_straddle_splits_and_dpo_drops_non_pairs_with_a_reason(tmp_path):
    base = pairs(30)
    # Three raters per prompt, each with their own rejected reply: one prompt, three pairs.
    records = [dict(p, id=f"{p['id']}-{k}", rejected=f"{p['rejected']} {k}") for p in base for k in range(3)]
    general = [{"id": f"g{i}", "prompt": f"General {i}?", "response": f"Answer {i}."} for i in range(20)]
    prep = _prepare(tmp_path, records, general=general)
    where = defaultdict(set)
    for split, ps in prep.pairs.items():
        for p in ps:
            where[p["id"].rsplit("-", 1)[0]].add(split)
    assert all(len(s) == 1 for s in where.values()), where
    lost = 90 - sum(len(ps) for ps in prep.pairs.values())  # held-out pairs too close to a training one
    decontaminated = sum(s["dropped"] for s in prep.ledger.summary() if s["stage"] == "decontaminate")
    assert lost == decontaminated and len(where) >= 25
    assert {s for ss in where.values() for s in ss} == {"train", "val", "test"}
    # Under DPO the training examples are the pairs; the general records' training share is dropped, counted.
    assert {ex["id"] for ex in prep.train} == {p["id"] for p in prep.pairs["train"]}
    dpo = next(s for s in prep.ledger.summary() if s["stage"] == "dpo")
    assert dpo["dropped_by_reason"] == {"not_a_pair": dpo["in"] - dpo["kept"]} and dpo["dropped"] > 0
    prep.ledger.check()
    assert prep.stats["pairs"]["train"]["pairs"] == len(prep.pairs["train"])
    # Under SFT the same data trains on the chosen replies (and on the general records).
    sft = _prepare(tmp_path / "sft", records, objective="sft", general=general)
    assert len(sft.train) > len(sft.pairs["train"]) and not any(s["stage"] == "dpo" for s in sft.ledger.summary())


def test_a_pair_whose_rejected_reply_is_too_long_is_dropped_into_the_ledger(tmp_path):
    records = pairs(20)
    records[0]["rejected"] = "wrong " * 400
    prep = _prepare(tmp_path, records, objective="sft")
    stages = {s["stage"]: s for s in prep.ledger.summary()}
    dropped = [s for name, s in stages.items() if name.startswith("pairs:") and s["dropped"]]
    assert len(dropped) == 1 and dropped[0]["dropped_by_reason"] == {"rejected_too_long": 1}
    assert "p0" not in {p["id"] for ps in prep.pairs.values() for p in ps}


def test_reward_is_beta_times_the_change_of_the_margin():
    from ftx.eval.preference import reward, summarize

    m = lambda *xs: [{"margin": x, "per_token": x / 10} for x in xs]
    r = reward(m(-1.0, 2.0, 0.5), m(1.0, 1.0, 1.5), beta=0.5, ids=["a", "b", "c"])
    assert r["reward_margin"] == pytest.approx(0.5 * (2.0 - 1.0 + 1.0) / 3)
    assert r["reward_accuracy"] == pytest.approx(2 / 3)
    assert r["base_pref_accuracy"] == pytest.approx(2 / 3) and r["tuned_pref_accuracy"] == 1.0
    assert r["flipped_to_chosen"] == ["a"] and r["flipped_to_rejected"] == []
    # Accuracy by the per-token margin (a long chosen reply is not penalised for its length), margin summed.
    assert summarize([{"margin": -2.0, "per_token": 0.1}, {"margin": 0.0, "per_token": -0.1}]) == \
        {"pref_accuracy": 0.5, "pref_margin": -1.0}


def test_which_side_moved_is_measured_and_a_chosen_side_that_became_less_likely_flags_the_run():
    from ftx.eval.preference import displacement_flags, reward

    # The margin grows on every pair, but by lowering both replies, the chosen one by ~25%.
    base = [{"margin": 0.0, "per_token": 0.0, "chosen_loss": 2.0 + i / 100, "rejected_loss": 2.0} for i in range(20)]
    tuned = [{"margin": 1.0, "per_token": 0.5, "chosen_loss": 2.5 + i / 100, "rejected_loss": 3.0 + i / 50}
             for i in range(20)]
    r = reward(base, tuned, beta=0.1, ids=[f"p{i}" for i in range(20)], alpha=0.05, seed=0)
    assert r["reward_accuracy"] == 1.0  # what DPO reports: a success
    c, rj = r["chosen"], r["rejected"]
    assert c["relative_change"] == pytest.approx(0.5 / 2.095) and c["likelier"] == 0.0
    assert c["test"]["verdict"] == "rose" and c["test"]["p"] < 0.05
    assert rj["test"]["verdict"] == "rose" and rj["relative_change"] > 0.5
    flags = displacement_flags({"val": r}, 0.10)
    assert len(flags) == 1 and flags[0].startswith("preference: val chosen replies' loss per token 2.0950 -> 2.5950 "
                                                   "(+23.9%, paired p=") and "max_chosen_rise 10%" in flags[0]
    assert flags[0].endswith("(train.dpo.sft_weight=1 keeps them likely)")
    assert displacement_flags({"val": r}, 0.10, "orpo")[0].endswith("(a lower train.orpo.beta weighs ORPO's SFT term more)")
    assert displacement_flags({"val": r}, 0.30) == [] and displacement_flags({"val": r}, None) == []
    # Chosen likelier, rejected less likely: no flag, and the verdicts say so.
    good = [dict(m, chosen_loss=m["chosen_loss"] - 1.0) for m in tuned]
    g = reward(base, good, beta=0.1, ids=[f"p{i}" for i in range(20)])
    assert g["chosen"]["test"]["verdict"] == "fell" and g["chosen"]["likelier"] == 1.0
    assert displacement_flags({"val": g}, 0.10) == []
    # Rows from before the side losses were kept (older margins) still give the reward block.
    assert "chosen" not in reward([{"margin": 0.0, "per_token": 0.1}], [{"margin": 1.0, "per_token": 0.2}], 0.1, ["a"])


def test_sft_weight_adds_trls_sft_loss_beside_dpos():
    from trl import DPOConfig

    from ftx.engine.dpo import dpo_arguments
    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    plain = dpo_arguments(build_spec(compose(["train.objective=dpo"])))
    assert plain["loss_type"] == ["sigmoid"] and "loss_weights" not in plain
    rpo = dpo_arguments(build_spec(compose(["train.objective=dpo", "train.dpo.sft_weight=0.5",
                                            "train.dpo.loss_type=ipo"])))
    assert rpo["loss_type"] == ["ipo", "sft"] and rpo["loss_weights"] == [1.0, 0.5]
    cfg = DPOConfig(output_dir="unused", use_cpu=True, bf16=False, **rpo)  # TRL takes it as one multi-loss objective
    assert list(cfg.loss_type) == ["ipo", "sft"] and list(cfg.loss_weights) == [1.0, 0.5]


def test_a_full_reference_copy_that_does_not_fit_is_one_line():
    from ftx.engine.dpo import check_reference_fits

    check_reference_fits(8 * 2**30, 11 * 2**30)  # fits under 80% of the free memory
    with pytest.raises(ModelError, match=r"second copy \(8.00 GiB\) but only 9.00 GiB is free .* use "
                                         r"lora.method=lora"):
        check_reference_fits(8 * 2**30, 9 * 2**30)


def dpo_run(tmp_path, capsys, name: str, *extra: str) -> dict:
    """DPO on the tiny model over pairs(48): the run's metrics.json."""
    write_jsonl(tmp_path / "prefs.jsonl", pairs(48))
    write_jsonl(tmp_path / "general.jsonl", [{"prompt": f"General {i}?", "response": f"Answer {i}."}
                                              for i in range(10)])
    run = tmp_path / name
    code, err = run_main(["train", "experiment=tiny_smoke", "curation=none", "data=http_prefs",
                          f"data.sources.prefs.path={tmp_path / 'prefs.jsonl'}",
                          f"data.sources.general.path={tmp_path / 'general.jsonl'}", "train.objective=dpo",
                          "train.max_steps=24", "train.batch_size=4", "optimizer.lr=5e-3", "train.dpo.beta=0.5",
                          "eval=loss_only", *extra,
                          f"hydra.run.dir={run}"], capsys)
    assert code == 0, err[-3000:]
    return json.loads((run / "metrics.json").read_text())


def test_dpo_on_the_tiny_model_raises_the_heldout_margin_and_sft_weight_keeps_the_chosen_replies_likely(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    m = dpo_run(tmp_path, capsys, "run")
    base, tuned, pref = m["base"], m["tuned"], m["eval"]["preference"]["val"]
    assert tuned["val_pref_margin"] > base["val_pref_margin"] + 1.0
    assert tuned["val_pref_accuracy"] >= 0.9 > base["val_pref_accuracy"] + 0.2
    assert pref["reward_margin"] > 0.5 and pref["reward_accuracy"] >= 0.9
    assert pref["reward_margin"] == pytest.approx(0.5 * (tuned["val_pref_margin"] - base["val_pref_margin"]), rel=1e-6)
    # The adapter saved is the trained one alone: TRL's reference copy is gone.
    assert not (run / "adapter" / "ref").exists() and (run / "adapter" / "adapter_model.safetensors").is_file()
    # Which side moved is in the block, each side's base figure the loss per token of its replies.
    for side in ("chosen", "rejected"):
        assert set(pref[side]) == {"base", "tuned", "relative_change", "likelier", "test"}
        assert pref[side]["test"]["verdict"] in ("rose", "fell", "none")
    assert pref["rejected"]["tuned"] - pref["chosen"]["tuned"] > pref["rejected"]["base"] - pref["chosen"]["base"]

    # The same run with an SFT term on the chosen reply (RPO): the chosen replies end likelier than under
    # plain DPO, and the preference is still learnt.
    rpo = dpo_run(tmp_path, capsys, "rpo", "train.dpo.sft_weight=1")["eval"]["preference"]["val"]
    assert rpo["chosen"]["base"] == pytest.approx(pref["chosen"]["base"])  # same start, same pairs
    assert rpo["chosen"]["tuned"] < pref["chosen"]["tuned"] - 0.1
    assert rpo["reward_accuracy"] >= 0.9
    print(f"chosen {pref['chosen']['base']:.3f} -> plain {pref['chosen']['tuned']:.3f} / sft {rpo['chosen']['tuned']:.3f}; "
          f"rejected {pref['rejected']['base']:.3f} -> plain {pref['rejected']['tuned']:.3f} / sft {rpo['rejected']['tuned']:.3f}")

