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


def test_read_jsonl_checks_user_files_and_tolerates_a_cut_log_line(tmp_path, monkeypatch):
    import pytest

    from ftx import runs
    from ftx.errors import DataError
    from ftx.runs import MetricsLog, read_jsonl

    p = tmp_path / "u.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\n')
    assert list(read_jsonl(p)) == [(1, {"a": 1}), (3, {"a": 2})]  # BOM accepted, blank lines skipped
    for body, msg in [(b'{"a": 1}\n[1]\n', r"u\.jsonl:2: expected a JSON object, got list"),
                      (b'{"a": "caf\xe9"}\n', r"u\.jsonl:1: not valid UTF-8 \(byte 10\)"),
                      (b'{"a": 1}\n{"a": \n', r"u\.jsonl:2: malformed JSON"),
                      (b'{"a": "' + b"x" * 64 + b'"}\n', r"u\.jsonl:1: record is .* MiB limit per record")]:
        p.write_bytes(body)
        monkeypatch.setattr(runs, "MAX_RECORD_BYTES", 32)
        with pytest.raises(DataError, match=msg):
            list(read_jsonl(p))
        monkeypatch.undo()
    p.write_bytes(b'{"a": 1}\n{"a": \n{"a": 3}\n')
    seen = []
    assert list(read_jsonl(p, on_error=lambda n, e: seen.append(n))) == [(1, {"a": 1}), (3, {"a": 3})]
    assert seen == [2]
    log = tmp_path / "metrics.jsonl"
    log.write_bytes(b'{"step": 1}\n{"step": 2, "lo')  # a crash cut the last line
    assert MetricsLog(log).read() == [{"step": 1}]


def test_a_damaged_or_mislabelled_gz_is_one_data_error_never_a_traceback(tmp_path):
    import gzip

    import pytest

    from ftx.errors import DataError
    from ftx.runs import read_jsonl

    lines = b"".join(b'{"prompt": "q%d", "response": "a"}\n' % i for i in range(2000))
    whole = gzip.compress(lines)
    (tmp_path / "ok.jsonl.gz").write_bytes(whole)
    assert sum(1 for _ in read_jsonl(tmp_path / "ok.jsonl.gz")) == 2000
    (tmp_path / "plain.jsonl.gz").write_bytes(lines)  # named .gz, never compressed
    with pytest.raises(DataError, match=r"plain.jsonl.gz: is not gzip-compressed \(name it without .gz\)"):
        list(read_jsonl(tmp_path / "plain.jsonl.gz"))
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # a download cut short
    with pytest.raises(DataError, match=r"cut.jsonl.gz: compressed stream is damaged or cut after line \d+ "):
        list(read_jsonl(tmp_path / "cut.jsonl.gz"))
