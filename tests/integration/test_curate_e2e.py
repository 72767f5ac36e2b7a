"""`ftx curate` as a subprocess: the real command's one-line errors (moved from tests/unit/test_curate_cli.py)."""

from __future__ import annotations

from tests.helpers import write_jsonl


def test_one_line_error_from_the_real_command(ftx, tmp_path):
    bad = write_jsonl(tmp_path / "x.jsonl", [{"text": "ok text"}])
    bad.write_text(bad.read_text() + "{oops\n")
    r = ftx("curate", f"data.sources.http.path={bad}", "--out", "o", timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "x.jsonl:2: malformed JSON" in r.stderr
