"""The config tree: where it is (CONF_DIR), composing it with Hydra's compose API, YAML errors as one line.

    from ftx.spec.tree import compose
    cfg = compose(["lora.r=16"])        # a DictConfig; ftx.spec.run.build_spec(cfg) validates it
"""

from __future__ import annotations

from contextlib import contextmanager

from ftx.conf import conf_dir
from ftx.errors import ConfigError
from ftx.spec.run import explain

CONF_DIR = conf_dir()
"""$FTX_CONF if set (your own copy of the whole tree), else the packaged ftx/conf/."""


@contextmanager
def session():
    """A Hydra session on the config tree, yielding its config loader: several `compose(..., in_session=True)`
    calls share one initialisation (group options, the hydra config)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if not CONF_DIR.is_dir():
        raise ConfigError(f"config directory not found: {CONF_DIR} (set FTX_CONF to your conf/ folder)")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="ftx"):
        yield GlobalHydra.instance().config_loader()


def compose(overrides: list[str], in_session: bool = False, hydra: bool = False):
    """Compose the config tree with overrides (Hydra's compose API), errors as one line.

    `hydra=True` keeps `hydra.*` overrides and returns the hydra node too (which sweeper, its params);
    `in_session=True` composes inside an open `session()`."""
    from hydra import compose as hydra_compose

    plain = overrides if hydra else [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    with one_line():
        if in_session:
            return hydra_compose(config_name="config", overrides=plain, return_hydra_config=hydra)
        with session():
            return hydra_compose(config_name="config", overrides=plain, return_hydra_config=hydra)


@contextmanager
def one_line():
    """Hydra's and OmegaConf's composition errors (missing option, bad key or value, bad YAML) as one ConfigError."""
    import yaml
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except MissingConfigException as e:
        text = str(e)
        missing = e.missing_cfg_file or text.split("'")[1] if "'" in text else text
        group = missing.split("/")[0] if "/" in missing else None
        options = e.options or []
        if group and options:
            raise ConfigError(f"unknown option '{missing.split('/', 1)[1]}' for group '{group}' "
                              f"(available: {', '.join(sorted(options))})") from None
        raise ConfigError(" ".join(text.split())) from None
    except HydraException as e:
        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException):
            raise ConfigError(explain(cause)) from None
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
