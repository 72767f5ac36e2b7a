"""A user's own CSV data and validation file, added from the command line; the run directory stands alone."""

from __future__ import annotations

import csv
import json

import yaml

from tests.helpers import only_run_dir, run_ftx

import random

TOPICS = ("cache", "cookie", "proxy", "redirect", "etag", "range", "origin", "socket", "chunk", "token")
WORDS = ("header status request response server client method body agent query stream upstream gateway "
         "timeout retry backoff tls certificate vary encoding gzip compression keepalive pipeline").split()


def _sentence(seed: str, n: int = 10) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["question", "answer"])
        w.writeheader()
        w.writerows(rows)


def test_train_on_a_csv_source_with_its_own_val_file_from_the_command_line(ftx, tmp_path_factory):
    _write_csv(ftx.cwd / "faq.csv", [{"question": f"{t} {i}: {_sentence(t + str(i))}?",
                                      "answer": f"{_sentence('a' + t + str(i), 6)}."}
                                     for t in TOPICS for i in range(3)])
    _write_csv(ftx.cwd / "faq_val.csv", [{"question": f"held out {t}: {_sentence('v' + t)}?",
                                          "answer": f"{_sentence('va' + t, 6)}."} for t in TOPICS[:4]])
    mine = ["+data.sources.mine.path=faq.csv", "+data.sources.mine.role=domain",
            "+data.sources.mine.fields.prompt=question", "+data.sources.mine.fields.response=answer"]
    val = ["+data.sources.mine_val.path=faq_val.csv", "+data.sources.mine_val.split=val",
           "+data.sources.mine_val.fields.prompt=question", "+data.sources.mine_val.fields.response=answer"]
    r = ftx("train", "experiment=tiny_smoke", "~data.sources.http", "~data.sources.general", *mine, *val,
            "train.max_steps=2", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run_dir(ftx.cwd)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["sources"]["mine"]["path"] == str(ftx.cwd / "faq.csv"), "stored absolute"
    assert set(config["data"]["sources"]) == {"mine", "mine_val"}
    lineage = json.loads((run / "manifest.json").read_text())["data_sources"]
    assert lineage["mine"]["path_as_written"] == "faq.csv" and lineage["mine"]["format"] == "csv"
    assert lineage["mine_val"]["split"] == "val" and lineage["mine_val"]["records"] == 4
    split = json.loads((run / "data" / "split_manifest.json").read_text())
    assert sorted(e["id"] for e in split["val"]) == [f"mine_val:{i}" for i in range(1, 5)]
    assert {e["source"] for e in split["train"]} == {"mine"} and len(split["train"]) == 30
    card = (run / "adapter" / "README.md")
    if card.exists():
        assert "base_model" not in card.read_text().split("---")[1], "the tiny random model is no hub model"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    check = run_ftx(["eval", str(run), "--check"], elsewhere, timeout=900)
    assert check.returncode == 0, check.stderr[-3000:]
