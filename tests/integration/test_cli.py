"""The CLI: one-line errors and exit code 2, `ftx spec` prints the composed spec."""

from __future__ import annotations


def test_train_with_typo_key_fails_fast_with_one_line(ftx):
    for arg in ("lora.rnak=4", "+lora.rnak=4"):
        r = ftx("train", arg, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert lines == [lines[0]] and "lora.rnak" in lines[0], r.stderr
        assert "Traceback" not in r.stderr
        assert not (ftx.cwd / "outputs").exists(), "a failed validation must not create a run dir"


def test_spec_prints_composed_spec(ftx):
    r = ftx("spec", "lora.r=16", "model=tiny_llama", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "r: 16" in r.stdout and "source: tiny" in r.stdout and "# spec hash:" in r.stdout


def test_unknown_command(ftx):
    r = ftx("frobnicate", timeout=60)
    assert r.returncode == 2 and "unknown command" in r.stderr
