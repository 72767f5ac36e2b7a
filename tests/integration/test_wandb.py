"""W&B offline, end to end: a two-trial multirun whose first trial crashes, with fake secrets in the env.

Checked through wandb's own reader (`wandb leet inspect`), not through our code: each trial is its own
run, the crashed one marked failed; the finished one carries the resolved config, per-step curves, the
summary, tags from its overrides and the artifacts; no file the run wrote holds the W&B key or HF token.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.helpers import ftx_env, run_ftx
from tests.integration.test_compare import tiny_data

pytestmark = pytest.mark.slow  # a two-trial multirun: ~20 s idle, more under load

FAKE_WANDB_KEY = "wbFakeKey" + "7" * 31  # 40 characters, shaped like a real key
FAKE_HF_TOKEN = "hf_FakeTokenForLeakTestAbCdEfGhIjKlMnOp"


def inspect(run_dir, summary: bool):
    info = json.loads((run_dir / "tracking.json").read_text())
    args = ["wandb", "leet", "inspect", "--json", *(["--summary"] if summary else []), str(run_dir / info["wandb_dir"])]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if summary else [json.loads(l) for l in out.stdout.splitlines()]


def test_offline_multirun_config_curves_crash_safety_and_no_secret_on_disk(tmp_path):
    data = tiny_data(tmp_path)
    wb = tmp_path / "wandb-home"
    env = ftx_env(WANDB_MODE="offline", WANDB_API_KEY=FAKE_WANDB_KEY, HF_TOKEN=FAKE_HF_TOKEN,
                  WANDB_CONFIG_DIR=str(wb / "config"), WANDB_CACHE_DIR=str(wb / "cache"),
                  WANDB_DATA_DIR=str(wb / "data"))
    env.pop("WANDB_SERVICE", None)  # a W&B service another test started in this process is not ours
    missing = tmp_path / "missing.jsonl"
    r = run_ftx(["train", "-m", "experiment=tiny_smoke", *data[1:],
                 f"data.sources.http.path={missing},{tmp_path / 'domain.jsonl'}", "tracking=wandb",
                 "tracking.log_artifacts=true", "lora.r=4", "hydra.sweep.dir=sweep"], tmp_path, env=env)
    assert "file not found" in r.stderr, r.stderr[-3000:]
    crashed, ok = tmp_path / "sweep" / "0", tmp_path / "sweep" / "1"
    assert not (crashed / "metrics.json").exists() and (ok / "metrics.json").is_file(), r.stderr[-3000:]

    a, b = inspect(crashed, True), inspect(ok, True)
    assert a["run_id"] != b["run_id"], "each trial is its own W&B run"
    assert (a["state"], a["exit_code"]) == ("failed", 1) and (b["state"], b["exit_code"]) == ("finished", 0)

    # The resolved config, exactly as config.yaml has it (plus ftx's run bookkeeping).
    config = {k: v for k, v in b["config"].items() if k not in ("_wandb", "ftx_run")}
    # W&B stores no empty mappings (a non-sweep run's `sweep: {}`); everything else must match as is.
    resolved = {k: v for k, v in yaml.safe_load((ok / "config.yaml").read_text()).items() if v != {}}
    assert config == resolved
    assert b["config"]["ftx_run"]["spec_hash"] == json.loads((ok / "manifest.json").read_text())["spec_hash"]
    assert "lora.r=4" in b["tags"] and "tracking=wandb" in b["tags"]
    assert not any(t.startswith("hydra.") for t in b["tags"])

    # Summary = metrics.json; curves = one history row per Trainer log step.
    metrics = json.loads((ok / "metrics.json").read_text())
    assert b["summary"]["tuned/val_loss"] == metrics["tuned"]["val_loss"]
    assert b["summary"]["objective/value"] == metrics["objective"]["value"]
    records = inspect(ok, False)
    run_rec = next(x["run"] for x in records if x["type"] == "run")
    assert run_rec["job_type"] == "sweep" and run_rec["run_group"] == "sweep"
    history = [x["history"]["item"] for x in records if x["type"] == "history"]
    local = [json.loads(l) for l in (ok / "metrics.jsonl").read_text().splitlines()]
    assert [h["train/loss"] for h in history if "train/loss" in h] == [e["loss"] for e in local if "loss" in e]
    assert [h["eval/loss"] for h in history if "eval/loss" in h] == [e["eval_loss"] for e in local if "eval_loss" in e]
    artifacts = [x["artifact"] for x in records if x["type"] == "artifact"]
    assert sorted(x["type"] for x in artifacts) == ["dataset", "model"]

    # No secret in anything written: run dirs, wandb dirs, W&B's own config/cache/data, the process output.
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()
             and (FAKE_WANDB_KEY.encode() in p.read_bytes() or FAKE_HF_TOKEN.encode() in p.read_bytes())]
    assert leaks == []
    assert sum(1 for p in tmp_path.rglob("*") if p.is_file()) > 50, "the scan saw the run's files"
    assert any(wb.rglob("*.log")), "the scan covered wandb's own logs"
    assert FAKE_WANDB_KEY not in r.stdout + r.stderr and FAKE_HF_TOKEN not in r.stdout + r.stderr
