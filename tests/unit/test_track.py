"""ftx/track/tracker.py: W&B mode choice, secrets, tags, the W&B session lifecycle, log-friendly progress."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from ftx.secrets import redact
from ftx.spec.run import build_spec
from ftx.spec.tracking import TrackingConfig
from ftx.spec.tree import compose
from ftx.track import progress as progress_mod
from ftx.track import tracker as track
from ftx.track.tracker import Tracker, override_tags, resolve_mode

FAKE_KEY = "fakeWandbKey0123456789abcdefghijklmnopqrst"


def tiny_spec(*overrides: str):
    return build_spec(compose(["experiment=tiny_smoke", "tracking=wandb", *overrides]))


# ---------------------------------------------------------------- mode, secrets, tags

def test_mode_follows_config_then_env_then_key(no_wandb_env):
    assert resolve_mode(TrackingConfig(backend="none", mode="online")) == "disabled"
    auto = TrackingConfig(backend="wandb")
    assert resolve_mode(auto) == "offline", "no key anywhere: offline"
    no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    assert resolve_mode(auto) == "online"
    no_wandb_env.setenv("WANDB_MODE", "disabled")
    assert resolve_mode(auto) == "disabled"
    assert resolve_mode(TrackingConfig(backend="wandb", mode="offline")) == "offline", "explicit config wins"
    no_wandb_env.delenv("WANDB_MODE")
    no_wandb_env.setenv("WANDB_DISABLED", "true")
    assert resolve_mode(auto) == "disabled"


def test_a_reevaluation_resolves_the_wandb_mode_by_the_same_rule(no_wandb_env, tmp_path):
    import sys

    from ftx.record.rerun import _wandb_summary

    inits = []
    run = SimpleNamespace(summary={}, finish=lambda: None)
    fake = SimpleNamespace(init=lambda **kw: inits.append(kw) or run)
    no_wandb_env.setitem(sys.modules, "wandb", fake)
    auto = TrackingConfig(backend="wandb")
    no_wandb_env.setenv("WANDB_DISABLED", "true")
    _wandb_summary(auto, tmp_path, {"tuned": {"rouge_l": 0.5}})
    assert inits == [], "WANDB_DISABLED is honoured as in training"
    no_wandb_env.delenv("WANDB_DISABLED")
    no_wandb_env.setenv("WANDB_MODE", "dryrun")
    _wandb_summary(auto, tmp_path, {"tuned": {"rouge_l": 0.5, "texts": ["x"]}})
    assert inits[0]["mode"] == resolve_mode(auto) == "offline"
    assert run.summary == {"reeval/tuned/rouge_l": 0.5}


def test_a_wandb_login_netrc_entry_counts_as_a_key(no_wandb_env, tmp_path):
    from urllib.parse import urlsplit

    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {urlsplit(track._settings_base_url()).hostname}\n  login user\n  password {FAKE_KEY}\n")
    netrc.chmod(0o600)
    no_wandb_env.setenv("NETRC", str(netrc))
    assert track.wandb_key_configured() and resolve_mode(TrackingConfig(backend="wandb")) == "online"


def test_bad_tracking_values_fail_with_one_line_naming_the_key():
    from ftx.errors import ConfigError

    for override, key in (("tracking.mode=sometimes", "tracking.mode"), ("tracking.progress=fancy", "tracking.progress"),
                          ("tracking.init_timeout=0", "tracking.init_timeout")):
        with pytest.raises(ConfigError, match=key):
            build_spec(compose([override]))


def test_redact_masks_secret_keys_and_secret_values(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fakeTokenValue123")
    monkeypatch.setenv("MY_SERVICE_API_KEY", "s3cr3tValue!")
    cfg = {"tracking": {"api_key": "abc"}, "model": {"hub_token": "x", "pad_token_id": 0, "name": "m"},
           "notes": ["url?token=hf_fakeTokenValue123", "plain"], "s": "s3cr3tValue!"}
    out = redact(cfg)
    assert out["tracking"]["api_key"] == "***" and out["model"]["hub_token"] == "***"
    assert out["model"]["pad_token_id"] == 0 and out["model"]["name"] == "m"
    assert out["notes"] == ["url?token=***", "plain"] and out["s"] == "***"
    assert "hf_fakeTokenValue123" not in json.dumps(out) and cfg["s"] == "s3cr3tValue!", "input untouched"


def test_override_tags_skip_bookkeeping_and_fit_wandb_limit():
    long_path = "data.sources.http.path=/very/long/" + "x" * 80 + "/domain_qa.jsonl"
    tags = override_tags(["experiment=tiny_smoke", "lora.r=16", "+optimizer.lr=2e-4", "hydra.run.dir=x",
                          "++sweep.trial=3", long_path])
    assert tags[:3] == ["experiment=tiny_smoke", "lora.r=16", "optimizer.lr=2e-4"]
    assert len(tags) == 4 and len(tags[3]) <= 64 and tags[3].endswith("domain_qa.jsonl")
    assert tags[3].startswith("data.sources.http.path=")


# ---------------------------------------------------------------- the W&B session

def test_unreachable_server_falls_back_to_offline_quickly(no_wandb_env, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    no_wandb_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    spec = tiny_spec()
    assert resolve_mode(spec.tracking) == "online"
    t0 = time.time()
    with Tracker(spec.tracking) as t:
        t.start(spec, tmp_path / "run", [])
        assert t.mode == "offline" and t.run is not None
    assert time.time() - t0 < 30
    assert json.loads((tmp_path / "run" / "tracking.json").read_text())["mode"] == "offline"


@pytest.mark.slow
def test_silent_server_is_bounded_by_init_timeout(no_wandb_env, tmp_path):
    """A server that accepts connections and never answers: wandb.init times out, the run goes offline."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(srv.accept()) for _ in iter(int, 1)], daemon=True).start()
    no_wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    no_wandb_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{srv.getsockname()[1]}")
    spec = tiny_spec("tracking.init_timeout=3")
    t0 = time.time()
    with Tracker(spec.tracking) as t:
        t.start(spec, tmp_path / "run", [])
        assert t.mode == "offline"
    # 3 s init timeout + wandb's own ~5 s account lookups + an offline start, on a loaded machine
    assert time.time() - t0 < 60
    srv.close()


