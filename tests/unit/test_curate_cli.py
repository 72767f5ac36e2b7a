"""`ftx curate`: the output folder, and one-line errors for bad input."""

from __future__ import annotations

import json
import random

import pytest

from ftx.cli.main import main
from tests.helpers import write_jsonl
from tests.unit.test_curate import HTTP
from tests.unit.test_curate_relevance import doc, labelled

PLANTED = {  # id → (stage, reason) it must be dropped for
    "dup": ("curate:exact_dedup", "exact_duplicate"),
    "near": ("curate:near_dedup", "near_duplicate"),
    "german": ("curate:language", "language"),
    "nav": ("curate:quality", "boilerplate"),
    "offdomain": ("curate:relevance", "off_domain"),
    "blocked": ("curate:blocklist", "blocklist"),
    "empty": ("curate:normalize", "empty_text"),
}


@pytest.fixture
def demo(tmp_path):
    """A small corpus with planted noise, seeds and a labelled dev set, like the shipped demo data."""
    rng = random.Random(0)
    domain = [{"id": f"d{i}", "prompt": f"Question {i} about HTTP?", "response": doc(rng, 0.95)} for i in range(30)]
    long = doc(rng, 0.95, n=60)
    domain += [
        {"id": "dup", "prompt": "Question 0 about HTTP?", "response": domain[0]["response"]},
        {"id": "long", "text": long},
        {"id": "near", "text": long.replace(" ", "  ", 3) + " etag"},
        {"id": "german", "text": "Der Server antwortet mit einem Statuscode, wenn die Ressource nicht gefunden wurde."},
        {"id": "nav", "text": "Home | About | Contact | Blog\nSkip to content\n© 2024 Example Inc.\nPrivacy Policy"},
        {"id": "offdomain", "text": doc(rng, 0.0)},
        {"id": "blocked", "text": "INTERNAL USE ONLY. " + HTTP[2]},
        {"id": "pii", "text": doc(rng, 0.95) + " Questions to jane.roe@mailbox.org or +44 20 7946 0958."},
        {"id": "moji", "text": "The cafÃ© " + doc(rng, 0.95)},
        {"id": "synthetic", "text": doc(rng, 0.95), "synthetic": True},
        {"id": "empty", "text": "  \u200b "},
    ]
    general = [{"id": f"g{i}", "prompt": f"General question {i}?", "response": doc(rng, 0.0)} for i in range(10)]
    seeds = [{"text": doc(rng, 1.0)} for _ in range(20)]
    files = {"http": write_jsonl(tmp_path / "http.jsonl", domain),
             "general": write_jsonl(tmp_path / "general.jsonl", general),
             "seeds": write_jsonl(tmp_path / "seeds.jsonl", seeds),
             "dev": write_jsonl(tmp_path / "dev.jsonl", labelled(3, 300))}
    args = [f"data.sources.http.path={files['http']}", f"data.sources.general.path={files['general']}",
            f"curation.relevance.seeds=[{files['seeds']}]", f"curation.relevance.dev=[{files['dev']}]",
            f"curation.cache_dir={tmp_path / 'cache'}"]
    return tmp_path, args


