"""benchmarks/qa_sets.py builds real QA sets from this machine's dpkg database; the `descriptions` set is the
one with long answers of every length (the packing figures of docs/training.md are measured on it)."""

from __future__ import annotations

import importlib.util
import json

from tests.helpers import ROOT

_spec = importlib.util.spec_from_file_location("qa_sets", ROOT / "benchmarks" / "qa_sets.py")
qa_sets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qa_sets)

STATUS = """\
Package: zstd
Status: install ok installed
Section: utils
Description: fast lossless compression algorithm -- CLI tool
 Zstd, short for Zstandard, is a fast lossless compression algorithm, targeting
 real-time compression scenarios at zlib-level compression ratio.
 .
 This package contains the CLI program implementing zstd.
 Features:
  * multithreaded compression
  * dictionary training

Package: libfoo1
Status: install ok installed
Description: foo runtime library
 Short.

Package: bar
Status: install ok installed
Description: a package with only a synopsis

Package: removed
Status: deinstall ok config-files
Description: not installed any more
 This package's description is long enough to count but it is not installed on the machine.
"""


def test_descriptions_keep_the_maintainers_paragraphs_and_lists(tmp_path):
    path = tmp_path / "status"
    path.write_text(STATUS)
    recs = qa_sets.descriptions(qa_sets.read_status(path))
    assert [r["key"] for r in recs] == ["zstd"]  # too short, synopsis only and not installed are left out
    text = recs[0]["response"]
    assert recs[0]["prompt"] == "Describe the Debian package `zstd`."
    assert text.split("\n\n") == [
        "Fast lossless compression algorithm -- CLI tool.",
        "Zstd, short for Zstandard, is a fast lossless compression algorithm, targeting real-time compression "
        "scenarios at zlib-level compression ratio.",
        "This package contains the CLI program implementing zstd. Features:",
        "* multithreaded compression",
        "* dictionary training",
    ]
    assert recs[0]["answers"] == [text]


def test_descriptions_set_from_this_machine_spreads_in_length_and_keeps_packages_apart(tmp_path):
    assert qa_sets.main(["--out", str(tmp_path), "--sets", "descriptions", "--train", "60", "--heldout", "20"]) == 0
    d = tmp_path / "descriptions"
    train = [json.loads(l) for l in (d / "train.jsonl").read_text().splitlines()]
    held = [json.loads(l) for l in (d / "heldout.jsonl").read_text().splitlines()]
    assert len(train) == 60 and len(held) == 20
    words = sorted(len(r["response"].split()) for r in train)
    assert 10 <= words[0] and words[-1] <= 400
    assert words[-1] >= 3 * words[0]  # a real spread of lengths, not one template
    pkgs = lambda rows: {r["prompt"].split("`")[1] for r in rows}
    assert not pkgs(train) & pkgs(held)
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["candidates"] >= 80 and "/var/lib/dpkg/status" in manifest["sources"]
