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


def test_chat_turns_sharegpt_style_read_and_unknown_roles_refused(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "What is 404?"},
                           {"from": "gpt", "value": "Not Found."}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "wizard", "value": "Hello"}]}])
    src = SourceConfig(path=str(path), fields=FieldMap(messages="conversations"))
    with pytest.raises(DataError, match=r"c.jsonl:2: field 'conversations', turn 2: role 'wizard' is not one of "
                                        r"system, user, assistant"):
        list(read_source("chat", src))
    recs = []
    with pytest.raises(DataError):
        for r in read_source("chat", src):
            recs.append(r)
    assert [m["role"] for m in recs[0]["messages"]] == ["system", "user", "assistant"]
    assert recs[0]["messages"][2]["content"] == "Not Found."
    unmapped = SourceConfig(path=str(path))
    with pytest.raises(DataError, match=r"no field 'messages'.*ShareGPT turns\? set "
                                        r"data.sources.chat.fields.messages=conversations"):
        list(read_source("chat", unmapped))
    bad = write_jsonl(tmp_path / "b.jsonl", [{"messages": [{"role": "user", "content": 3}]}])
    with pytest.raises(DataError, match=r"b.jsonl:1: field 'messages', turn 1: expected a \{role, content\} object"):
        list(read_source("chat", SourceConfig(path=str(bad))))