def test_tracking_failure_never_stops_the_run(no_wandb_env, tmp_path, monkeypatch):
    import wandb

    def broken(**kwargs):
        raise RuntimeError("wandb exploded")

    monkeypatch.setattr(wandb, "init", broken)
    no_wandb_env.setenv("WANDB_MODE", "offline")
    spec = tiny_spec()
    with Tracker(spec.tracking) as t:
        t.start(spec, tmp_path / "run", [])
        t.log({"train/loss": 1.0})
        t.summary({"tuned": {"val_loss": 1.0}}, tmp_path / "run")
    assert t.mode == "disabled" and t.run is None


def test_backend_none_starts_nothing(no_wandb_env, tmp_path, tiny_smoke_spec):
    spec = tiny_smoke_spec
    with Tracker(spec.tracking) as t:
        t.start(spec, tmp_path / "run", [])
    assert t.run is None and not (tmp_path / "run" / "wandb").exists()


# ---------------------------------------------------------------- Trainer callbacks

def test_metrics_sink_appends_each_log_event(tmp_path):
    from ftx.runs import MetricsLog

    sink = track.metrics_callback(MetricsLog(tmp_path / "metrics.jsonl"))
    state = SimpleNamespace(global_step=3, epoch=0.5, is_world_process_zero=True)
    sink.on_log(None, state, None, logs={"loss": 1.25, "learning_rate": 1e-3})
    sink.on_log(None, state, None, logs={"eval_loss": 1.5})
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r.get("loss"), r.get("eval_loss")) for r in rows] == [(3, 1.25, None), (3, None, 1.5)]


