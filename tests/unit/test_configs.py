"""Every shipped config composes and validates: each option of each group, every experiment and sweep.

The config files state only what differs from the typed schema (RunSpec, whose defaults come first in
config.yaml's defaults list): a value equal to what the file would get without it is a copied default.
"""

from __future__ import annotations

import shutil
from enum import Enum
from pathlib import Path

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from ftx.errors import ConfigError
from ftx.spec.run import RunSpec, as_dict, build_spec, spec_hash
from ftx.spec.tree import CONF_DIR, compose

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
    assert spec.name == name, f"experiment/{name}.yaml must set name: {name} (it names the run directory)"
    resolved, default = as_dict(spec), as_dict(build_spec(compose([])))
    assert spec_hash(resolved) != spec_hash(default)
    body = _body(CONF_DIR / "experiment" / f"{name}.yaml")[1]
    body.pop("hydra", None)
    for key, value in _leaves(OmegaConf.to_container(body)):  # applied last: each value it sets is in the spec
        assert OmegaConf.select(OmegaConf.create(resolved), key) == value, f"experiment={name}: {key}"


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


def test_conf_dir_is_the_package_unless_ftx_conf_says_otherwise(monkeypatch, tmp_path):
    import ftx
    from ftx.conf import conf_dir
    from ftx.spec import tree

    monkeypatch.delenv("FTX_CONF", raising=False)
    assert conf_dir() == Path(ftx.__file__).resolve().parent / "conf" and (conf_dir() / "config.yaml").is_file()
    monkeypatch.setenv("FTX_CONF", str(tmp_path / "nope"))
    assert conf_dir() == tmp_path / "nope"
    monkeypatch.setattr(tree, "CONF_DIR", conf_dir())
    with pytest.raises(ConfigError, match=r"config directory not found: .*nope \(set FTX_CONF to your conf/ folder\)"):
        compose([])

# ---- "no copied defaults": every value a config file sets must change something ----

def _body(path: Path) -> tuple[list, DictConfig, bool]:
    """(defaults list, the file's keys without it, whether it is a `_global_` package)."""
    cfg = OmegaConf.load(path)
    defaults = OmegaConf.to_container(cfg.pop("defaults")) if "defaults" in cfg else []
    is_global = any(line.strip() == "# @package _global_" for line in path.read_text().splitlines()[:3])
    return defaults, cfg, is_global or path.parent == CONF_DIR


def _base(path: Path) -> DictConfig:
    """What the file's keys land on: the schema node, plus what its own defaults list brings in before it."""
    from hydra_plugins.ftx_sweeper.config import FtxSweeperConf

    defaults, _, is_global = _body(path)
    group = path.parent.name
    schema = OmegaConf.structured(RunSpec)
    if is_global:  # the typed groups side by side with an untyped `hydra` node
        base = OmegaConf.create({"hydra": {}})
        for key in schema.keys():
            base[key] = schema._get_node(key)
    else:
        base = schema[group]
    for entry in defaults:
        if entry == "_self_":
            continue
        if isinstance(entry, str) and path.parent == CONF_DIR:
            continue  # config.yaml's `ftx_schema`: the schema itself, already the base
        if isinstance(entry, str):  # a sibling in the same group: inherit it
            base = OmegaConf.merge(base, _resolved(path.with_name(f"{entry}.yaml")))
            continue
        [(key, option)] = entry.items()
        if not key.startswith("override /"):
            continue  # config.yaml's own group defaults come after _self_: they do not lie under it
        target = key.removeprefix("override /")
        if target == "hydra/sweeper":
            base.hydra.sweeper = OmegaConf.structured(FtxSweeperConf) if option == "ftx" else {}
        else:
            base[target] = OmegaConf.merge(base[target], _resolved(CONF_DIR / target / f"{option}.yaml"))
    return base


def _resolved(path: Path) -> DictConfig:
    return OmegaConf.merge(_base(path), _body(path)[1])


def _schema_child(node: DictConfig, key: str):
    """The schema's node under `key`, or a fresh element for a new key of a Dict[str, Dataclass]."""
    if key in list(node.keys()):
        return node._get_node(key)
    element = node._metadata.element_type
    return OmegaConf.structured(element) if isinstance(element, type) and hasattr(element, "__dataclass_fields__") else None


def _raw(node):
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    value = node._value()
    return value.value if isinstance(value, Enum) else value  # a choice field holds its enum member


def _copied_defaults(body: DictConfig, base: DictConfig, resolved: DictConfig, prefix: str = "") -> list[str]:
    found = []
    for key in body.keys():
        was = _schema_child(base, key)
        if was is None:  # not a schema key (e.g. hydra.sweep.dir): nothing to compare with
            continue
        now = resolved._get_node(key)
        if isinstance(body._get_node(key), DictConfig) and isinstance(was, DictConfig):
            found += _copied_defaults(body[key], was, now, f"{prefix}{key}.")
        elif _raw(now) == _raw(was):
            found.append(f"{prefix}{key}: {_raw(now)!r}")
    return found


def _leaves(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


CONFIG_FILES = sorted(CONF_DIR.rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[str(p.relative_to(CONF_DIR)) for p in CONFIG_FILES])
def test_config_files_state_only_what_differs_from_the_schema(path):
    copied = _copied_defaults(_body(path)[1], _base(path), _resolved(path))
    assert not copied, f"{path.relative_to(CONF_DIR)} repeats the default it would get anyway: {', '.join(copied)}"


def test_copied_default_check_catches_one(tmp_path, monkeypatch):
    """The check itself: a copied schema default and a value equal to the inherited sibling's are both caught."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    monkeypatch.setitem(globals(), "CONF_DIR", conf)
    (conf / "lora" / "copied.yaml").write_text("# ftx train lora=copied\nmethod: dora\nr: 8\n")
    (conf / "lora" / "child.yaml").write_text("# ftx train lora=child\ndefaults:\n  - copied\n  - _self_\n\n"
                                             "method: dora\nr: 16\n")
    for name, expected in (("copied", ["r: 8"]), ("child", ["method: 'dora'"])):
        path = conf / "lora" / f"{name}.yaml"
        assert _copied_defaults(_body(path)[1], _base(path), _resolved(path)) == expected
