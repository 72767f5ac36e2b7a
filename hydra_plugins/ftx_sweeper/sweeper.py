"""ftx's Hydra sweeper on Optuna ≥4.9: ask a batch, launch it through Hydra's launcher, tell.

    ftx train -m +sweep=tiny                                   # a ready search space (ftx/conf/sweep/tiny.yaml)
    ftx train -m hydra/sweeper=ftx 'optimizer.lr=tag(log, interval(1e-5, 1e-2))' lora.r=4,8,16

Trials live in an Optuna study in storage (SQLite in the sweep dir by default), so a sweep killed at
any point resumes by running the same command again: finished trials count, a trial its dead
sweeper left RUNNING is failed and re-queued with the same parameters (Optuna's
RetryHeartbeatStaleTrialCallback; see _study.py), and the sampler seed is offset by the trial count so a seeded sampler
does not propose the same trials again.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from ftx.errors import ConfigError, FtxError, RunError
from ftx.runs import atomic_write_text

from . import _space, _study
from . import config as _config  # noqa: F401  (registers hydra/sweeper=ftx)
from ftx.data.sources import carry_answers
from ftx.spec.run import build_spec, explain, metric_direction
from ftx.track.sweep import describe_storage, job_storage_ref, make_pruner, open_storage
from hydra_plugins.ftx_sweeper.report import write_report

log = logging.getLogger("ftx.track.sweep")
class FtxSweeper(Sweeper):
    def __init__(self, study: Optional[str] = None, storage: Optional[str] = None, direction: Any = None,
                 objectives: Optional[List[str]] = None, n_trials: int = 20, n_jobs: int = 1,
                 max_failures: int = 3, heartbeat: int = 60, plots: str = "png",
                 sampler: Optional[DictConfig] = None, pruner: Optional[DictConfig] = None,
                 params: Optional[DictConfig] = None) -> None:
        self.study_name, self.storage_url, self.direction = study, storage, direction
        self.objectives = list(objectives) if objectives else None
        self.n_trials, self.n_jobs, self.max_failures = n_trials, n_jobs, max_failures
        self.heartbeat, self.plots = heartbeat, plots
        self.sampler_conf = _plain(sampler)
        self.pruner_conf = _plain(pruner)
        self.params = params or {}
        self.config: Optional[DictConfig] = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve() if self.config is not None else None
        new = [p for p in ([sweep_dir, *sweep_dir.parents] if sweep_dir else []) if not p.exists()]
        try:
            return self._sweep(arguments)
        except FtxError as e:  # one line, exit 2, as everywhere in ftx
            for p in new:  # a refused sweep leaves no empty sweep dir (nor the folders made for it) behind
                if p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
            print(f"ftx: {e.kind}: {e}", file=sys.stderr)
            sys.exit(2)

    # -- setting up -------------------------------------------------------------------------------

    def _sweep(self, arguments: List[str]) -> List[Any]:
        import optuna

        cfg = self.config
        if "ftx_sweep_file_error" in cfg:
            raise ConfigError(f"sweep file: {cfg.ftx_sweep_file_error}")
        space = _space.build(self.params, arguments)
        if not space.distributions:
            raise ConfigError("hydra.sweeper.params: the search space is empty; give parameters in the sweep "
                              "file or on the command line, e.g. 'optimizer.lr=tag(log, interval(1e-5, 1e-2))'")
        _space.check(space, cfg, self.hydra_context.config_loader)
        self._check_settings()
        fixed = self._compose(space.fixed, "the sweep's fixed overrides")
        directions = self._directions(fixed)
        if self.pruner_conf.get("name", "none") != "none":
            if len(directions) > 1:
                raise ConfigError("hydra.sweeper.pruner: pruning needs a single objective (Optuna cannot prune "
                                  "multi-objective studies); set pruner.name=none")
            if directions[0] != "minimize" and self.pruner_conf.get("metric", "").endswith("loss"):
                raise ConfigError(f"hydra.sweeper.pruner.metric: {self.pruner_conf['metric']} is a loss but the "
                                  "study maximises; set hydra.sweeper.direction=minimize or pruner.name=none")
        make_pruner(self.pruner_conf)  # bad names fail here, not in the first job
        if self.sampler_conf.get("name") == "grid":
            _space.grid(space)

        sweep_dir = Path(str(cfg.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        url = self.storage_url or f"sqlite:///{sweep_dir / 'optuna.db'}"
        if url == "journal":
            url = f"journal:{sweep_dir / 'optuna.journal'}"
        elif url.startswith("journal:"):
            url = f"journal:{Path(url[len('journal:'):]).expanduser().resolve()}"
        name = self.study_name or str(cfg.get("name") or "ftx")
        with _study.quiet():
            storage = open_storage(url, heartbeat=self.heartbeat if not url.startswith("journal:") else None,
                                   on_stale=_study.retry_interrupted)
        try:
            study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                        pruner=make_pruner(self.pruner_conf), load_if_exists=True)
        except Exception as e:
            raise ConfigError(f"hydra.sweeper.storage: cannot create study {name!r} in {describe_storage(url)}: "
                              f"{' '.join(str(e).split())}") from None
        have = [d.name.lower() for d in study.directions]
        if have != directions:
            raise ConfigError(f"hydra.sweeper.direction: study {name!r} in {describe_storage(url)} was created with "
                              f"{have}, not {directions}; use another hydra.sweeper.study or storage")
        resumed = len(study.trials)
        study.sampler = _study.make_sampler(self.sampler_conf, space, resumed)
        study.set_user_attr("ftx:pruner", self.pruner_conf)
        study.set_user_attr("ftx:fixed", space.fixed)
        study.set_user_attr("ftx:prefixes", space.prefixes)
        study.set_user_attr("ftx:encoded", space.encoded)
        study.set_user_attr("ftx:objectives", self.objectives or [str(OmegaConf.select(cfg, "objective.metric",
                                                                                          default="return value"))])
        atomic_write_text(sweep_dir / "sweep.json", json.dumps(
            {"study": name, "storage": describe_storage(url), "plots": self.plots, "directions": directions,
             "params": {k: repr(d) for k, d in space.distributions.items()}}, indent=2) + "\n")
        atomic_write_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(cfg))
        n_trials = min(self.n_trials, _study.grid_size(space)) if self.sampler_conf.get("name") == "grid" else self.n_trials
        log.info("study %s in %s: %d trials wanted, %d already there%s", name, describe_storage(url), n_trials,
                 resumed, f"; sampler seed offset by {resumed}" if resumed else "")
        self._bookkeeping = dict(study=name, storage=job_storage_ref(url))
        self._direction = directions[0] if len(directions) == 1 and not self.objectives else None
        returns = self._loop(study, space, n_trials)

        out = write_report(study, sweep_dir, plots=self.plots)
        counts = _study.counts(study)
        log.info("sweep done: %s; report in %s", ", ".join(f"{v} {k}" for k, v in counts.items()), out)
        best = out / "best_overrides.txt"
        if best.is_file():
            lines = best.read_text().strip().splitlines()
            log.info("best: %s", lines[0] if len(lines) == 1 else f"{len(lines)} trials on the Pareto front, see {best}")
        if self._over_budget(study):
            raise RunError(f"sweep stopped: {counts.get('failed', 0)} trials failed, more than "
                           f"hydra.sweeper.max_failures={self.max_failures}; last error: {self._last_error(study)}")
        return returns

    def _check_settings(self) -> None:
        if self.n_trials < 1 or self.n_jobs < 1:
            raise ConfigError(f"hydra.sweeper.n_trials and n_jobs: must be >= 1; got {self.n_trials}, {self.n_jobs}")
        if self.plots not in ("png", "html", "none"):
            raise ConfigError(f"hydra.sweeper.plots: must be png, html or none; got {self.plots!r}")
        if self.plots == "html":
            try:
                import plotly  # noqa: F401
            except ImportError:
                raise ConfigError("hydra.sweeper.plots=html needs plotly (pip install 'ftx[plots]'); "
                                  "use plots=png") from None
        if self.sampler_conf.get("name", "tpe") not in ("tpe", "random", "grid", "nsgaii"):
            raise ConfigError(f"hydra.sweeper.sampler.name: must be one of tpe, random, grid, nsgaii; "
                              f"got {self.sampler_conf.get('name')!r}")

    def _directions(self, spec=None) -> List[str]:
        d = self.direction
        if d is None:
            n = len(self.objectives or [None])
            if n > 1:
                raise ConfigError(f"hydra.sweeper.direction: give one direction per objective ({n} objectives)")
            d = [objective_direction(spec) if spec is not None else
                 str(OmegaConf.select(self.config, "objective.direction", default="minimize"))]
        d = [d] if isinstance(d, str) else list(d)
        for x in d:
            if x not in ("minimize", "maximize"):
                raise ConfigError(f"hydra.sweeper.direction: must be minimize or maximize; got {x!r}")
        if self.objectives and len(self.objectives) != len(d):
            raise ConfigError(f"hydra.sweeper.objectives: {len(self.objectives)} objectives but "
                              f"{len(d)} directions")
        if len(d) > 1 and not self.objectives:
            raise ConfigError("hydra.sweeper.objectives: several directions need as many objectives "
                              "(metrics.json paths such as tuned/val_loss, train/seconds)")
        return d

    def _compose(self, overrides: List[str], what: str) -> None:
        """Compose and validate one job's config in this process: bad overrides fail before any run."""
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except HydraException as e:
            cause = e.__cause__
            msg = explain(cause) if isinstance(cause, OmegaConfBaseException) else str(e).splitlines()[0]
            raise ConfigError(f"{what}: {msg}") from None
        except OmegaConfBaseException as e:
            raise ConfigError(f"{what}: {explain(e)}") from None
        return build_spec(cfg)

    # -- the loop ---------------------------------------------------------------------------------

    def _loop(self, study, space, n_trials: int) -> list:
        import optuna

        returns = []
        group_null = OmegaConf.select(self.config, "tracking.group", default="absent") is None and \
            not any(_space._key_of(f) == "tracking.group" for f in space.fixed)
        while True:
            _study.reap_dead_owners(study, grace=2 * self.heartbeat)
            with _study.quiet():
                optuna.storages.fail_stale_trials(study)
            done, running, failed = _study.progress(study)
            to_go = n_trials - len(done) - len(running)
            if to_go <= 0 or self._over_budget(study):
                return returns
            with _study.quiet():
                trials = [study.ask(space.distributions) for _ in range(min(self.n_jobs, to_go))]
            launch = []
            for t in trials:
                study._storage.set_trial_system_attr(t._trial_id, "ftx:owner", _study.owner())
                overrides = space.overrides(t.params) + (
                    [f"tracking.group={_space.encode(self._bookkeeping['study'])}"] if group_null else []) + [
                    f"++sweep.study={_space.encode(self._bookkeeping['study'])}", f"++sweep.trial={t.number}",
                    f"++sweep.trial_id={t._trial_id}", f"++sweep.storage={_space.encode(self._bookkeeping['storage'])}"] + (
                    [f"++sweep.direction={self._direction}"] if self._direction else [])
                try:
                    self._compose(overrides, f"trial {t.number}")
                except FtxError as e:
                    log.warning("trial %d not run: %s", t.number, e)
                    t.set_user_attr("error", str(e))
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                    continue
                t.set_user_attr("overrides", space.overrides(t.params))  # what the best-trial command reruns
                launch.append((t, overrides))
            if launch:
                returns.extend(self._launch(study, launch))

    def _launch(self, study, launch: list) -> list:
        numbers = [t.number for t, _ in launch]
        contiguous = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        batches = [launch] if contiguous else [[x] for x in launch]  # job dir name == trial number
        beat = _study.Heartbeat(study._storage, [t._trial_id for t, _ in launch], self.heartbeat)
        results = []
        try:
            for batch in batches:
                rets = self.launcher.launch([o for _, o in batch], initial_job_idx=batch[0][0].number)
                for (t, _), ret in zip(batch, rets):
                    self._tell(study, t, ret)
                results.extend(rets)
        except BaseException:  # Ctrl-C, a launcher crash: nothing stays RUNNING, nothing is lost
            for t, _ in launch:
                if study._storage.get_trial(t._trial_id).state.name == "RUNNING":
                    _study.fail_and_retry(study, t._trial_id)
            raise
        finally:
            beat.stop()
        return results

    def _tell(self, study, trial, ret) -> None:
        import optuna
        from hydra.core.utils import JobStatus

        State = optuna.trial.TrialState
        run_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
        if run_dir:
            trial.set_user_attr("run_dir", str(run_dir))
        if ret.status == JobStatus.COMPLETED:
            flags = _flags(run_dir)
            if flags is not None:
                trial.set_user_attr("flagged", flags["flags"])
                if flags["on_regression"] == "fail":
                    trial.set_user_attr("error", "flagged: " + "; ".join(flags["flags"]))
                    log.warning("trial %d failed: flagged regression: %s (objective.on_regression=fail)",
                                trial.number, "; ".join(flags["flags"]))
                    study.tell(trial, state=State.FAIL)
                    return
            try:
                values = self._values(ret._return_value, run_dir)
            except RunError as e:
                trial.set_user_attr("error", str(e))
                log.warning("trial %d failed: %s", trial.number, e)
                study.tell(trial, state=State.FAIL)
                return
            study.tell(trial, values)
            return
        exc = ret._return_value
        if isinstance(exc, optuna.TrialPruned):
            study.tell(trial, state=State.PRUNED)
            log.info("trial %d pruned: %s", trial.number, exc)
            return
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
        trial.set_user_attr("error", error)
        log.warning("trial %d failed: %s", trial.number, error)
        study.tell(trial, state=State.FAIL)

    def _values(self, returned: Any, run_dir: Optional[str]) -> List[float]:
        if self.objectives:
            path = Path(run_dir or ".") / "metrics.json"
            if not path.is_file():
                raise RunError(f"hydra.sweeper.objectives: {path} not written")
            metrics, values = json.loads(path.read_text()), []
            for key in self.objectives:
                node = metrics
                for part in key.split("/"):
                    if not isinstance(node, dict) or part not in node:
                        raise RunError(f"hydra.sweeper.objectives: {key!r} is not in {path}")
                    node = node[part]
                values.append(float(node))
        else:
            try:
                values = [float(returned)]
            except (TypeError, ValueError):
                raise RunError(f"the run returned {returned!r}, not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise RunError(f"objective is not finite: {values}")
        return values

    def _over_budget(self, study) -> bool:
        return self.max_failures >= 0 and len(_study.progress(study)[2]) > self.max_failures

    @staticmethod
    def _last_error(study) -> str:
        failed = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("error")]
        return f"trial {failed[-1].number}: {failed[-1].user_attrs['error']}" if failed else "none recorded"


def objective_direction(spec) -> str:
    """The study direction for a run spec's objective: objective.direction, or what `auto` resolves to — the
    task metric is maximised when the domain sources carry accepted answers and val is generated (the rule
    of ftx.pipeline.auto_metric), else tuned/val_loss is minimised. Each job checks it resolved the same way."""
    o = spec.objective
    if o.direction != "auto":
        return str(o.direction)
    if o.metric != "auto":
        return metric_direction(o.metric)
    g = spec.eval.generation
    answers = g.enabled and "val" in g.splits and carry_answers(spec.data.sources)
    return "maximize" if answers else "minimize"


def _flags(run_dir: Optional[str]) -> Optional[dict]:
    """metrics.json `objective` of a flagged run ({flags, on_regression}), None when not flagged or unreadable."""
    path = Path(run_dir or ".") / "metrics.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    obj = m.get("objective") or {}
    if not m.get("flags") or obj.get("on_regression", "fail") == "ignore":
        return None
    return {"flags": list(m["flags"]), "on_regression": obj.get("on_regression", "fail")}


def _plain(node) -> dict:
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
