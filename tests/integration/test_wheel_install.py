"""`pip install` of the built wheel works on its own: the configs ship inside it (ftx/conf), so the
installed `ftx` composes, trains and sweeps from a folder that is not a checkout.

The wheel is built from a copy of this checkout (an in-tree build would leave build/ behind in it),
offline (`--no-build-isolation`: the installed setuptools builds it). The venv sees the system
site-packages (torch and friends are not reinstalled), where an editable ftx may point at another
checkout: `--force-reinstall --no-deps` puts the wheel's ftx into the venv, which shadows it, and
one test checks the venv's copy is the one that runs. Under a minute in all (build and install
~6 s, the run ~10 s, the 2-trial sweep ~16 s on 2 shared cores), so not marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="needs the source checkout")

JUNK = (".git", "build", "dist", "outputs", "multirun", "wandb", "runs", ".cache", ".pytest_cache", "__pycache__",
        "*.egg-info", "*.pyc")
TINY = ["model=tiny_llama", "train=tiny", "curation=none", "eval=loss_only"]


def _env() -> dict:
    """No FTX_CONF and no PYTHONPATH: nothing may come from the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("FTX_CONF", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="disabled")
    return env


def _run(cmd: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, venv) with the wheel built from this checkout installed into the venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*JUNK))
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src], tmp)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    [wheel] = (tmp / "dist").glob("ftx-*.whl")
    venv = tmp / "venv"
    r = _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--force-reinstall", wheel], tmp)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return wheel, venv


def test_wheel_carries_the_config_tree(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("ftx/conf/__init__.py", "ftx/conf/config.yaml", "ftx/conf/sweep/tiny.yaml",
                 "ftx/conf/experiment/tiny_smoke.yaml", "hydra_plugins/ftx_sweeper/config.py"):
        assert name in names, name
    shipped = {n for n in names if n.startswith("ftx/conf/") and n.endswith(".yaml")}
    in_tree = {f"ftx/conf/{p.relative_to(ROOT / 'ftx' / 'conf').as_posix()}" for p in (ROOT / "ftx" / "conf").rglob("*.yaml")}
    assert shipped == in_tree


def test_the_venv_runs_its_own_copy(installed, tmp_path):
    _, venv = installed
    r = _run([venv / "bin" / "python", "-c", "import json, ftx, ftx.spec.tree, hydra_plugins.ftx_sweeper as s; "
              "print(json.dumps([ftx.__file__, s.__file__, str(ftx.spec.tree.CONF_DIR)]))"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    site = (venv / "lib").resolve()
    for path in json.loads(r.stdout):
        assert Path(path).resolve().is_relative_to(site), f"{path} is not inside the venv {site}"


def test_installed_spec(installed, tmp_path):
    _, venv = installed
    r = _run([venv / "bin" / "ftx", "spec"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# spec hash: " in r.stdout and "name: ftx" in r.stdout
    r = _run([venv / "bin" / "ftx", "spec", "experiment=tiny_smoke", "+sweep=tiny"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "name: sweep_tiny" in r.stdout and "max_steps: 24" in r.stdout


def test_installed_train(installed, tmp_path):
    _, venv = installed
    r = _run([venv / "bin" / "ftx", "train", *TINY, "train.max_steps=2", "hydra.run.dir=run"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "adapter" / "adapter_model.safetensors").is_file()
    assert "source: tiny" in (run / "config.yaml").read_text()


def test_installed_sweep(installed, tmp_path):
    _, venv = installed
    r = _run([venv / "bin" / "ftx", "train", "-m", "+sweep=tiny", "hydra.sweeper.n_trials=2", *TINY[2:],
              "train.max_steps=4", "hydra.sweeper.plots=none", "hydra.sweep.dir=sweep"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    trials = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(trials) == 2 and all((t.parent / "adapter" / "adapter_model.safetensors").is_file() for t in trials)
    assert "sweep done: 2 complete" in r.stderr + r.stdout
