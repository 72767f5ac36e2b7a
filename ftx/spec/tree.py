"""The config tree: where it is (CONF_DIR), the user's folder layered in front of it, composing with Hydra's
compose API, YAML errors as one line.

    from ftx.spec.tree import compose
    cfg = compose(["lora.r=16"])        # a DictConfig; ftx.spec.run.build_spec(cfg) validates it

The user's folder (`layers`): `--config-dir DIR`, else $FTX_CONF, else `conf/` in the working directory.
A folder without its own `config.yaml` holds options only (`data/mine.yaml`, `experiment/x.yaml`,
`sweep/s.yaml` …): it goes on Hydra's search path in front of ftx's tree (the search-path plugin in
hydra_plugins/ftx_searchpath, told by $FTX_CONF_LAYER), so Hydra looks in the user's folder first: an
option of the user's with the name of one of ftx's wins. A folder with a `config.yaml` is a whole tree of
its own and replaces ftx's.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftx.conf import PACKAGED, conf_dir
from ftx.errors import ConfigError
from ftx.spec.run import explain

CONF_DIR = conf_dir()
"""The base tree: the packaged ftx/conf/, or $FTX_CONF when that is a whole tree (holds config.yaml)."""

LAYER_ENV = "FTX_CONF_LAYER"
"""Read by hydra_plugins/ftx_searchpath (which imports nothing of ftx): the user's folder, if any."""

GROUP_ORDER = ("data", "curation", "model", "lora", "quant", "zero", "optimizer", "train", "eval", "tracking",
               "experiment", "sweep")
"""The order of config.yaml's defaults list (then the sweep): how `ftx spec` lists the choices."""

SKIP_GROUPS = ("hydra",)
"""Choices `ftx spec` does not attribute to a folder (Hydra's own groups)."""


@dataclass(frozen=True)
class Layers:
    """Where Hydra looks for configs: `user` (if any) in front of `base`."""

    base: Path
    user: Optional[Path] = None
    shown: str = ""
    """The user's folder as the user gave it (for messages): `./conf`, the --config-dir argument, $FTX_CONF."""
    found_by: str = ""
    """'--config-dir', 'FTX_CONF' or 'the working directory'."""

    def activate(self) -> None:
        """Tell the search-path plugin (this process and the jobs it starts) about the user's folder."""
        if self.user:
            os.environ[LAYER_ENV] = str(self.user)
        else:
            os.environ.pop(LAYER_ENV, None)

    def folders(self) -> list[tuple[Path, str]]:
        """(folder, short name), in the order Hydra searches them: the user's as given, ftx's as 'ftx'."""
        out = [(self.user, self.shown)] if self.user else []
        return out + [(self.base, "ftx" if self.base == PACKAGED else str(self.base))]

    def origin(self, group: str, option: str) -> str:
        """Which folder an option was read from (the first on the search path holding it), and what it shadows."""
        found = [name for folder, name in self.folders() if (folder / group / f"{option}.yaml").is_file()]
        if not found:
            return "built in"
        return found[0] + (f" (shadows {found[1]}'s {option})" if len(found) > 1 else "")

    def describe(self, choices: dict) -> list[str]:
        """`ftx spec`'s comment lines: the folders searched, then each chosen option and where it came from."""
        lines = ["config folders, first match wins: " + ", then ".join(
            f"{name} = {folder}" + (f" ({self.found_by})" if folder == self.user else "")
            for folder, name in self.folders())]
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        for group in sorted(choices, key=lambda g: (order.get(g, len(order)), g)):
            lines.append(f"{group}={choices[group]}: {self.origin(group, choices[group])}")
        return lines

    def unknown_option(self, group: str, option: str) -> str:
        def names(folder: Path) -> str:
            found = sorted(p.stem for p in (folder / group).glob("*.yaml"))
            return ", ".join(found) or "none"

        if not self.user:
            return f"unknown option '{option}' for group '{group}' (available: {names(self.base)})"
        return (f"unknown option '{option}' for group '{group}' (yours in {_join(self.shown, group)}: "
                f"{names(self.user)}; ftx's: {names(self.base)})")


def _join(shown: str, group: str) -> str:
    return f"{shown.rstrip('/')}/{group}"