def test_curves_callback_maps_trainer_logs_to_wandb_keys():
    rows, summary = [], {}
    fake = SimpleNamespace(log=rows.append, run=SimpleNamespace(summary=summary))
    cb = track._curves_callback(fake)
    state = SimpleNamespace(global_step=4, is_world_process_zero=True)
    cb.on_log(None, state, None, logs={"loss": 2.0, "learning_rate": 1e-4, "epoch": 1.0})
    cb.on_log(None, state, None, logs={"eval_loss": 2.5, "epoch": 1.0})
    cb.on_log(None, state, None, logs={"train_runtime": 3.0, "train_loss": 2.1, "epoch": 1.0})
    assert rows == [{"train/global_step": 4, "train/loss": 2.0, "train/learning_rate": 1e-4, "train/epoch": 1.0},
                    {"train/global_step": 4, "eval/loss": 2.5, "train/epoch": 1.0}]
    assert summary == {"train/runtime": 3.0, "train/loss": 2.1}


# ---------------------------------------------------------------- progress

@pytest.fixture
def progress_conf():
    saved = dict(progress_mod._PROGRESS)
    yield progress_mod.configure_progress
    progress_mod._PROGRESS.update(saved)


def test_progress_in_a_log_is_plain_lines_throttled_by_interval(progress_conf):
    progress_conf("auto", 1000.0)
    buf = io.StringIO()  # not a terminal
    assert progress_mod.progress_mode(buf) == "log"
    for _ in progress_mod.progress(range(50), desc="tokenise", unit="ex", stream=buf):
        pass
    text = buf.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 2, lines  # the start and the end; nothing in between at a 1000 s interval
    assert lines[0].startswith("tokenise: 0/50 (0%)") and lines[-1].startswith("tokenise: 50/50 (100%)")


def test_progress_every_interval_and_unknown_totals(progress_conf):
    progress_conf("log", 0.01)
    buf = io.StringIO()
    bar = progress_mod.progress(desc="dedup", stream=buf)
    for _ in range(5):
        time.sleep(0.03)
        bar.update(1)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 4 and all(l.startswith("dedup: ") for l in lines)
    assert lines[-1].startswith("dedup: 5 [")


def test_progress_on_a_terminal_is_a_bar_and_off_is_silent(progress_conf):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    progress_conf("auto", 30)
    tty = Tty()
    assert progress_mod.progress_mode(tty) == "bar"
    for _ in progress_mod.progress(range(3), desc="x", stream=tty):
        pass
    assert "\r" in tty.getvalue() and "|" in tty.getvalue()
    progress_conf("off", 30)
    quiet = io.StringIO()
    for _ in progress_mod.progress(range(3), desc="x", stream=quiet):
        pass
    assert quiet.getvalue() == ""


def test_trainer_progress_is_log_friendly_and_skips_nested_eval_bars(progress_conf, capsys):
    progress_conf("log", 1000.0)
    cb = progress_mod.progress_callback()
    state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=0)
    cb.on_train_begin(None, state, None)
    for step in range(1, 5):
        state.global_step = step
        cb.on_step_end(None, state, None)
        cb.on_prediction_step(None, state, None, eval_dataloader=[1, 2])
    cb.on_train_end(None, state, None)
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1].startswith("train: 4/4 (100%)")
    assert cb.prediction_bar is None


def test_resumed_training_continues_the_same_wandb_run(no_wandb_env, tmp_path):
    no_wandb_env.setenv("WANDB_MODE", "offline")
    first = tiny_spec()
    with Tracker(first.tracking) as t:
        t.start(first, tmp_path / "run", [])
    run_id = json.loads((tmp_path / "run" / "tracking.json").read_text())["run_id"]
    with Tracker(first.tracking) as t:  # a fresh start in the same folder is a new run …
        t.start(first, tmp_path / "run", [])
    assert json.loads((tmp_path / "run" / "tracking.json").read_text())["run_id"] != run_id
    run_id = json.loads((tmp_path / "run" / "tracking.json").read_text())["run_id"]
    resumed = tiny_spec("train.resume=auto")
    with Tracker(resumed.tracking) as t:  # … a resumed one continues it
        t.start(resumed, tmp_path / "run", [])
        assert t.run.id == run_id
