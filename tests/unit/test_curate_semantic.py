"""semantic_dedup: planted paraphrases removed on MiniLM embeddings; ledger names the representative."""

from __future__ import annotations

import json

import pytest

from ftx.errors import ConfigError
from tests.unit.test_curate import config, curate, drops, rec

PARAPHRASES = [
    ("How do I undo the last commit in git?", "What is the way to revert my most recent git commit?"),
    ("The server returns 404 when the requested page does not exist.",
     "A 404 status is sent back by the server if the page you asked for is missing."),
    ("Use chmod to change the permissions of a file.", "File permissions can be changed with the chmod command."),
    ("fork() creates a new process by duplicating the calling process.",
     "The calling process is duplicated by fork() to make a new process."),
    ("Set the environment variable before starting the program.",
     "Before you launch the program, define the environment variable."),
    ("Python lists can grow and shrink as elements are added or removed.",
     "A Python list changes size when you add or remove items."),
]
# same topics, different meaning: the hard negatives a paraphrase filter must keep
DISTINCT = ["How do I delete a remote branch in git?", "The server returns 500 when an internal error occurs.",
            "Use chown to change the owner of a file.", "exec() replaces the current process image with a new one.",
            "Unset the environment variable after the program exits.",
            "Python tuples cannot be changed after they are created.",
            "Caches store responses so later requests are faster."]


def _records():
    out = []
    for i, (a, b) in enumerate(PARAPHRASES):
        out += [rec(f"p{i}", a), rec(f"p{i}-para", b)]
    return out + [rec(f"d{i}", t) for i, t in enumerate(DISTINCT)]


def test_planted_paraphrases_are_dropped_naming_the_kept_record_and_distinct_records_stay():
    res, ledger = curate(_records(), config("semantic_dedup"))
    d = drops(ledger, "semantic_dedup")
    planted = {f"p{i}-para" for i in range(len(PARAPHRASES))}
    assert set(d) <= planted  # precision: nothing distinct is dropped
    assert len(d) >= 5  # recall at the default radius 0.15: 5 of these 6 (one pair sits at cosine 0.844)
    for rid, x in d.items():
        assert x["reason"] == "semantic_duplicate" and x["detail"].startswith(f"semantic duplicate of {rid[:-5]} ")
        assert 0.85 <= x["score"] <= 1
    kept = {r["id"] for r in res.kept}
    assert {f"d{i}" for i in range(len(DISTINCT))} | {f"p{i}" for i in range(len(PARAPHRASES))} <= kept


def test_tag_mode_keeps_paraphrases_in_one_cluster_and_a_wider_radius_finds_more():
    res, ledger = curate(_records(), config("semantic_dedup", semantic_dedup={"action": "tag"}))
    assert not drops(ledger, "semantic_dedup")
    cl = {r["id"]: r["cluster"] for r in res.kept}
    assert cl["p0"] == cl["p0-para"] and cl["p0"] != cl["d0"]
    _, wide = curate(_records(), config("semantic_dedup", semantic_dedup={"radius": 0.5}))
    assert len(drops(wide, "semantic_dedup")) > 6  # distinct same-topic records go too: the radius is the knob


@pytest.mark.parametrize("radius", [0, -0.1, 1.5])
def test_a_radius_outside_zero_one_is_one_line_naming_the_key(radius):
    with pytest.raises(ConfigError, match=r"^curation\.semantic_dedup\.radius: must be a cosine distance in "
                                          r"\(0, 1\], got "):
        config("semantic_dedup", semantic_dedup={"radius": radius})


def test_an_embedding_model_folder_that_is_not_one_is_one_line_naming_key_and_folder(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ConfigError, match=rf"^curation\.semantic_dedup\.embedding_model: {empty} is not a model "
                                          r"folder \(no config.json"):
        curate(_records(), config("semantic_dedup", semantic_dedup={"embedding_model": str(empty)}))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "bert"}))  # no weights, no tokenizer
    with pytest.raises(ConfigError, match=rf"^curation\.semantic_dedup\.embedding_model: {broken} is not a "
                                          r"loadable model folder \("):
        curate(_records(), config("semantic_dedup", semantic_dedup={"embedding_model": str(broken)}))
