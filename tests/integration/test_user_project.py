"""Hydra's own app run (`ftx train`, not the compose API) sees the user's folder in front of ftx's: the
composed job config Hydra prints (`--cfg job`, no training) holds the user's options, the user's option of
the same name as ftx's wins, and `--config-dir` is ftx's flag (in front), not Hydra's (behind)."""

from __future__ import annotations

from tests.helpers import run_ftx


def _project(root):
    conf = root / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "model").mkdir()
    (conf / "data" / "mine.yaml").write_text("name: mine\nsources:\n  faq:\n    path: faq.jsonl\n")
    (conf / "model" / "tiny_llama.yaml").write_text("name: my-tiny\nsource: tiny\n")
    return conf


def test_hydra_app_run_layers_the_working_directorys_conf(tmp_path):
    _project(tmp_path)
    r = run_ftx(["train", "--cfg", "job", "data=mine", "model=tiny_llama", "lora=dora"], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "name: my-tiny" in r.stdout and "faq:" in r.stdout and "method: dora" in r.stdout


def test_hydra_app_run_with_config_dir(tmp_path):
    conf = _project(tmp_path / "elsewhere")
    r = run_ftx(["train", "--cfg", "job", f"--config-dir={conf}", "model=tiny_llama"], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "name: my-tiny" in r.stdout  # in front of ftx's tiny_llama (Hydra's --config-dir would lose to it)
    r = run_ftx(["train", "--config-dir", str(tmp_path / "nope"), "model=tiny_llama"], tmp_path, timeout=300)
    assert r.returncode == 2 and r.stderr.strip() == (
        f"ftx: config error: --config-dir {tmp_path / 'nope'}: no such folder (give the folder holding your config "
        "groups: data/, experiment/, sweep/ …; `ftx init` writes one)")
