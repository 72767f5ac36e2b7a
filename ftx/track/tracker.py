"""The `tracking` group: W&B (online, offline or off) and the local metrics sink (metrics.jsonl).

Every run writes metrics.jsonl (each Trainer log event) and metrics.json whatever the backend; W&B is
an optional mirror. Tracking never stops training: a W&B failure is logged and the run goes on.
Progress display lives in ftx/track/progress.py; tracking.progress configures it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Optional

from ftx import memory
from ftx.runs import flatten
from ftx.secrets import redact
from ftx.spec.tracking import TrackingConfig
from ftx.track.progress import configure_progress, progress_mode
from ftx.runs import read_json, write_json
from ftx.track.progress import progress_callback

log = logging.getLogger("ftx")


# ---------------------------------------------------------------- W&B mode

def wandb_key_configured() -> bool:
    """A key in the environment, an identity token file, or `wandb login`'s netrc entry for the server."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk.lib.wbauth.wbnetrc import read_netrc_auth

        return bool(read_netrc_auth(host=_settings_base_url()))
    except Exception:  # a private wandb API that may move; no key is the safe answer
        return False


def _settings_base_url() -> str:
    try:
        import wandb

        return os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url
    except Exception:
        return "https://api.wandb.ai"


def resolve_mode(cfg: TrackingConfig) -> str:
    """online | offline | disabled, by config, then WANDB_MODE / WANDB_DISABLED, then whether a key exists."""
    if cfg.backend == "none":
        return "disabled"
    if cfg.mode != "auto":
        return cfg.mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    if os.environ.get("WANDB_DISABLED", "").strip().lower() in ("1", "true", "yes"):
        return "disabled"
    return "online" if wandb_key_configured() else "offline"


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Can a TCP connection to the server be opened within `timeout`? (DNS included: in a thread.)"""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return False
    ok = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def override_tags(overrides: list[str]) -> list[str]:
    """`lora.r=16` style tags from the run's overrides; Hydra and sweep bookkeeping left out; ≤64 chars."""
    tags = []
    for o in overrides:
        o = o.lstrip("+~")
        key = o.split("=", 1)[0]
        if not o or key.startswith(("hydra.", "sweep")) or "=" not in o:
            continue
        if len(o) > 64:  # W&B's tag limit: keep the key and the value's end (a path's file name)
            value = o.split("=", 1)[1]
            o = f"{key}=…{value[-(62 - len(key)):]}" if len(key) < 50 else o[:64]
        tags.append(o)
    return tags


