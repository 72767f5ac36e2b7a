"""Data versions: content-addressed ids, `ftx data diff` lists exactly the changed records, and the run's
data folder names its version."""

from __future__ import annotations

import json

from ftx.cli.main import main
from ftx.data import versions
from ftx.data.build import prepare
from ftx.engine.model import load_tokenizer
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig, FormatConfig, SourceConfig
from ftx.spec.model import ModelConfig
from tests.helpers import write_jsonl


def records(n=8):
    return [{"id": f"r{i}", "prompt": f"What does header {i} do?", "response": f"Header {i} sets option {i}."}
            for i in range(n)]


def cli(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def curate_to(tmp_path, capsys, name, recs):
    src = write_jsonl(tmp_path / f"{name}.jsonl", recs)
    out = tmp_path / name
    code, stdout, stderr = cli(capsys, "curate", "curation=none", "model=tiny_llama", "data=http_demo",
                               f"data.sources.http.path={src}", "~data.sources.general", "--out", str(out))
    assert code == 0, stderr
    return out, stdout


def test_version_id_depends_on_content_and_curation_config_only():
    recs = [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}]
    v = versions.compute(recs, {"stages": ["normalize"], "cache_dir": "/x"})
    # Order, derived fields and where the cache lives do not matter; content and curation config do.
    same = versions.compute([dict(recs[1], scores={"q": 1.0}), dict(recs[0], cluster="c1")],
                            {"stages": ["normalize"], "cache_dir": "/elsewhere"})
    assert v["id"] == same["id"] and v["id"].startswith("dv-")
    assert versions.compute(recs, {"stages": ["quality"]})["id"] != v["id"]
    assert versions.compute([recs[0], dict(recs[1], text="two!")], {"stages": ["normalize"]})["id"] != v["id"]


def test_data_diff_lists_exactly_the_added_removed_and_changed_records(tmp_path, capsys):
    old = records()
    new = [dict(r) for r in old if r["id"] != "r2"]                      # removed r2
    new[4] = dict(new[4], response="Header 5 sets a different option.")  # changed r5
    new.append({"id": "r9", "prompt": "What does header 9 do?", "response": "Header 9 sets option 9."})  # added
    a, out_a = curate_to(tmp_path, capsys, "a", old)
    b, _ = curate_to(tmp_path, capsys, "b", new)
    va = json.loads((a / "version.json").read_text())
    assert f"data version {va['id']}" in out_a and va["records"] == 8
    code, stdout, stderr = cli(capsys, "data", "diff", str(a), str(b), "--json")
    assert code == 0, stderr
    d = json.loads(stdout)
    assert (d["added"], d["removed"], d["changed"], d["unchanged"]) == (["r9"], ["r2"], ["r5"], 6)
    assert d["a"] == va["id"] and d["a"] != d["b"] and not d["curation_changed"]
    code, stdout, _ = cli(capsys, "data", "diff", str(a), str(b))
    assert "+ r9" in stdout and "- r2" in stdout and "~ r5" in stdout and "1 added, 1 removed, 1 changed" in stdout
    # An identical re-curation is the same version (diff with itself is empty).
    a2, _ = curate_to(tmp_path, capsys, "a2", old)
    assert json.loads((a2 / "version.json").read_text())["id"] == va["id"]


def test_data_diff_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "data", "diff", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "usage: ftx data diff" in err
    code, _, err = cli(capsys, "data", "diff", str(tmp_path), str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "holds no data version" in err
    code, _, err = cli(capsys, "data", "merge")
    assert code == 2 and "unknown subcommand 'merge'" in err


def test_run_data_folder_and_stats_name_the_version(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", records(20))
    data = DataConfig(sources={"d": SourceConfig(path=str(src))}, format=FormatConfig(max_length=64))
    data.split.decontaminate = False
    prep = prepare(data, CurationConfig(), load_tokenizer(ModelConfig(source="tiny", dtype="fp32")), tmp_path)
    on_disk = versions.load(tmp_path)
    assert prep.stats["version"]["id"] == on_disk["id"] and on_disk["records"] == 20
    assert sorted(on_disk["hashes"]) == sorted(f"r{i}" for i in range(20))


def test_a_run_and_ftx_curate_name_the_same_data_the_same_version(tmp_path, capsys):
    recs = records(20)
    out, _ = curate_to(tmp_path, capsys, "c", recs)
    data = DataConfig(sources={"http": SourceConfig(path=str(tmp_path / "c.jsonl"))}, format=FormatConfig(max_length=64))
    data.split.decontaminate = False
    prepare(data, CurationConfig(), load_tokenizer(ModelConfig(source="tiny", dtype="fp32")), tmp_path / "run")
    code, stdout, stderr = cli(capsys, "data", "diff", str(tmp_path / "run"), str(out), "--json")
    d = json.loads(stdout)
    assert code == 0 and d["a"] == d["b"] and d["unchanged"] == 20 and not (d["added"] or d["removed"] or d["changed"])


def test_prepared_data_carries_the_accepted_answers_evaluation_needs(tmp_path, monkeypatch):
    from ftx.data import sources
    from ftx.eval.generate import split_prompts

    recs = [dict(r, answers=[f"option {i}"] if i % 2 else f"opt {i}") for i, r in enumerate(records(20))]
    data = DataConfig(sources={"d": SourceConfig(path=str(write_jsonl(tmp_path / "d.jsonl", recs)))},
                      format=FormatConfig(max_length=64))
    data.split.decontaminate = False
    tok = load_tokenizer(ModelConfig(source="tiny", dtype="fp32"))
    prep = prepare(data, CurationConfig(), tok, None)
    assert prep.answers == {f"r{i}": [f"option {i}"] if i % 2 else [f"opt {i}"] for i in range(20)}
    monkeypatch.setattr(sources, "load_sources", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-read")))
    items = split_prompts(prep.val, tok, prep.answers)
    assert items and all(it["answers"][1:] == prep.answers[it["id"]] for it in items)