def layers(config_dir: Optional[str] = None, cwd: Optional[Path] = None) -> Layers:
    """The search path for this command: `config_dir` (--config-dir), else $FTX_CONF, else ./conf.

    A user folder holding config.yaml is a whole tree and replaces the base (no layering).
    """
    base = CONF_DIR
    cwd = Path.cwd() if cwd is None else cwd
    if config_dir is not None:
        path = Path(config_dir).expanduser()
        path = path if path.is_absolute() else cwd / path
        if not path.is_dir():
            raise ConfigError(f"--config-dir {config_dir}: no such folder (give the folder holding your config "
                              "groups: data/, experiment/, sweep/ …; `ftx init` writes one)")
        user, shown, how = path.resolve(), config_dir, "--config-dir"
    elif os.environ.get("FTX_CONF") and base == PACKAGED and Path(os.environ["FTX_CONF"]).is_dir():
        user, shown, how = Path(os.environ["FTX_CONF"]).resolve(), os.environ["FTX_CONF"], "FTX_CONF"
    elif (cwd / "conf").is_dir() and not os.environ.get("FTX_CONF"):
        user, shown, how = (cwd / "conf").resolve(), "./conf", "the working directory"
    else:
        return Layers(base)
    if (user / "config.yaml").is_file():  # a whole tree of its own
        return Layers(user)
    if user == base.resolve():
        return Layers(base)
    return Layers(base, user, shown, how)


@contextmanager
def session(config_dir: Optional[str] = None):
    """A Hydra session on the config tree (the user's folder in front, as `layers` finds it), yielding its
    config loader: several `compose(..., in_session=True)` calls share one initialisation."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    where = layers(config_dir)
    if not where.base.is_dir():
        raise ConfigError(f"config directory not found: {where.base} (set FTX_CONF to your conf/ folder)")
    before = os.environ.get(LAYER_ENV)
    try:
        where.activate()
        with initialize_config_dir(config_dir=str(where.base), version_base="1.3", job_name="ftx"):
            yield GlobalHydra.instance().config_loader()
    finally:  # compose only: `ftx train` activates the layers for its whole process
        os.environ.pop(LAYER_ENV, None) if before is None else os.environ.__setitem__(LAYER_ENV, before)


def compose(overrides: list[str], config_dir: Optional[str] = None, in_session: bool = False, hydra: bool = False):
    """Compose the config tree with overrides (Hydra's compose API), errors as one line.

    `hydra=True` keeps `hydra.*` overrides and returns the hydra node too (which sweeper, its params);
    `in_session=True` composes inside an open `session()`."""
    return compose_choices(overrides, config_dir, in_session, hydra)[0]


def compose_choices(overrides: list[str], config_dir: Optional[str] = None, in_session: bool = False,
                    hydra: bool = False):
    """(cfg, choices, layers): the composed config, each group's chosen option, and the search path."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf, open_dict

    where = layers(config_dir)
    plain = overrides if hydra else [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    with one_line(where):
        if in_session:
            cfg = hydra_compose(config_name="config", overrides=plain, return_hydra_config=True)
        else:
            with session(config_dir):
                cfg = hydra_compose(config_name="config", overrides=plain, return_hydra_config=True)
    choices = {k: v for k, v in OmegaConf.to_container(cfg.hydra.runtime.choices).items()
               if k.split("/")[0] not in SKIP_GROUPS and v is not None}
    if not hydra:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg, choices, where


@contextmanager
def one_line(where: Optional[Layers] = None):
    """Hydra's and OmegaConf's composition errors (missing option, bad key or value, bad YAML) as one ConfigError."""
    import yaml
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    where = where or layers()
    try:
        yield
    except MissingConfigException as e:
        text = str(e)
        missing = e.missing_cfg_file or text.split("'")[1] if "'" in text else text
        group = missing.split("/")[0] if "/" in missing else None
        if group and e.options:
            raise ConfigError(where.unknown_option(group, missing.split("/", 1)[1])) from None
        raise ConfigError(" ".join(text.split())) from None
    except OverrideParseException as e:  # the grammar's message alone does not say which override
        raise ConfigError(f"override {e.override!r}: {str(e).splitlines()[0]} (Hydra's override grammar: "
                          "quote values holding brackets, commas or spaces, e.g. key='[1, 2]' for a list)") from None
    except HydraException as e:
        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException):
            raise ConfigError(explain(cause)) from None
        if isinstance(cause, yaml.YAMLError):
            raise ConfigError(yaml_error(cause)) from None
        first = str(e).splitlines()[0]
        if first.startswith("Ambiguous value for argument '"):  # a sweep value in a single run
            line = first.split("'", 1)[1].rsplit("'", 1)[0]
            key, _, value = line.partition("=")
            raise ConfigError(f"{line}: several values sweep a key, which needs a multirun (ftx train -m {line}); "
                              f"for one list value write {key}=[{value}], for one string quote it: "
                              f"{key}='{value}'") from None
        raise ConfigError(first) from None
    except OmegaConfBaseException as e:
        raise ConfigError(explain(e)) from None
    except yaml.YAMLError as e:  # a hand-edited experiment or group file
        raise ConfigError(yaml_error(e)) from None


def yaml_error(e, path=None) -> str:
    """'file:line:column: malformed YAML (problem)' from a PyYAML error (`path` when it parsed a string)."""
    mark = getattr(e, "problem_mark", None)
    where = f"{path or mark.name}:{mark.line + 1}:{mark.column + 1}" if mark else str(path or "YAML")
    return f"{where}: malformed YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})"
