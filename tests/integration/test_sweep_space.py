"""The sweeper's parts in-process, in seconds: search space, storage, pruning reporter, report, sweep files."""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import ftx.spec.run  # noqa: F401  (registers the ftx_schema the ftx/conf defaults name)
from ftx.errors import ConfigError
from ftx.spec.tree import CONF_DIR
from hydra_plugins.ftx_sweeper import _space

SWEEPS = sorted((CONF_DIR / "sweep").glob("*.yaml"))


@pytest.fixture
def hydra_cfg():
    """(compose(overrides) → config with its hydra node, the config loader) over this checkout's ftx/conf."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        yield (lambda overrides=(): compose("config", overrides=list(overrides), return_hydra_config=True)), loader


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    space = _space.build({
        "lora.r": "choice(4, 8, 16)",
        "optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
        "lora.dropout": "interval(0, 0.2)",
        "train.seed": "int(interval(1, 100))",
        "train.grad_accum": "range(1, 9, 2)",
        "data.mix.domain_ratio": "range(0.5, 1.0, 0.25)",
        "train.batch_size": "2,4",
        "optimizer.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
        "lora.alpha": {"choices": [8, 16]},
    }, [])
    d = space.distributions
    assert d["lora.r"] == CategoricalDistribution([4, 8, 16])
    assert d["optimizer.lr"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert d["lora.dropout"] == FloatDistribution(0.0, 0.2)
    assert d["train.seed"] == IntDistribution(1, 100)
    assert d["train.grad_accum"] == IntDistribution(1, 7, step=2)  # range() excludes its stop, like Python
    assert d["data.mix.domain_ratio"] == FloatDistribution(0.5, 0.75, step=0.25)
    assert d["train.batch_size"] == CategoricalDistribution([2, 4])
    assert d["optimizer.weight_decay"] == FloatDistribution(0.0, 0.1)
    assert d["lora.alpha"] == CategoricalDistribution([8, 16])
    assert space.fixed == []


def test_command_line_fixes_or_narrows_the_config_space():
    params = {"lora.r": "choice(4, 8)", "optimizer.lr": "tag(log, interval(1e-5, 1e-2))"}
    space = _space.build(params, ["lora.r=8", "optimizer.lr=tag(log, interval(1e-4, 1e-3))", "+sweep=tiny"])
    assert "lora.r" not in space.distributions and "lora.r=8" in space.fixed
    assert space.distributions["optimizer.lr"] == FloatDistribution(1e-4, 1e-3, log=True)
    assert space.overrides({"optimizer.lr": 0.0005}) == ["lora.r=8", "+sweep=tiny", "optimizer.lr=0.0005"]
    # ...and a command-line sweep adds a parameter the config did not search
    assert "lora.alpha" in _space.build(params, ["lora.alpha=choice(8,16)"]).distributions


@pytest.mark.parametrize("params,needle", [
    ({"lora.r": "choice()"}, "hydra.sweeper.params.lora.r: empty choice()"),
    ({"lora.r": {"type": "categorical", "choices": []}}, "hydra.sweeper.params.lora.r: empty choices"),
    ({"lora.r": {"type": "int", "low": 4}}, "hydra.sweeper.params.lora.r: a int parameter needs low and high"),
    ({"lora.r": {"type": "int", "low": 1, "high": 8, "stepp": 2}}, "unknown field 'stepp'"),
    ({"optimizer.lr": "tag(log, interval(0, 1))"}, "hydra.sweeper.params.optimizer.lr: tag(log, interval(0.0, 1.0)) needs low > 0"),
    ({"optimizer.lr": "interval(1e-2, 1e-4)"}, "needs low < high"),
    ({"lora.r": "range(8, 4)"}, "hydra.sweeper.params.lora.r: range(8, 4, 1) is empty"),
    ({"lora.r": [4, 8]}, "hydra.sweeper.params.lora.r: a list is ambiguous"),
    ({"lora.r": "choice(4,"}, "hydra.sweeper.params.lora.r: cannot parse"),
])
def test_bad_search_space_is_one_line_naming_the_key(params, needle):
    with pytest.raises(ConfigError) as err:
        _space.build(params, [])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_check_accepts_known_paths_and_group_options(hydra_cfg):
    compose, loader = hydra_cfg
    cfg = compose()
    space = _space.build({"lora.r": "choice(4, 8)", "data.mix.domain_ratio": "interval(0.5, 1.0)",
                          "train": "choice(tiny, demo)"}, [])
    _space.check(space, cfg, loader)  # raises on anything wrong
    # a config-group choice reaches the job as a group override, which composes to that option's file
    over = _space.param_overrides({"train": "tiny"}, space.prefixes)
    assert over == ["train=tiny"] and compose(over).train.max_steps == 6


@pytest.mark.parametrize("params,needle", [
    ({"lora.rnak": "choice(4, 8)"}, "search space 'lora.rnak': unknown parameter path: unknown key 'lora.rnak' "
                                    "(valid keys of lora: method, r, alpha"),
    ({"quant": "choice(none, nf8)"}, "search space 'quant': unknown option 'nf8' for group 'quant' (available: "),
    ({"train": "interval(1, 2)"}, "'train' is a config group; search it with choice"),
    ({"hydra.job.name": "choice(a, b)"}, "Hydra's own settings cannot be searched"),
])
def test_check_rejects_unknown_paths_and_options_in_one_line(hydra_cfg, params, needle):
    compose, loader = hydra_cfg
    with pytest.raises(ConfigError) as err:
        _space.check(_space.build(params, []), compose(), loader)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", [None, True, 3, 1e-5, 0.1 + 0.2, "nf4", "a b", "true", "8", "it's", "x=y", "[1,2]"])
def test_encoded_values_parse_back_to_themselves(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"k={_space.encode(value)}").value()
    assert parsed == value and type(parsed) is type(value)


def test_grid_needs_finite_values():
    space = _space.build({"lora.r": "choice(4, 8)", "train.grad_accum": "range(1, 4)"}, [])
    assert _space.grid(space) == {"lora.r": [4, 8], "train.grad_accum": [1, 2, 3]}
    with pytest.raises(ConfigError, match="'optimizer.lr' is continuous"):
        _space.grid(_space.build({"optimizer.lr": "interval(1e-4, 1e-3)"}, []))


def test_storage_urls(tmp_path, monkeypatch):
    from ftx.track.sweep import describe_storage, job_storage_ref, open_storage

    for url, needle in [("foo", "'foo' is not a storage URL"), ("nosuchdb://x/y", "unknown database 'nosuchdb'"),
                        ("postgresql://u:pw@localhost:1/db", "cannot open 'postgresql://u:***@localhost:1/db'"),
                        ("postgres://u:pw@localhost/db", "unknown database 'postgres' in 'postgres://u:***@localhost/db' "
                         "(sqlite, postgresql, mysql, …, or journal:PATH; did you mean postgresql://…?)")]:
        with pytest.raises(ConfigError) as err:
            open_storage(url)
        assert needle in str(err.value) and "pw" not in str(err.value) and "\n" not in str(err.value)
    db = tmp_path / "a" / "b" / "optuna.db"
    optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{db}"))
    assert db.is_file()
    journal = tmp_path / "j" / "optuna.journal"
    optuna.create_study(study_name="s", storage=open_storage(f"journal:{journal}"))
    assert optuna.load_study(study_name="s", storage=open_storage(f"journal:{journal}")).study_name == "s"
    # a password never reaches job overrides: jobs get a reference to the environment instead
    monkeypatch.delenv("FTX_SWEEP_STORAGE", raising=False)
    secret = "postgresql://u:pw@db.example/optuna"
    assert describe_storage(secret) == "postgresql://u:***@db.example/optuna"
    assert job_storage_ref(secret) == "env:FTX_SWEEP_STORAGE" and os.environ["FTX_SWEEP_STORAGE"] == secret
    assert job_storage_ref(f"sqlite:///{db}") == f"sqlite:///{db}"


def test_multirun_overrides_are_parsed_up_front():
    from ftx.track.sweep import check_overrides

    check_overrides(["lora.r=choice(4,8)", "optimizer.lr=tag(log, interval(1e-5, 1e-2))"])
    with pytest.raises(ConfigError) as err:
        check_overrides(["lora.r=choice()"])
    assert str(err.value) == "override 'lora.r=choice()': 'choice()': empty choice is not legal"


def test_pruners():
    from ftx.track.sweep import make_pruner

    assert isinstance(make_pruner({"name": "median"}), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner({"name": "hyperband", "max_resource": "12"}), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner(None), optuna.pruners.NopPruner)
    with pytest.raises(ConfigError, match="hydra.sweeper.pruner.name: must be one of none, median, hyperband"):
        make_pruner({"name": "asha"})


def test_job_rebuilds_its_trial_reports_and_is_pruned(tmp_path):
    """The job side: a fresh Trial from storage + study name + trial id; a bad loss raises TrialPruned."""
    from ftx.track.sweep import trial_callbacks

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.set_user_attr("ftx:pruner", {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    done = study.ask()
    for step, v in [(3, 2.0), (6, 1.5)]:
        done.report(v, step)
    study.tell(done, 1.5)
    trial = study.ask()
    assert trial_callbacks(SimpleNamespace(sweep={})) == []
    [cb] = trial_callbacks(SimpleNamespace(sweep={"study": "s", "trial_id": trial._trial_id, "storage": url}))
    state = SimpleNamespace(global_step=3, is_world_process_zero=True)
    cb.on_evaluate(None, state, None, metrics={"eval_loss": 1.9})  # better than the median: goes on
    state.global_step = 6
    with pytest.raises(optuna.TrialPruned, match="pruned at step 6"):
        cb.on_evaluate(None, state, None, metrics={"eval_loss": 4.0})
    assert study.trials[1].intermediate_values == {3: 1.9, 6: 4.0}


def test_report_files(tmp_path):
    from hydra_plugins.ftx_sweeper.report import write_report

    study = optuna.create_study(study_name="demo", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    study.set_user_attr("ftx:fixed", ["+sweep=tiny", "data.sources.http.path=/data/my file.jsonl"])
    study.set_user_attr("ftx:objectives", ["tuned/val_loss"])
    dists = {"lora.r": CategoricalDistribution([4, 8]), "optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True)}
    for i, (r, lr, v) in enumerate([(4, 1e-3, 2.0), (8, 3e-3, 1.5), (4, 1e-4, 2.5)]):
        study.add_trial(optuna.create_trial(params={"lora.r": r, "optimizer.lr": lr}, distributions=dists, value=v,
                                            intermediate_values={5: v + 0.5, 10: v}))
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.PRUNED, params={"lora.r": 8, "optimizer.lr": 1e-5},
                                        distributions=dists, intermediate_values={5: 3.0}))
    out = write_report(study, tmp_path, plots="png")
    assert (out / "best_overrides.txt").read_text() == (
        "ftx train +sweep=tiny 'data.sources.http.path=/data/my file.jsonl' lora.r=8 optimizer.lr=0.003\n")
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["best"]["trial"] == 1 and best["best"]["value"] == 1.5
    assert best["best"]["config"] == {"lora": {"r": 8}, "optimizer": {"lr": 0.003}}
    assert best["trials"] == {"complete": 3, "pruned": 1}
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and "params_lora.r" in rows[0] and "PRUNED" in rows[4]
    for name in ("history.png", "importances.png", "parallel.png", "intermediate.png", "report.md"):
        assert (out / name).stat().st_size > 1000 or name == "report.md" and (out / name).stat().st_size > 100, name
    assert "| 1 | 1.5 | 8 | 0.003 |" in (out / "report.md").read_text()


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_files_open_with_their_command_and_their_space_checks(path, hydra_cfg):
    compose, loader = hydra_cfg
    head = path.read_text().splitlines()[:3]
    assert f"# ftx train -m +sweep={path.stem}" in head
    cfg = compose([f"+sweep={path.stem}"])
    assert cfg.hydra.sweeper._target_.endswith("FtxSweeper")
    from omegaconf import OmegaConf

    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    space = _space.build(sweeper["params"], [])
    _space.check(space, cfg, loader)
    assert space.distributions
    from ftx.track.sweep import make_pruner

    make_pruner(sweeper["pruner"])
    if sweeper["sampler"]["name"] == "grid":
        assert math.prod(len(v) for v in _space.grid(space).values()) == sweeper["n_trials"]


def test_required_sweep_files_exist(hydra_cfg):
    _, loader = hydra_cfg  # the sweep group is found in the config tree, not registered by the plugin
    assert loader.get_group_options("sweep") == [p.stem for p in SWEEPS]
    params = {p.stem: yaml.safe_load(p.read_text())["hydra"]["sweeper"]["params"] for p in SWEEPS}
    assert {"lora.r", "lora.alpha", "optimizer.lr", "data.mix.domain_ratio"} <= set(params["lora_lr_mix"])
    assert "quant.mode" in params["lora_vs_qlora"] or "quant" in params["lora_vs_qlora"]
    assert "tiny" in params


def test_sweep_report_needs_a_sweep_dir(tmp_path):
    from ftx.cli.sweep_report import cmd_sweep_report
    from ftx.errors import RunError

    with pytest.raises(RunError, match="no sweep.json .not an ftx sweep directory.; pass --storage and --study"):
        cmd_sweep_report([str(tmp_path)])
    optuna.create_study(study_name="x", storage=f"sqlite:///{tmp_path / 'o.db'}")
    with pytest.raises(RunError, match="--study: no study 'y' in sqlite:///"):
        cmd_sweep_report([str(tmp_path), "--storage", f"sqlite:///{tmp_path / 'o.db'}", "--study", "y"])


def test_running_trials_of_dead_sweepers_are_failed_and_requeued(tmp_path):
    import socket
    import subprocess
    import sys

    from hydra_plugins.ftx_sweeper import _study

    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    dist = {"x": FloatDistribution(0, 1)}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = {"host": socket.gethostname(), "pid": dead.pid, "started": 0.0}
    dead.wait()
    trials = [study.ask(dist) for _ in range(4)]
    owners = [dead_owner, _study.owner(), {**dead_owner, "host": "elsewhere"}, None]
    for t, o in zip(trials, owners):
        if o:
            study._storage.set_trial_system_attr(t._trial_id, "ftx:owner", o)
    _study.reap_dead_owners(study, grace=3600)
    assert [t.state.name for t in study.trials] == ["FAIL", "RUNNING", "RUNNING", "RUNNING", "WAITING"]
    assert study.trials[4].params == trials[0].params and study.trials[4].system_attrs["retry_history"] == [0]
    _study.reap_dead_owners(study, grace=0)  # an owner-less RUNNING trial older than the grace period
    assert [t.state.name for t in study.trials][3:] == ["FAIL", "WAITING", "WAITING"]
    done, running, failed = _study.progress(study)
    assert [t.number for t in running] == [1, 2] and done == [] and failed == []  # retried ones do not count