def curate_cli(*args, capsys):
    try:
        main(["curate", *args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_curate_writes_kept_dropped_ledger_and_report(demo, capsys):
    tmp, args = demo
    out = tmp / "out"
    code, stdout, stderr = curate_cli("curation=default", *args, "--out", str(out), capsys=capsys)
    assert code == 0, stderr
    for name in ("kept.jsonl", "dropped.jsonl", "ledger.json", "report.json", "report.md", "config.yaml",
                 "hist_relevance.png", "hist_quality.png", "hist_language.png", "hist_words.png",
                 "pr_curve.png", "pr_curve.json", "active_learning.jsonl", "lineage.json"):
        assert (out / name).is_file(), name
    kept = {r["id"]: r for r in map(json.loads, (out / "kept.jsonl").read_text().splitlines())}
    dropped = {d["id"]: d for d in map(json.loads, (out / "dropped.jsonl").read_text().splitlines())}
    for rid, (stage, reason) in PLANTED.items():
        assert (dropped[rid]["stage"], dropped[rid]["reason"]) == (stage, reason), rid
    assert dropped["offdomain"]["score"] is not None and dropped["dup"]["detail"] == "duplicate of d0"
    assert "<EMAIL>" in kept["pii"]["text"] and "<PHONE>" in kept["pii"]["text"]
    assert "café" in kept["moji"]["text"] and kept["synthetic"]["synthetic"] is True
    assert all(r["cluster"] and "relevance" in r["scores"] for r in kept.values())
    assert sum(k.startswith("g") for k in kept) == 10, "general records are never dropped for relevance"
    assert set(kept) | set(dropped) == {f"d{i}" for i in range(30)} | {f"g{i}" for i in range(10)} | set(PLANTED) | \
        {"long", "pii", "moji", "synthetic"}
    ledger = json.loads((out / "ledger.json").read_text())
    assert all(s["in"] == s["kept"] + s["dropped"] for s in ledger)
    assert ledger[-1]["kept"] == len(kept)
    report = json.loads((out / "report.json").read_text())
    assert report["records_in"] == len(kept) + len(dropped) and report["kept"] == len(kept)
    assert "| relevance |" in (out / "report.md").read_text() and "curate:relevance" in stdout
    # the same command again: everything comes from the cache
    code, _, stderr = curate_cli("curation=default", *args, "--out", str(tmp / "again"), capsys=capsys)
    assert code == 0, stderr
    report2 = json.loads((tmp / "again" / "report.json").read_text())
    assert all(s["cached"] for s in report2["stages"]) and report2["kept"] == report["kept"]


def test_curation_none_keeps_everything(demo, capsys):
    tmp, args = demo
    code, stdout, stderr = curate_cli("curation=none", *args[:2], "--out", str(tmp / "o"), capsys=capsys)
    assert code == 0, stderr
    assert len((tmp / "o" / "kept.jsonl").read_text().splitlines()) == 51 and "curation is off" in stdout


@pytest.mark.parametrize("content,needle", [
    (b'{"text": "fine record here"}\n{"text": "broken\n', r"bad.jsonl:2: malformed JSON"),
    (b'{"body": "x", "title": "y"}\n', r"bad.jsonl:1: no field 'messages', 'prompt'+'response' or 'text'; "
                                       r"fields present: body, title"),
    (b"", r"bad.jsonl holds no records"),
    (b'{"text": "caf\xe9 latin-1 bytes"}\n', r"bad.jsonl:1: not valid UTF-8"),
    (b'{"text": "' + b"x" * (9 * 2**20) + b'"}\n', r"bad.jsonl:1: record is 9.0 MiB, over the 8 MiB limit"),
])
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    code, _, err = curate_cli(f"data.sources.http.path={bad}", "curation=none", "--out", str(tmp_path / "o"),
                              capsys=capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ftx: data error:") and needle in err, err
    assert "Traceback" not in err


def test_bad_records_can_be_skipped_into_the_ledger(demo, capsys):
    tmp, args = demo
    bad = tmp / "http_bad.jsonl"
    bad.write_text((tmp / "http.jsonl").read_text() + '{"text": oops}\n')
    out = tmp / "o"
    code, _, err = curate_cli(*args, f"data.sources.http.path={bad}", "data.sources.http.on_bad_record=skip",
                              "curation=default", "--out", str(out), capsys=capsys)
    assert code == 0, err
    dropped = [json.loads(l) for l in (out / "dropped.jsonl").read_text().splitlines()]
    skipped = [d for d in dropped if d["stage"] == "load"]
    assert len(skipped) == 1 and skipped[0]["reason"] == "bad_record" and "malformed JSON" in skipped[0]["detail"]
    assert skipped[0]["id"].endswith(":42")


def test_every_text_empty_still_accounts_for_each_record(tmp_path, capsys):
    src = write_jsonl(tmp_path / "e.jsonl", [{"text": ""}, {"text": " \n "}])
    out = tmp_path / "o"
    code, stdout, err = curate_cli(f"data.sources.http.path={src}", "~data.sources.general", "curation=default",
                                   "curation.stages=[normalize]", f"curation.cache_dir={tmp_path / 'c'}",
                                   "--out", str(out), capsys=capsys)
    assert code == 0, err
    assert "0 of 2 records kept" in stdout
    code, stdout, err = curate_cli(f"data.sources.http.path={src}", "~data.sources.general", "curation=default",
                                   "curation.stages=[normalize]", f"curation.cache_dir={tmp_path / 'c'}",
                                   "--out", str(tmp_path / "again"), capsys=capsys)
    assert code == 0 and "0 of 2 records kept" in stdout, err  # the empty stage output reloads from the cache
    reasons = {json.loads(l)["reason"] for l in (out / "dropped.jsonl").read_text().splitlines()}
    assert "empty_text" in reasons


def test_cli_flag_errors(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    code, _, err = curate_cli("--out", str(tmp_path / "full"), capsys=capsys)
    assert code == 2 and "directory exists and is not empty" in err
    code, _, err = curate_cli("--frobnicate", capsys=capsys)
    assert code == 2 and "unknown flag '--frobnicate'" in err
    code, _, err = curate_cli("curation.stages=[normalize,dedupe]", "curation.enabled=true", capsys=capsys)
    assert code == 2 and "unknown stage 'dedupe'" in err
