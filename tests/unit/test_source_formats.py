"""Sources in the formats people have (all read by `datasets`), declared splits, and their one-line errors."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from ftx.data.build import plan_splits
from ftx.data.ledger import Ledger
from ftx.data.sources import load_sources, read_source
from ftx.errors import DataError
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig, FieldMap, SourceConfig
from tests.helpers import write_jsonl

ROWS = [{"id": f"q{i}", "prompt": f"How does header number {i} change caching?", "response": f"It sets max-age to {i}."}
        for i in range(6)]


def canonical(recs, with_id=True):
    keys = ("id", "source", "role", "synthetic", "weight", "messages", "text") if with_id else \
        ("source", "role", "synthetic", "weight", "messages", "text")
    return [{k: r[k] for k in keys} for r in recs]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import datasets
    import pandas as pd

    d = tmp_path_factory.mktemp("formats")
    write_jsonl(d / "a.jsonl", ROWS)
    with gzip.open(d / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    (d / "a.json").write_text(json.dumps(ROWS), encoding="utf-8")
    pd.DataFrame(ROWS).to_csv(d / "a.csv", index=False)
    pd.DataFrame(ROWS).to_csv(d / "a.tsv", index=False, sep="\t")
    pd.DataFrame(ROWS).to_parquet(d / "a.parquet")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(d / "saved"))
    (d / "texts").mkdir()
    for r in ROWS:
        (d / "texts" / f"{r['id']}.md").write_text(r["prompt"] + "\n" + r["response"], encoding="utf-8")
    write_jsonl(d / "texts.jsonl", [{"text": r["prompt"] + "\n" + r["response"]} for r in ROWS])
    return d


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.json", "a.csv", "a.tsv", "a.parquet", "saved"])
def test_every_tabular_format_gives_the_same_canonical_records_as_jsonl(files, name):
    want = canonical(read_source("s", SourceConfig(path=str(files / "a.jsonl"))))
    got = canonical(read_source("s", SourceConfig(path=str(files / name))))
    assert got == want and len(got) == len(ROWS)


def test_a_text_folder_and_a_glob_give_one_record_per_file(files):
    want = canonical(read_source("s", SourceConfig(path=str(files / "texts.jsonl"))), with_id=False)
    folder = list(read_source("s", SourceConfig(path=str(files / "texts"))))
    glob = list(read_source("s", SourceConfig(path=str(files / "texts" / "*.md"))))
    assert canonical(folder, with_id=False) == want == canonical(glob, with_id=False)
    assert [r["id"] for r in folder] == [f"s:q{i}.md" for i in range(6)]  # the file, as a line number is for JSONL


def test_field_mapping_max_records_weight_and_role_hold_for_csv(tmp_path):
    import pandas as pd

    pd.DataFrame([{"question": f"q {i}", "answer": "007", "trust": 0.5} for i in range(5)]).to_csv(
        tmp_path / "faq.csv", index=False)
    src = SourceConfig(path=str(tmp_path / "faq.csv"), role="general", weight=2.0, max_records=3,
                       fields=FieldMap(prompt="question", response="answer"))
    recs = list(read_source("faq", src))
    assert len(recs) == 3 and recs[0]["role"] == "general" and recs[0]["weight"] == 2.0
    assert recs[0]["messages"][1]["content"] == "007", "CSV cells are read as written, not as numbers"
    assert [r["id"] for r in recs] == ["faq:1", "faq:2", "faq:3"]


def test_a_bad_row_names_file_and_row_or_lands_in_the_ledger(tmp_path):
    import pandas as pd

    pd.DataFrame([{"prompt": "p", "response": "r", "split": "train"},
                  {"prompt": "p2", "response": "r2", "split": "holdout"}]).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"d.csv:row 2: field 'split' must be one of auto, train, val"):
        list(read_source("d", SourceConfig(path=str(tmp_path / "d.csv"))))
    ledger = Ledger()
    recs = list(read_source("d", SourceConfig(path=str(tmp_path / "d.csv"), on_bad_record="skip"), ledger))
    assert len(recs) == 1 and ledger.dropped_records[0]["id"] == "d:2"
    ledger.check()


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "faq.csv").write_text("q,a\nx,y\n"),
     r"faq.csv: no column 'messages', 'prompt'\+'response' or 'text'; columns: q, a \(map yours with "
     r"data.sources.s.fields.\*\)$"),
    (lambda d: __import__("pandas").DataFrame([{"prompt": 1, "response": "y"}]).to_parquet(d / "faq.parquet"),
     r"faq.parquet: column 'prompt' is int64, expected string$"),
    (lambda d: (d / "faq.xlsx").write_text("x"),
     r"^data.sources.s.path: cannot read .*faq.xlsx \(.xlsx\); readable: .jsonl, .jsonl.gz, .json, .csv, .tsv, "
     r".parquet, .arrow, a datasets save_to_disk folder, a folder or glob of .txt/.md files, or a hub dataset id "
     r"\(or set data.sources.s.format\)$"),
    (lambda d: None, r"^data.sources.s.path: no file matches .*/nothing/\*.txt$"),
    (lambda d: (d / "empty").mkdir(), r"^data.sources.s.path: .*empty is a directory with neither a datasets "
                                      r"save_to_disk dataset nor .txt/.md files"),
])
def test_bad_sources_are_one_line(tmp_path, make, message):
    make(tmp_path)
    target = {"faq.csv", "faq.parquet", "faq.xlsx"} & {p.name for p in tmp_path.iterdir()}
    path = str(tmp_path / target.pop()) if target else str(tmp_path / ("empty" if (tmp_path / "empty").exists()
                                                                          else "nothing/*.txt"))
    with pytest.raises(DataError, match=message):
        list(read_source("s", SourceConfig(path=path)))


def test_an_offline_hub_id_fails_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"^data.sources.s.path: hub dataset 'no-such-org/no-such-set' is not in "
                                        r"the local cache and this machine is offline \(HF_HUB_OFFLINE=1\)"):
        list(read_source("s", SourceConfig(path="no-such-org/no-such-set")))


# ---- declared splits -----------------------------------------------------------------------------

WORDS = ("header cache status request response server client proxy token cookie method body "
         "redirect origin agent query etag range chunk socket").split()


def _qa(i, topic="cache"):
    rng = random.Random(f"{topic}{i}")
    words = " ".join(rng.choice(WORDS) for _ in range(12))
    return {"id": f"{topic}{i}", "prompt": f"{topic} {i}: {words}?", "response": f"It tells it rule {i}."}


def test_a_declared_val_source_is_evaluated_as_given_and_train_is_cleaned_against_it(tmp_path):
    val = [{"id": f"v{i}", "prompt": f"Which request headers does Vary list for variant {i} of a page negotiated "
                                     f"by language?", "response": f"Accept-Language, for variant {i}."} for i in range(4)]
    near_dup = dict(val[1], id="dup", response="Accept-Language, for variant 1, more or less.")
    train = [_qa(i) for i in range(12)] + [near_dup, dict(val[2], id="exact")]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "val.jsonl", val)
    data = DataConfig(sources={"mine": SourceConfig(path=str(tmp_path / "train.jsonl")),
                               "held": SourceConfig(path=str(tmp_path / "val.jsonl"), split="val")})
    data.check()
    parts, _, lineage, ledger = plan_splits(data, CurationConfig(enabled=False))
    assert sorted(r["id"] for r in parts["val"]) == sorted(r["id"] for r in val), "as given: nothing carved from train"
    train_ids = {r["id"] for r in parts["train"]}
    assert not train_ids & {r["id"] for r in val}
    assert train_ids == {r["id"] for r in train} - {"dup", "exact"}
    dropped = {d["id"]: d for d in ledger.dropped_records}
    assert dropped["exact"]["reason"] == "near_duplicate_of_held_out" and dropped["exact"]["stage"] == "split"
    assert dropped["dup"]["reason"] == "overlaps_declared_val" and dropped["dup"]["stage"] == "decontaminate_train"
    ledger.check()
    by_stage = {s["stage"]: s for s in ledger.summary()}
    assert by_stage["load"]["in"] == len(train) + len(val)
    assert by_stage["split"]["in"] == by_stage["load"]["kept"] == len(train) + len(val)
    assert by_stage["decontaminate_train"]["in"] == by_stage["split"]["kept"] - len(val)
    assert len(parts["train"]) + len(parts["val"]) + len(dropped) == len(train) + len(val)
    assert lineage["held"]["split"] == "val"


def test_a_record_level_split_field_works_the_same_way(tmp_path):
    recs = [dict(_qa(i), split="train") for i in range(6)] + [dict(_qa(i, "etag"), split="validation") for i in range(3)]
    recs += [dict(_qa(i, "age"), split="test") for i in range(2)]
    write_jsonl(tmp_path / "all.jsonl", recs)
    data = DataConfig(sources={"all": SourceConfig(path=str(tmp_path / "all.jsonl"))}, )
    data.split.test = 0.1
    data.check()
    parts, _, _, ledger = plan_splits(data, CurationConfig(enabled=False))
    assert [r["id"] for r in parts["val"]] == ["etag0", "etag1", "etag2"]
    assert [r["id"] for r in parts["test"]] == ["age0", "age1"]
    assert len(parts["train"]) == 6
    ledger.check()


def test_load_sources_records_format_and_a_folder_hash(files):
    recs, lineage = load_sources({"t": SourceConfig(path=str(files / "texts")),
                                  "p": SourceConfig(path=str(files / "a.parquet"))})
    assert lineage["t"]["format"] == "text" and lineage["p"]["format"] == "parquet"
    assert len(lineage["t"]["sha256"]) == 64 and lineage["t"]["records"] == 6
