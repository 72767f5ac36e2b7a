"""Annotation agreement: kappa on hand-computed cases, per-item disagreement, disputed-item policies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ftx.data.curate.agreement import fleiss_kappa, statistics
from ftx.data.curate.pipeline import curate, run
from ftx.data.ledger import Ledger
from ftx.data.plan import assign_weights
from ftx.errors import ConfigError
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig, SourceConfig

# Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories; kappa = 0.20993.
FLEISS_TABLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_matches_the_worked_example():
    assert fleiss_kappa(np.array(FLEISS_TABLE)) == pytest.approx(0.20993, abs=1e-4)
    with pytest.raises(ValueError):
        fleiss_kappa(np.array([[2, 0], [1, 1], [3, 0]]))  # raters per item differ


def test_two_annotators_by_hand():
    # a: y y n n, b: y n n n. Cohen: po 3/4, pe 1/2·1/4 + 1/2·3/4 = 1/2 → 0.5.
    # Fleiss: P̄ = (1+0+1+1)/4 = 3/4, pe = (3/8)² + (5/8)² = 17/32 → (3/4 − 17/32)/(15/32) = 7/15.
    items = [{"a": "y", "b": "y"}, {"a": "y", "b": "n"}, {"a": "n", "b": "n"}, {"a": "n", "b": "n"}]
    s = statistics(items, named=True)
    assert s["cohen_kappa"]["a|b"] == {"kappa": 0.5, "items": 4}
    assert s["fleiss_kappa"] == pytest.approx(7 / 15, abs=1e-4)


def rec(i, labels, **extra):
    return {"id": f"r{i}", "source": "s", "role": "domain", "synthetic": False, "weight": None, "text": f"text {i}",
            "messages": None, "labels": labels, **extra}


def records():
    return [rec(0, ["pos", "pos", "pos"]), rec(1, ["pos", "pos", "neg"]), rec(2, ["neg", "pos", None]),
            rec(3, ["neg", "neg", "pos"], label="pos"), {**rec(4, None), "labels": None}]


def cfg(policy):
    c = CurationConfig(enabled=True, stages=["agreement"], cache_dir=None)
    c.agreement.policy, c.agreement.min_agreement = policy, 0.9
    return c


def test_policy_drop_sends_disputed_items_to_the_ledger_with_their_counts():
    ledger = Ledger()
    res = run(records(), cfg("drop"), ledger)
    assert [r["id"] for r in res.kept] == ["r0", "r4"]  # r4 carries no annotations: untouched
    drops = {d["id"]: d for d in ledger.dropped_records}
    assert set(drops) == {"r1", "r2", "r3"} and {d["reason"] for d in drops.values()} == {"disputed"}
    assert json.loads(drops["r1"]["detail"]) == {"neg": 1, "pos": 2} and drops["r1"]["score"] == pytest.approx(2 / 3)
    art = res.stages[0].artifacts
    assert art["items"] == 4 and art["disputed"] == 3 and art["disputed_items"][0]["id"] == "r2"  # lowest first
    assert art["disputed_items"][0]["tie"] is True and art["raters_per_item"] == 3


def test_policy_majority_and_down_weight_resolve_labels_and_weights(tmp_path):
    ledger = Ledger()
    kept = curate(records(), cfg("majority"), ledger, tmp_path / "rep")
    by = {r["id"]: r for r in kept}
    assert set(by) == {"r0", "r1", "r3", "r4"}  # r2 is a tie: no majority
    assert by["r1"]["label"] == "pos" and by["r3"]["label"] == "neg"  # r3's own label is overruled
    assert ledger.summary()[0]["dropped_by_reason"] == {"tie": 1}
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Annotation agreement" in md and "r2:" in md

    kept = curate(records(), cfg("down_weight"), Ledger())
    data = DataConfig(sources={"s": SourceConfig(path="x")})
    assign_weights(kept, data)
    w = {r["id"]: r["weight"] for r in kept}
    assert w == pytest.approx({"r0": 1.0, "r1": 2 / 3, "r3": 2 / 3, "r4": 1.0})


def test_bad_policy_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="curation.agreement.policy"):
        cfg("vote").check()
