"""The user's config folder layered in front of ftx's (ftx.spec.tree.layers + hydra_plugins/ftx_searchpath),
and `ftx init`'s project. In-process (Hydra's compose API); the Hydra app run and sweeps from an installed
wheel are tests/integration/test_wheel_install.py, the app run from a checkout test_user_project.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ftx.cli.main as cli
from ftx.cli import init
from ftx.conf import PACKAGED
from ftx.errors import ConfigError
from ftx.spec import tree
from ftx.spec.run import build_spec
from ftx.spec.tree import LAYER_ENV, compose, compose_choices, layers


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with conf/data/mine.yaml, conf/experiment/x.yaml and a model option named like ftx's."""
    monkeypatch.delenv("FTX_CONF", raising=False)
    monkeypatch.setattr(tree, "CONF_DIR", PACKAGED)
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "experiment").mkdir()
    (conf / "model").mkdir()
    (conf / "data" / "mine.yaml").write_text("# ftx train data=mine\nname: mine\nsources:\n  faq:\n    path: faq.jsonl\n")
    (conf / "experiment" / "x.yaml").write_text(
        "# @package _global_\n# ftx train experiment=x\ndefaults:\n  - override /data: mine\n  - _self_\n\nname: x_exp\n")
    (conf / "model" / "tiny_llama.yaml").write_text("# ftx train model=tiny_llama\nname: my-tiny\nsource: tiny\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_main(args, capsys):
    try:
        cli.main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_user_options_resolve_and_packaged_ones_still_work(project):
    cfg, choices, where = compose_choices(["data=mine", "lora=dora", "quant=nf4", "zero=zero2"])
    assert where.user == (project / "conf").resolve() and where.base == PACKAGED
    assert list(cfg.data.sources) == ["faq"] and cfg.data.name == "mine"
    assert (cfg.lora.method, cfg.quant.mode, cfg.zero.stage) == ("dora", "nf4", 2)
    assert choices["data"] == "mine" and choices["lora"] == "dora"
    assert where.origin("data", "mine") == "./conf" and where.origin("lora", "dora") == "ftx"
    assert build_spec(cfg).data.sources["faq"].path == "faq.jsonl"


def test_a_user_experiment_picks_a_user_option(project):
    cfg = compose(["experiment=x"])
    assert cfg.name == "x_exp" and list(cfg.data.sources) == ["faq"]


def test_the_users_option_wins_over_ftxs_of_the_same_name(project):
    cfg, _, where = compose_choices(["model=tiny_llama"])
    assert cfg.model.name == "my-tiny"
    assert where.origin("model", "tiny_llama") == "./conf (shadows ftx's tiny_llama)"


def test_without_a_user_folder_only_ftxs_tree(tmp_path, monkeypatch):
    monkeypatch.delenv("FTX_CONF", raising=False)
    monkeypatch.setattr(tree, "CONF_DIR", PACKAGED)
    monkeypatch.chdir(tmp_path)
    where = layers()
    assert where.user is None and where.base == PACKAGED
    with pytest.raises(ConfigError, match=r"^unknown option 'mine' for group 'data' \(available: http_demo, http_mix, http_prefs\)$"):
        compose(["data=mine"])


def test_compose_leaves_no_layer_behind(project, monkeypatch):
    """The plugin's variable is set only while composing: a later compose elsewhere sees ftx's tree alone."""
    monkeypatch.delenv(LAYER_ENV, raising=False)
    compose(["data=mine"])
    assert LAYER_ENV not in os.environ
    os.chdir(project / "conf")  # no conf/ here
    with pytest.raises(ConfigError, match="unknown option 'mine'"):
        compose(["data=mine"])


def test_config_dir_flag_then_ftx_conf_then_cwd(project, monkeypatch, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    (other / "data").mkdir()
    (other / "data" / "theirs.yaml").write_text("name: theirs\n")
    assert layers(str(other)).user == other.resolve()  # --config-dir beats ./conf
    assert layers(str(other)).describe({"data": "theirs"})[1] == f"data=theirs: {other}"
    monkeypatch.setenv("FTX_CONF", str(other))  # a folder without config.yaml: layered, not a replacement
    assert tree.conf_dir() == PACKAGED  # the base stays ftx's
    where = layers()
    assert where.user == other.resolve() and where.found_by == "FTX_CONF" and where.base == PACKAGED
    assert compose(["data=theirs", "lora=dora"]).data.name == "theirs"


def test_a_full_tree_replaces_ftxs(project, tmp_path_factory, monkeypatch):
    """A folder with its own config.yaml (a copy of the whole tree) is the tree: no layering (today's FTX_CONF)."""
    import shutil

    from ftx.conf import conf_dir

    full = tmp_path_factory.mktemp("full") / "conf"
    shutil.copytree(PACKAGED, full, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (full / "data" / "http_demo.yaml").unlink()
    (full / "data" / "only_here.yaml").write_text("name: only_here\n")
    monkeypatch.setenv("FTX_CONF", str(full))
    assert conf_dir() == full
    monkeypatch.setattr(tree, "CONF_DIR", conf_dir())
    where = layers()
    assert where.user is None and where.base == full  # ./conf of the project is not layered over FTX_CONF
    with pytest.raises(ConfigError, match=r"^unknown option 'mine' for group 'data' \(available: http_mix, http_prefs, only_here\)$"):
        compose(["data=mine"])
    assert layers(str(full)).user is None and layers(str(full)).base == full


def test_unknown_option_lists_both_folders(project):
    with pytest.raises(ConfigError) as e:
        compose(["data=nope"])
    assert str(e.value) == "unknown option 'nope' for group 'data' (yours in ./conf/data: mine; ftx's: http_demo, http_mix, http_prefs)"
    with pytest.raises(ConfigError) as e:
        compose(["lora=nope"])
    assert str(e.value) == "unknown option 'nope' for group 'lora' (yours in ./conf/lora: none; ftx's: dora, full, lora, rslora)"


def test_broken_yaml_in_the_user_folder_names_file_line_column(project):
    (project / "conf" / "data" / "bad.yaml").write_text("name: bad\nsources:\n  x:\n    path: [a.jsonl\n")
    with pytest.raises(ConfigError) as e:
        compose(["data=bad"])
    assert str(e.value).startswith(f"{(project / 'conf' / 'data' / 'bad.yaml').resolve()}:5:1: malformed YAML (")


def test_missing_config_dir(project):
    with pytest.raises(ConfigError, match=r"^--config-dir nope: no such folder \(give the folder holding your config"):
        layers("nope")


def test_spec_says_where_each_option_came_from(project, capsys):
    code, out, err = run_main(["spec", "data=mine", "model=tiny_llama", "lora=dora"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert f"# config folders, first match wins: ./conf = {(project / 'conf').resolve()} (the working directory), " \
           f"then ftx = {PACKAGED}" in lines
    assert "# data=mine: ./conf" in lines and "# lora=dora: ftx" in lines
    assert "# model=tiny_llama: ./conf (shadows ftx's tiny_llama)" in lines


def test_spec_config_dir_flag(project, capsys, tmp_path_factory):
    other = tmp_path_factory.mktemp("cd")
    (other / "data").mkdir()
    (other / "data" / "theirs.yaml").write_text("name: theirs\nsources:\n  t:\n    path: t.jsonl\n")
    code, out, err = run_main(["spec", "--config-dir", str(other), "data=theirs"], capsys)
    assert code == 0, err
    assert f"# data=theirs: {other}" in out.splitlines()
    code, _, err = run_main(["spec", "--config-dir", str(other), "data=mine"], capsys)  # ./conf is not searched then
    assert code == 2 and err == (f"ftx: config error: unknown option 'mine' for group 'data' (yours in {other}/data: "
                                 "theirs; ftx's: http_demo, http_mix, http_prefs)\n")


# --- ftx init

def test_init_writes_a_project_that_composes(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FTX_CONF", raising=False)
    monkeypatch.setattr(tree, "CONF_DIR", PACKAGED)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["init", "proj"], capsys)
    assert code == 0, err
    proj = tmp_path / "proj"
    written = sorted(str(p.relative_to(proj)) for p in proj.rglob("*") if p.is_file())
    assert written == sorted(init.files(init.DATA_NAME)) and "cd proj && ftx spec experiment=first_run" in out
    assert (proj / init.DATA_FILE).is_file() and len((proj / init.DATA_FILE).read_text().splitlines()) >= 20
    assert (proj / "relevance" / "seeds.jsonl").read_text() == ""
    for rel in written:  # every config and the README open with the command that uses the file
        text = (proj / rel).read_text()
        if rel.endswith(".yaml"):
            first = [l for l in text.splitlines() if l != "# @package _global_"][0]
            assert first.startswith("# ftx "), (rel, first)
            assert first.removeprefix("# ").split()[-1].split("=")[-1] == Path(rel).stem, rel
        elif rel == "README.md":
            assert text.splitlines()[0].startswith("# ftx project: run `ftx spec")
    monkeypatch.chdir(proj)
    for overrides in ([f"experiment={init.EXPERIMENT}"], [f"+sweep={init.SWEEP}"]):
        code, out, err = run_main(["spec", *overrides, "model=tiny_llama", "--data"], capsys)
        assert code == 0, (overrides, err)
        assert f"# data={init.DATA_NAME}: ./conf" in out and "records per split: train " in out, out[-2000:]
    code, out, _ = run_main(["spec", f"+sweep={init.SWEEP}", "model=tiny_llama"], capsys)
    assert "name: my_sweep" in out and "# sweep=my_sweep: ./conf" in out and f"# experiment={init.EXPERIMENT}: ./conf" in out


def test_init_refuses_a_non_empty_folder_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "notes.txt").write_text("mine")
    code, _, err = run_main(["init", "proj"], capsys)
    assert code == 2 and err == ("ftx: config error: ftx init: proj is not empty (ftx init never overwrites; "
                                 "give a new or empty folder)\n")
    assert [p.name for p in (tmp_path / "proj").iterdir()] == ["notes.txt"]
    code, _, err = run_main(["init", "proj/notes.txt"], capsys)
    assert code == 2 and err == "ftx: config error: ftx init: proj/notes.txt is a file (give a new or empty folder)\n"
    code, _, err = run_main(["init", "proj/notes.txt/sub"], capsys)  # under a file: cannot be created
    assert code == 2 and err.startswith("ftx: config error: ftx init: cannot create proj/notes.txt/sub/") and \
        err.endswith("(Not a directory)\n"), err


def test_init_into_an_empty_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["init"], capsys)
    assert code == 0 and (tmp_path / "conf" / "data" / f"{init.DATA_NAME}.yaml").is_file(), err
    assert "next: ftx spec experiment=first_run" in out


@pytest.mark.parametrize("module", ["spec", "curate", "augment", "train"])
def test_commands_that_compose_take_config_dir(module):
    import importlib

    from ftx.cli.args import parse

    mod = importlib.import_module(f"ftx.cli.{module}")
    extra = ["--out", "x.jsonl"] if module == "augment" else []
    assert parse(mod.parser(), ["--config-dir", "my/conf", "data=mine", *extra]).config_dir == "my/conf"
