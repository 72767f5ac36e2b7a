"""Balance: class and refusal report, cap / upsample / class weights on the training split only."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ftx.data import balance
from ftx.data.balance import BalanceConfig
from ftx.data.build import prepare
from ftx.data.ledger import Ledger
from ftx.engine.model import load_tokenizer
from ftx.errors import ConfigError, DataError
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig, FormatConfig, SourceConfig
from ftx.spec.model import ModelConfig
from tests.helpers import write_jsonl


def rec(i, label, answer="It sets the header."):
    return {"id": f"r{i}", "source": "s", "role": "domain", "synthetic": False, "weight": 1.0, "text": None,
            "label": label, "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": answer}]}


def skewed():  # 6 billing, 3 tech, 1 legal; two refusals
    labels = ["billing"] * 6 + ["tech"] * 3 + ["legal"]
    return [rec(i, lab, "I cannot answer that." if i in (0, 7) else "Here is how.") for i, lab in enumerate(labels)]


def test_report_counts_classes_and_refusals():
    d = balance.distribution(skewed(), BalanceConfig(field="label"))
    assert d["classes"] == {"billing": 6, "tech": 3, "legal": 1} and d["imbalance_ratio"] == 6.0
    assert d["patterns"]["refusal"] == {"records": 2, "share": 0.2}
    assert balance.distribution([rec(0, None, "As an AI language model, I won't.")], BalanceConfig())["patterns"][
        "refusal"]["records"] == 1


def test_cap_drops_excess_into_the_ledger():
    ledger = Ledger()
    out = balance.rebalance(skewed(), BalanceConfig(field="label", strategy="cap", cap=2), ledger)
    assert Counter(r["label"] for r in out) == {"billing": 2, "tech": 2, "legal": 1}
    ledger.check()
    assert ledger.summary()[0] == {"stage": "balance", "in": 10, "kept": 5, "dropped": 5,
                                   "dropped_by_reason": {"class_cap": 5}, "modified_by_reason": {}}


def test_upsample_repeats_smaller_classes_to_the_largest():
    out = balance.rebalance(skewed(), BalanceConfig(field="label", strategy="upsample"))
    assert Counter(r["label"] for r in out) == {"billing": 6, "tech": 6, "legal": 6}
    assert sum(r["id"].startswith("r9#bal") for r in out) == 5  # the lone legal record, 5 more times
    assert len({r["id"] for r in out}) == 18


def test_class_weights_give_every_class_the_same_total_weight():
    out = balance.rebalance(skewed(), BalanceConfig(field="label", strategy="class_weights"))
    totals = Counter()
    for r in out:
        totals[r["label"]] += r["weight"]
    assert all(t == pytest.approx(10 / 3) for t in totals.values())  # n / k per class
    assert next(r for r in out if r["label"] == "legal")["weight"] == pytest.approx(10 / 3)


def test_config_errors_and_over_refusal_guard():
    with pytest.raises(ConfigError, match="data.balance.field"):
        BalanceConfig(strategy="cap", cap=3).check()
    with pytest.raises(ConfigError, match="data.balance.cap"):
        BalanceConfig(field="label", strategy="cap").check()
    with pytest.raises(ConfigError, match="data.balance.patterns.bad"):
        BalanceConfig(patterns={"bad": "("}).check()
    with pytest.raises(DataError, match="pattern 'refusal' matches 20.0%"):
        balance.apply({"train": skewed()}, BalanceConfig(max_pattern_share=0.1))


def test_prepare_rebalances_train_only_and_writes_the_report(tmp_path):
    labels = ["billing"] * 24 + ["tech"] * 6
    src = write_jsonl(tmp_path / "d.jsonl", [{"id": f"r{i}", "prompt": f"Question {i} about invoices?",
                                               "response": f"Answer {i}.", "intent": lab}
                                              for i, lab in enumerate(labels)])
    data = DataConfig(sources={"d": SourceConfig(path=str(src))}, format=FormatConfig(max_length=64),
                      balance=BalanceConfig(field="intent", strategy="upsample"))
    data.split.decontaminate = False
    prep = prepare(data, CurationConfig(), load_tokenizer(ModelConfig(source="tiny", dtype="fp32")), tmp_path)
    rep = json.loads((tmp_path / "data" / "stats.json").read_text())["balance"]
    before, after = rep["splits"]["train"]["classes"], rep["train_after"]["classes"]
    assert after["billing"] == after["tech"] == before["billing"] > before["tech"]
    assert prep.stats["train"]["examples"] == sum(after.values())
    assert sum(rep["splits"]["val"]["classes"].values()) == len(prep.val)  # val keeps the real distribution
