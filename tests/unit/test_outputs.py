"""Output targets (ftx/runs.py): temp sibling + rename, completion marker, input/non-empty refusal, the
lock, path checks, modes under the umask. The process-level cases (SIGKILL, two writers, Ctrl-C) are in
tests/integration/test_outputs.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

import ftx.cli.main as cli
from ftx.errors import ConfigError, RunError
from ftx.runs import (COMPLETE, DIR_MODE, FILE_MODE, UMASK, atomic_write_text, earlier_run, hold_lock,
                      input_paths, output_dir, output_file)
from tests.helpers import run_main, write_jsonl


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def leftovers(parent) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_written_files_and_folders_respect_the_umask(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    (tmp_path / "plain_dir").mkdir()
    atomic_write_text(tmp_path / "atomic.txt", "x")
    assert mode(tmp_path / "atomic.txt") == mode(plain) == FILE_MODE == 0o666 & ~UMASK
    with output_dir(tmp_path / "out") as tmp:
        atomic_write_text(tmp / "a.json", "{}")
    assert mode(tmp_path / "out") == mode(tmp_path / "plain_dir") == DIR_MODE
    assert mode(tmp_path / "out" / "a.json") == FILE_MODE


def test_the_umask_is_read_not_assumed(tmp_path):
    """A team umask (002) gives group-writable files, as `open` would; read at import, in a fresh process."""
    code = ("import os, stat; from ftx.runs import atomic_write_text; "
            f"atomic_write_text({str(tmp_path / 'f')!r}, 'x'); print(oct(stat.S_IMODE(os.stat({str(tmp_path / 'f')!r}).st_mode)))")
    out = subprocess.run([sys.executable, "-c", f"import os; os.umask(0o002); exec({code!r})"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "0o664"


def test_output_dir_appears_only_complete_and_marked(tmp_path):
    target = tmp_path / "o"
    with output_dir(target, command="test") as tmp:
        assert tmp != target and tmp.parent == tmp_path and not target.exists()
        assert (tmp_path / ".o.lock").read_text().strip() == str(os.getpid())
        atomic_write_text(tmp / "kept.jsonl", "{}\n")
    assert (target / "kept.jsonl").read_text() == "{}\n"
    assert json.loads((target / COMPLETE).read_text())["command"] == "test"
    assert leftovers(tmp_path) == [], "no temporary folder or lock file is left"


def test_a_failure_inside_leaves_the_previous_target_whole(tmp_path):
    target = tmp_path / "o"
    with output_dir(target) as tmp:
        (tmp / "v1.txt").write_text("one")
    with pytest.raises(ValueError):
        with output_dir(target, overwrite=True) as tmp:
            (tmp / "v2.txt").write_text("two")
            raise ValueError("boom")
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE, "v1.txt"]
    assert leftovers(tmp_path) == []
    with output_dir(target, overwrite=True) as tmp:  # overwrite replaces the whole folder, nothing mixed in
        (tmp / "v2.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE, "v2.txt"]


def test_a_killed_writers_leftovers_are_replaced(tmp_path):
    (tmp_path / ".o.partial").mkdir()
    (tmp_path / ".o.partial" / "half.jsonl").write_text('{"cut')
    (tmp_path / ".o.old").mkdir()
    with output_dir(tmp_path / "o") as tmp:
        assert list(tmp.iterdir()) == []
        (tmp / "whole.jsonl").write_text("{}\n")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [COMPLETE, "whole.jsonl"]
    assert leftovers(tmp_path) == []


def test_non_empty_input_and_file_targets_are_refused_before_the_block(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("user data")
    src = write_jsonl(tmp_path / "data" / "src.jsonl", [{"text": "x"}])
    ran = []
    cases = [(dict(target=tmp_path / "full"), "directory exists and is not empty"),
             (dict(target=tmp_path / "data", overwrite=True, inputs=[src]), "one of this command's inputs"),
             (dict(target=src, overwrite=True), "is a file, not a folder"),
             (dict(target=src / "sub"), f"cannot create {src}/sub: {src} is a file")]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            with output_dir(**kwargs):
                ran.append(kwargs)
    assert ran == [] and (tmp_path / "full" / "mine.txt").read_text() == "user data"
    assert src.read_text() == '{"text": "x"}\n' and leftovers(tmp_path) == []


def test_output_file_refuses_an_input_and_an_existing_file(tmp_path):
    src = write_jsonl(tmp_path / "src.jsonl", [{"text": "x"}])
    with pytest.raises(ConfigError, match="one of this command's inputs"):
        with output_file(src, overwrite=True, inputs=input_paths({"data": {"sources": {"a": {"path": str(src)}}}})):
            pass
    with pytest.raises(ConfigError, match="exists .*--overwrite"):
        with output_file(tmp_path / "x.jsonl", also=[src]):
            pass
    with output_file(tmp_path / "x.jsonl", also=[tmp_path / "x.stats.json"]) as out:
        atomic_write_text(out, "{}\n")
    assert out.read_text() == "{}\n" and leftovers(tmp_path) == []


def test_input_paths_finds_every_existing_path_in_a_spec(tmp_path):
    a, b = write_jsonl(tmp_path / "a.jsonl", []), write_jsonl(tmp_path / "seeds" / "b.jsonl", [])
    spec = {"data": {"sources": {"x": {"path": str(a), "role": "domain"}}},
            "curation": {"relevance": {"seeds": [str(b), str(tmp_path / "missing.jsonl")]}}, "name": "auto"}
    assert input_paths(spec) == [a, b]


def test_a_held_lock_names_the_holders_pid(tmp_path):
    with hold_lock(tmp_path / "o", "--out"):
        with pytest.raises(RunError, match=rf"--out: {tmp_path}/o is being written by another ftx process "
                                           rf"\(pid {os.getpid()}\)"):
            with hold_lock(tmp_path / "o", "--out"):
                pass
    with hold_lock(tmp_path / "o", "--out"):  # released: taken again
        pass
    assert leftovers(tmp_path) == []


def test_earlier_run_tells_finished_from_interrupted(tmp_path):
    assert earlier_run(tmp_path) is None
    (tmp_path / ".hydra").mkdir()  # Hydra's own files do not make a run
    assert earlier_run(tmp_path) is None
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    assert "an interrupted run (no metrics.json) (metrics.jsonl)" in earlier_run(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    assert "a finished run" in earlier_run(tmp_path)



def test_a_second_export_into_the_same_folder_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    import ftx.record.export as export_mod

    for name in ("r1", "r2"):
        (tmp_path / name / "adapter").mkdir(parents=True)
        (tmp_path / name / "config.yaml").write_text("model: {}\n")
        (tmp_path / name / "adapter" / "adapter_config.json").write_text("{}")
    loaded = []
    monkeypatch.setattr(export_mod, "read_config", lambda run_dir: loaded.append(run_dir) or {})
    (tmp_path / "E").mkdir()
    (tmp_path / "E" / "model.safetensors").write_text("the first export")
    code, err = run_main(["export", str(tmp_path / "r2"), "--out", str(tmp_path / "E")], capsys)
    assert (code, err) == (2, f"ftx: config error: --out {tmp_path}/E: directory exists and is not empty (choose a "
                              "new one, or pass --overwrite to replace it)\n")
    code, err = run_main(["export", str(tmp_path / "r2"), "--out", str(tmp_path / "r2" / "adapter")], capsys)
    assert code == 2 and "is one of this command's inputs" in err
    assert loaded == [] and (tmp_path / "E" / "model.safetensors").read_text() == "the first export"


def test_an_unusable_ftx_cache_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("FTX_CACHE", str(tmp_path / "file" / "models"))
    src = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q?", "response": "a."}])
    code, err = run_main(["spec", "model=tiny_llama", "curation=none", f"data.sources.http.path={src}",
                          f"data.sources.general.path={src}", "--data"], capsys)
    assert (code, err) == (2, f"ftx: config error: FTX_CACHE: cannot create {tmp_path}/file/models: "
                              f"{tmp_path}/file is a file, not a folder\n")


def test_overwrite_is_a_flag_of_every_writing_command(capsys):
    for cmd in ("curate", "augment", "export", "report", "compare"):
        with pytest.raises(SystemExit) as e:
            cli.main([cmd, "--help"])
        assert e.value.code == 0 and "--overwrite" in capsys.readouterr().out, cmd
