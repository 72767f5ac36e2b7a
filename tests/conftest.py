"""Shared fixtures (helpers to import live in tests/helpers.py): run the ftx CLI in a subprocess, and the
default / tiny-smoke configs composed once per session, handed out as deep copies."""

from __future__ import annotations

import copy
import fcntl
import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import run_ftx


def pytest_collection_modifyitems(session, config, items):
    """Modules with slow tests first (stable otherwise). Under pytest-xdist (`make test`: `-n 2 --dist loadfile
    --no-loadscope-reorder`) a module is one unit of work, so the longest ones start first and the short
    ones fill in around them; run alone, the order changes nothing a test may rely on."""
    module = lambda item: item.nodeid.split("::")[0]
    slow = {module(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: module(item) not in slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under pytest-xdist, a test marked `alone` (it measures the machine: busy cores, timings) runs while no
    other worker runs a test: it takes an exclusive lock on a file of this run, every other test a shared one,
    around its setup (module fixtures included), call and teardown. Without xdist there is nothing to wait for."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield
        return
    with open(Path(tempfile.gettempdir()) / f"ftx-pytest-{run}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(autouse=True, scope="session")
def _absl_writes_to_the_real_stderr():
    """absl's log handler (imported with rouge_score) keeps the sys.stderr of the moment it was created and
    closes it when a logging reconfiguration (Hydra's, on every in-process `ftx train`) clears the handlers,
    unless it is the sys.stderr of that later moment. Under pytest those differ (capsys swaps sys.stderr), and
    the stream closed is pytest's own capture file: the session then dies with "I/O operation on closed
    file". Pointing absl at the process's real stderr, which it never closes, keeps both intact."""
    import sys

    try:
        import absl.logging
    except ImportError:  # rouge_score (and absl with it) not installed: nothing to redirect
        yield
        return
    absl.logging.get_absl_handler().python_handler.stream = sys.__stderr__
    yield


@pytest.fixture
def ftx(tmp_path):
    def _run(*args: str, timeout: int = 600, env: dict | None = None):
        return run_ftx(list(args), tmp_path, timeout, env)

    _run.cwd = tmp_path
    return _run


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    """No key, no WANDB_MODE, no netrc, W&B's own folders under tmp.

    wandb.init puts WANDB_SERVICE (its service's address) into os.environ; set-then-delete makes
    monkeypatch remove it afterwards, so later `ftx` subprocesses start their own W&B service."""
    monkeypatch.setenv("WANDB_SERVICE", "")
    monkeypatch.delenv("WANDB_SERVICE")
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED", "WANDB_BASE_URL", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for var, sub in (("WANDB_CONFIG_DIR", "cfg"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / "wb" / sub))
    return monkeypatch


# Composing conf/ (Hydra's compose API) and validating it costs a noticeable fraction of a second; tests
# that only read the default or the tiny-smoke config share one composition per session. Each test gets its
# own deep copy, so a test that changes its config cannot leak into another.

@pytest.fixture(scope="session")
def _composed() -> dict:
    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    out = {}
    for name, overrides in {"default": [], "tiny": ["experiment=tiny_smoke"]}.items():
        cfg = compose(overrides)
        out[name] = (cfg, build_spec(cfg))
    return out


@pytest.fixture
def default_cfg(_composed):
    """`compose([])`: the default DictConfig."""
    return copy.deepcopy(_composed["default"][0])


@pytest.fixture
def default_spec(_composed):
    """`build_spec(compose([]))`: the default RunSpec."""
    return copy.deepcopy(_composed["default"][1])


@pytest.fixture
def tiny_smoke_spec(_composed):
    """`build_spec(compose(["experiment=tiny_smoke"]))`: the tiny model with seconds-long training."""
    return copy.deepcopy(_composed["tiny"][1])
