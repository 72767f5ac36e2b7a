"""Sources carry what the plan needs: role, trust, pre-computed scores and clusters."""

from __future__ import annotations

import pytest

from ftx.data.plan import assign_weights
from ftx.data.sources import load_sources, read_source
from ftx.errors import DataError
from ftx.spec.data import DataConfig, FieldMap, SourceConfig
from tests.helpers import write_jsonl


def test_trust_scores_and_clusters_travel_with_records(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"id": "a", "prompt": "p", "response": "r", "trust": 0.5, "scores": {"relevance": 0.9, "note": "x"}, "cluster": 7},
        {"id": "b", "prompt": "p2", "response": "r2"},
        {"id": "c", "prompt": "p3", "response": "r3", "synthetic": True},
    ])
    src = SourceConfig(path=str(path), fields=FieldMap(weight="trust"))
    recs = list(read_source("gold", src))
    assert recs[0]["trust"] == 0.5 and recs[0]["scores"] == {"relevance": 0.9} and recs[0]["cluster"] == "7"
    assert recs[1]["trust"] == 1.0 and "scores" not in recs[1] and "cluster" not in recs[1]
    assert all(r["weight"] is None for r in recs), "unset: the role's weight, resolved by the plan"
    data = DataConfig(sources={"gold": src})
    assign_weights(recs, data)
    assert [r["weight"] for r in recs] == [0.5, 1.0, 0.5]  # trust × domain 1.0; synthetic flag → 0.5


def test_a_bad_trust_value_names_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "response": "r", "trust": 1},
                                              {"prompt": "p", "response": "r", "trust": "high"}])
    src = SourceConfig(path=str(path), fields=FieldMap(weight="trust"))
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'trust' \(data.sources.gold.fields.weight\) must be a number >= 0"):
        list(read_source("gold", src))


def test_source_weight_and_role_reach_records(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "p", "response": "r"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": "plain text"}])
    sources = {"gold": SourceConfig(path=str(a), weight=2.0), "syn": SourceConfig(path=str(b), role="synthetic")}
    recs, lineage = load_sources(sources)
    assert [(r["role"], r["synthetic"], r["weight"]) for r in recs] == [("domain", False, 2.0), ("synthetic", True, None)]
    assert lineage["syn"]["role"] == "synthetic" and len(lineage["gold"]["sha256"]) == 64
