"""Every shipped config composes and validates: each option of each group, every experiment and sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftx.cli import CONF_DIR, compose
from ftx.errors import ConfigError
from ftx.spec import RunSpec, as_dict, build_spec, spec_hash

GLOBAL_GROUPS = ("experiment", "sweep")  # `# @package _global_` bundles, applied over the whole config
GROUPS = sorted(p.name for p in CONF_DIR.iterdir()
                if p.is_dir() and p.name not in (*GLOBAL_GROUPS, "hydra") and not p.name.startswith("_"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]
EXPERIMENTS = sorted(f.stem for f in (CONF_DIR / "experiment").glob("*.yaml"))
SWEEPS = sorted(f.stem for f in (CONF_DIR / "sweep").glob("*.yaml"))
REQUIRED = {"model/local": ["model.name_or_path=/tmp/some-model"]}


def test_required_groups_exist():
    for group in ("data", "curation", "model", "lora", "quant", "zero", "optimizer", "train", "eval", "tracking"):
        assert group in GROUPS, group
    assert EXPERIMENTS, "no experiment files shipped"


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes_and_validates(group, option):
    spec = build_spec(compose([f"{group}={option}", *REQUIRED.get(f"{group}/{option}", [])]))
    assert isinstance(spec, RunSpec)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name):
    spec = build_spec(compose([f"experiment={name}"]))
    assert spec.name == name or spec.name


@pytest.mark.parametrize("name", SWEEPS)
def test_every_sweep_composes_and_validates(name):
    assert build_spec(compose([f"+sweep={name}"])).name == f"sweep_{name}"


def test_every_config_file_opens_with_the_command_that_runs_it():
    for f in sorted(CONF_DIR.rglob("*.yaml")):
        lines = f.read_text().splitlines()
        head = [l for l in lines[:3] if l.startswith("#") and "ftx " in l]
        assert head, f"{f} does not open with the command that runs it"


@pytest.mark.parametrize("override,needle", [
    ("lora.rnak=4", "unknown key 'lora.rnak'"),
    ("+lora.rnak=4", "unknown key 'lora.rnak'"),
    ("++lora.rnak=4", "unknown key 'lora.rnak'"),
    ("+data.split.valid=0.1", "unknown key 'data.split.valid'"),
    ("lora.r=abc", "'lora.r'"),
    ("lora.r=0", "lora.r: must be > 0"),
    ("data.split.val=1.5", "data.split.val: must be in (0, 1)"),
    ("lora=nope", "unknown option 'nope' for group 'lora'"),
    ("data.mix.domain_ratio=1.2", "data.mix.domain_ratio: must be in [0, 1]"),
    ("train.precision=fp8", "train.precision"),
])
def test_bad_overrides_give_one_line_naming_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        build_spec(compose([override]))
    msg = str(err.value)
    assert needle in msg
    assert "\n" not in msg


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        build_spec(compose(["lora.rnak=4"]))
    assert "valid keys of lora:" in str(err.value) and " r," in str(err.value)


def test_spec_hash_is_stable_and_sensitive():
    a = as_dict(build_spec(compose([])))
    b = as_dict(build_spec(compose([])))
    c = as_dict(build_spec(compose(["lora.r=16"])))
    assert spec_hash(a) == spec_hash(b) != spec_hash(c)
    d = as_dict(build_spec(compose(["tracking.project=other"])))
    assert spec_hash(a) == spec_hash(d), "tracking must not change the spec hash"
