"""ftx/runs.py: layer-0 helpers shared by every layer."""

from __future__ import annotations

from ftx.runs import flatten


def test_flatten_is_the_one_rule_for_every_caller():
    d = {"a": {"b": 1, "c": {"d": [1, 2]}}, "data": {"x": 1}, "e": None, "o": object, "empty": {}}
    assert flatten(d) == {"a.b": 1, "a.c.d": [1, 2], "data.x": 1, "e": None, "o": object}
    assert flatten(None) == {}
    # tracker: "/" keys, a top-level section left out (only at the top)
    assert flatten({"data": 1, "a": {"data": 2}}, "/", skip=("data",)) == {"a/data": 2}
    # rerun: under a prefix, scalar leaves only
    assert flatten(d, "/", "reeval", scalars_only=True) == {
        "reeval/a/b": 1, "reeval/data/x": 1, "reeval/e": None}