def _hydra_multirun() -> Optional[Path]:
    """The multirun's sweep folder when this job is part of one."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return Path(HydraConfig.get().sweep.dir)
    except Exception:
        pass
    return None


# ---------------------------------------------------------------- the tracker

class Tracker:
    """One run's W&B session. Use as a context manager around the run: the W&B run is finished in
    `__exit__` whatever happens, so the next trial of a multirun always gets a run of its own."""

    def __init__(self, cfg: TrackingConfig):
        self.cfg = cfg
        self.run = None
        self.mode = "disabled"

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.finish(exc_type)
        return False

    def start(self, spec, run_dir: Path, overrides: list[str], resolved: Optional[dict] = None) -> None:
        """After the spec is recorded: progress display for this process, then W&B on the main process
        (`resolved`: the spec as plain data, when the caller has it already)."""
        from ftx.spec.run import as_dict, spec_hash

        configure_progress(self.cfg.progress, self.cfg.progress_interval)
        if int(os.environ.get("RANK", "0")) != 0:
            return
        self.mode = resolve_mode(self.cfg)
        if self.mode == "disabled":
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = as_dict(spec) if resolved is None else resolved
        sweep_dir = _hydra_multirun()
        in_sweep = bool(spec.sweep) or sweep_dir is not None
        study = (spec.sweep or {}).get("study") if isinstance(spec.sweep, dict) else None
        group = self.cfg.group or study or (sweep_dir.name if sweep_dir else None) or spec.name
        name = self.cfg.run_name or (f"{run_dir.parent.name}/{run_dir.name}" if in_sweep else run_dir.name)
        tags = list(self.cfg.tags) + (override_tags(overrides) if self.cfg.tag_overrides else [])
        previous = run_dir / "tracking.json"
        resume_id = None
        if spec.train.resume != "none" and previous.is_file():
            try:
                resume_id = read_json(previous).get("run_id")
            except (OSError, ValueError, AttributeError):
                log.warning("%s unreadable: starting a new W&B run", previous)
        config = redact({**resolved, "ftx_run": {"spec_hash": spec_hash(resolved), "overrides": overrides,
                                                 "run_dir": str(run_dir.resolve())}})
        kwargs = dict(project=self.cfg.project, entity=self.cfg.entity, group=group,
                      job_type=self.cfg.job_type or ("sweep" if in_sweep else "train"), name=name,
                      tags=sorted(set(redact(tags)))[:100], config=config, dir=str(run_dir))
        if resume_id:
            kwargs.update(id=resume_id, resume="allow")
        self.run = self._init(kwargs)
        if self.run is None:
            return
        try:
            self.run.define_metric("train/global_step")
            self.run.define_metric("*", step_metric="train/global_step", step_sync=True)
            write_json(previous, {"backend": "wandb", "mode": self.mode, "project": self.cfg.project,
                                  "entity": self.cfg.entity, "group": group, "job_type": kwargs["job_type"],
                                  "run_id": self.run.id, "run_name": name,
                                  "wandb_dir": _rel(Path(self.run.dir).parent, run_dir),
                                  "url": getattr(self.run, "url", None) if self.mode == "online" else None})
        except Exception as e:
            log.warning("W&B setup after init failed: %s", e)

    def _init(self, kwargs: dict):
        import wandb

        if self.mode == "online" and not reachable(_settings_base_url(), min(5.0, self.cfg.init_timeout)):
            log.warning("W&B server %s unreachable: logging offline (sync later with `wandb sync`)",
                        _settings_base_url())
            self.mode = "offline"
        for mode in dict.fromkeys([self.mode, "offline"]):
            try:
                t0 = time.time()
                settings = wandb.Settings(init_timeout=self.cfg.init_timeout, login_timeout=self.cfg.init_timeout)
                run = wandb.init(mode=mode, reinit="finish_previous", settings=settings, **kwargs)
                self.mode = mode
                log.info("W&B %s run %s (group %s) in %s, init %.1f s", mode, run.id, kwargs["group"],
                         Path(run.dir).parent, time.time() - t0)
                return run
            except Exception as e:  # CommError on timeout, auth errors, …: never fatal to training
                log.warning("W&B init (%s) failed: %s", mode, redact(" ".join(str(e).split())[:300]))
        self.mode = "disabled"
        return None

    def log(self, row: dict) -> None:
        if self.run is not None:
            try:
                self.run.log(row)
            except Exception as e:
                log.warning("W&B log failed: %s", e)

    def attach(self, trainer) -> None:
        """Per-step curves to W&B, and the Trainer's progress bar made log-friendly."""
        from transformers.trainer_callback import ProgressCallback

        if self.run is not None:
            trainer.add_callback(_curves_callback(self))
        if any(isinstance(c, ProgressCallback) for c in trainer.callback_handler.callbacks):
            trainer.remove_callback(ProgressCallback)
            if progress_mode() != "off":
                trainer.add_callback(progress_callback())

    def summary(self, metrics: dict, run_dir: Path) -> None:
        """Final metrics into the W&B summary; adapter and data manifest as artifacts when asked."""
        if self.run is None:
            return
        try:
            self.run.summary.update(flatten(metrics, "/", skip=("data",)))
            if self.cfg.log_artifacts:
                self._artifacts(Path(run_dir))
        except Exception as e:
            log.warning("W&B summary/artifacts failed: %s", e)

    def _artifacts(self, run_dir: Path) -> None:
        import wandb

        base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{self.run.name or self.run.id}")[:100]
        if (run_dir / "adapter").is_dir():
            art = wandb.Artifact(f"{base}-adapter", type="model", metadata={"run_dir": str(run_dir)})
            art.add_dir(str(run_dir / "adapter"))
            self.run.log_artifact(art)
        files = [run_dir / "manifest.json", *(run_dir / "data" / n for n in ("split_manifest.json", "ledger.json",
                                                                             "stats.json"))]
        art = wandb.Artifact(f"{base}-data", type="dataset")
        for f in files:
            if f.is_file():
                art.add_file(str(f))
        self.run.log_artifact(art)

    def finish(self, exc_type=None) -> None:
        if self.run is None:
            return
        run, self.run = self.run, None
        pruned = exc_type is not None and exc_type.__name__ == "TrialPruned"
        try:
            if exc_type is not None:
                run.summary["ftx_state"] = "pruned" if pruned else "failed"
            t0 = time.time()
            run.finish(exit_code=0 if exc_type is None or pruned else 1)
            log.info("W&B run %s finished in %.1f s", run.id, time.time() - t0)
        except Exception as e:
            log.warning("W&B finish failed: %s", e)


def _rel(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- Trainer callbacks

def metrics_callback(metrics_log, objective_reporter=None):
    """A TrainerCallback that appends every log event to metrics.jsonl."""
    from transformers import TrainerCallback

    class _Sink(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step and state.is_world_process_zero:  # resumed: forget the steps redone
                metrics_log.rewind(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                extra = {"rss_mb": memory.METER.take_window()} if "loss" in logs else {}  # the steps' peak RSS
                metrics_log.log({"step": state.global_step, "epoch": state.epoch, **logs, **extra})

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if objective_reporter is not None and metrics and "eval_loss" in metrics:
                objective_reporter(metrics["eval_loss"], state.global_step, control)

    return _Sink()


_END_OF_TRAIN = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss")


def _curves_callback(tracker: Tracker):
    """Trainer logs → W&B: `train/loss`, `train/learning_rate`, `eval/loss`, … against train/global_step."""
    from transformers import TrainerCallback

    class _Curves(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            row, end = {"train/global_step": state.global_step}, {}
            for k, v in logs.items():
                if not isinstance(v, (int, float)):
                    continue
                if k in _END_OF_TRAIN:
                    end[f"train/{k.removeprefix('train_')}"] = v
                elif k.startswith("eval_"):
                    row[f"eval/{k[5:]}"] = v
                else:
                    row[f"train/{k}"] = v
            if set(row) - {"train/global_step", "train/epoch"}:
                tracker.log(row)
            if end and tracker.run is not None:
                tracker.run.summary.update(end)

    return _Curves()
