"""`pip install` of the built wheel works on its own: the configs ship inside it (ftx/conf), so the
installed `ftx` composes, trains and sweeps from a folder that is not a checkout; and a project written by
`ftx init` runs there as a new user would run it (its conf/ layered over ftx's, found in the working
directory: no FTX_CONF).

The wheel is built from a copy of this checkout (an in-tree build would leave build/ behind in it),
offline (`--no-build-isolation`: the installed setuptools builds it). The venv sees the system
site-packages (torch and friends are not reinstalled), where an editable ftx may point at another
checkout: `--force-reinstall --no-deps` puts the wheel's ftx into the venv, which shadows it, and
one test checks the venv's copy is the one that runs. Measured on 2 shared, loaded cores: build and
install ~28 s, each tiny train ~36-39 s, each 2-trial sweep ~57-63 s, ~4.5 min for the module (idle:
well under half that); not marked slow, so `make test-fast` still checks the installed wheel.
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

from ftx.cli.init import DATA_FILE, DATA_NAME, EXPERIMENT, SWEEP, VAL_FILE, VAL_RECORDS
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
                 "ftx/conf/experiment/tiny_smoke.yaml", "hydra_plugins/ftx_sweeper/config.py",
                 "hydra_plugins/ftx_searchpath/__init__.py", "ftx/cli/init.py",
                 "ftx/assets/harness/ftx_general_qa.yaml", "ftx/assets/harness/ftx_general_qa.py",
                 "ftx/assets/demo/general_qa.jsonl"):  # the shipped lm-eval task and the file it reads
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
    r = _run([venv / "bin" / "ftx", "train", *TINY, "train.max_steps=2", "hydra.run.dir=run",
              "eval.harness.tasks=[ftx_general_qa]", "eval.harness.limit=4"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "adapter" / "adapter_model.safetensors").is_file()
    assert "source: tiny" in (run / "config.yaml").read_text()
    # the shipped lm-eval task resolves inside the installed package (its loader and data beside the YAML)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval"]["harness"]["tasks"]["ftx_general_qa"]["examples"] == 4
    log = (run / "train.log").read_text()
    index = next(line for line in log.splitlines() if "lm-eval task index" in line)
    assert str((venv / "lib").resolve()) in index and index.split("(")[1].startswith(str((venv / "lib").resolve()))


def test_installed_sweep(installed, tmp_path):
    _, venv = installed
    r = _run([venv / "bin" / "ftx", "train", "-m", "+sweep=tiny", "hydra.sweeper.n_trials=2", *TINY[2:],
              "train.max_steps=4", "hydra.sweeper.plots=none", "hydra.sweep.dir=sweep"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    trials = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(trials) == 2 and all((t.parent / "adapter" / "adapter_model.safetensors").is_file() for t in trials)
    assert "sweep done: 2 complete" in r.stderr + r.stdout


# --- a project of the user's own: `ftx init proj`, then everything from inside proj

@pytest.fixture(scope="module")
def project(installed, tmp_path_factory):
    _, venv = installed
    root = tmp_path_factory.mktemp("user")
    r = _run([venv / "bin" / "ftx", "init", "proj"], root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cd proj && ftx spec" in r.stdout
    r = _run([venv / "bin" / "ftx", "init", "proj"], root)  # never overwrites
    assert r.returncode == 2 and r.stderr.strip().endswith("ftx init: proj is not empty (ftx init never overwrites; "
                                                           "give a new or empty folder)"), r.stderr
    return root / "proj"


def test_installed_init_spec(installed, project):
    _, venv = installed
    r = _run([venv / "bin" / "ftx", "spec", f"experiment={EXPERIMENT}", "model=tiny_llama", "--data"], project)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    site = next(l for l in lines if l.startswith("# config folders, first match wins: "))
    assert site.startswith(f"# config folders, first match wins: ./conf = {(project / 'conf').resolve()} "
                           "(the working directory), then ftx = ")
    assert Path(site.rsplit(" = ", 1)[1]).resolve().is_relative_to((venv / "lib").resolve()), site
    assert f"# data={DATA_NAME}: ./conf" in lines and f"# experiment={EXPERIMENT}: ./conf" in lines
    assert "# lora=lora: ftx" in lines and any(l.startswith("#   records per split: train ") for l in lines)


def test_installed_init_train(installed, project):
    _, venv = installed
    r = _run([venv / "bin" / "ftx", "train", f"experiment={EXPERIMENT}", *TINY, "train.max_steps=2",
              "hydra.run.dir=runs/first"], project)
    assert r.returncode == 0, r.stderr[-3000:]
    run = project / "runs" / "first"
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    config = (run / "config.yaml").read_text()
    assert f"name: {EXPERIMENT}" in config and DATA_FILE in config and "source: tiny" in config
    # validated on the project's own validation file, as given: its records and nothing else, none in train
    val_ids = {line.split(",", 1)[0] for line in (project / VAL_FILE).read_text().splitlines()[1:]}
    split = json.loads((run / "data" / "split_manifest.json").read_text())
    assert len(val_ids) == VAL_RECORDS and {e["id"] for e in split["val"]} == val_ids
    assert not val_ids & {e["id"] for e in split["train"]}


def test_installed_init_sweep(installed, project):
    _, venv = installed
    r = _run([venv / "bin" / "ftx", "train", "-m", f"+sweep={SWEEP}", "hydra.sweeper.n_trials=2", *TINY,
              "train.max_steps=4", "hydra.sweeper.plots=none", "hydra.sweep.dir=sweeps/s"], project)
    assert r.returncode == 0, r.stderr[-3000:]
    trials = sorted((project / "sweeps" / "s").glob("*/config.yaml"))
    assert len(trials) == 2 and all((t.parent / "adapter" / "adapter_model.safetensors").is_file() for t in trials)
    assert all(DATA_FILE in t.read_text() and f"name: {SWEEP}" in t.read_text() for t in trials)
    assert "sweep done: 2 complete" in r.stderr + r.stdout
