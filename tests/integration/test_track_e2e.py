"""W&B offline sessions read back through wandb's own reader (`wandb leet inspect`, a subprocess): sweep trials
get their own runs, crashed/pruned ones are marked so (moved from tests/unit/test_track.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ftx.spec.run import as_dict
from ftx.track.tracker import Tracker
from tests.unit.test_track import tiny_spec


def wandb_summary(run_dir: Path) -> dict:
    """The offline run as wandb's own tool reads it."""
    info = json.loads((run_dir / "tracking.json").read_text())
    out = subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(run_dir / info["wandb_dir"])],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_offline_session_groups_sweep_trials_and_each_trial_gets_its_own_run(no_wandb_env, tmp_path):
    """A crashed trial is finished as failed in `__exit__`; the next trial gets a new run (multirun safety)."""
    no_wandb_env.setenv("WANDB_MODE", "offline")
    spec = tiny_spec()
    spec.sweep = {"study": "lr-study", "trial": 0}
    first = tmp_path / "sweep" / "0"
    with pytest.raises(RuntimeError):
        with Tracker(spec.tracking) as t:
            t.start(spec, first, ["experiment=tiny_smoke", "optimizer.lr=1e-3", "++sweep.trial=0"])
            t.log({"train/global_step": 1, "train/loss": 2.0})
            raise RuntimeError("trial crashed")
    second = tmp_path / "sweep" / "1"
    with Tracker(spec.tracking) as t:
        t.start(spec, second, ["experiment=tiny_smoke", "optimizer.lr=2e-3"])
        t.summary({"tuned": {"val_loss": 1.5}, "data": {"big": 1}}, second)
    a, b = json.loads((first / "tracking.json").read_text()), json.loads((second / "tracking.json").read_text())
    assert a["run_id"] != b["run_id"]
    assert a["group"] == b["group"] == "lr-study" and a["job_type"] == "sweep" and a["mode"] == "offline"
    sa, sb = wandb_summary(first), wandb_summary(second)
    assert (sa["state"], sa["exit_code"], sa["summary"]["ftx_state"]) == ("failed", 1, "failed")
    assert (sb["state"], sb["exit_code"]) == ("finished", 0) and sb["summary"]["tuned/val_loss"] == 1.5
    assert "data/big" not in sb["summary"]
    assert sa["tags"] == ["experiment=tiny_smoke", "optimizer.lr=1e-3"]
    expected = as_dict(spec)
    got = {k: v for k, v in sb["config"].items() if k not in ("_wandb", "ftx_run")}
    assert got == json.loads(json.dumps(expected)), "the resolved config, as is"


def test_a_pruned_sweep_trial_is_finished_as_pruned_not_crashed(no_wandb_env, tmp_path):
    import optuna

    no_wandb_env.setenv("WANDB_MODE", "offline")
    spec = tiny_spec()
    with pytest.raises(optuna.TrialPruned):
        with Tracker(spec.tracking) as t:
            t.start(spec, tmp_path / "run", [])
            raise optuna.TrialPruned()
    s = wandb_summary(tmp_path / "run")
    assert (s["state"], s["exit_code"], s["summary"]["ftx_state"]) == ("finished", 0, "pruned")
