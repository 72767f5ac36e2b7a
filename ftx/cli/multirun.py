"""`ftx train -m …`: a multirun or sweep is validated like a single run, before Hydra starts anything.

Every swept parameter — a `-m` list (`lora.r=4,8`), `choice`/`range`/`glob`, `interval` (its two
ends), `hydra.sweeper.params` of a sweep file — is expanded into its candidate values with Hydra's own
override parser (the ftx sweeper's `_space.build` for the ftx sweeper), and every candidate is checked
with ftx's compose + `build_spec` on top of the run's fixed overrides: unknown keys, wrong types, bad
choices, unknown group options and unknown sweep tags end as one `ConfigError` naming the override (or
the sweep file's param) and the value, before a sweep directory exists. Hydra's basic sweeper runs
every combination, so its combinations are checked too (cross-group rules such as quant + full
fine-tuning), up to MAX_COMBINATIONS.

Key overrides are applied to a copy of one composed config, then `build_spec` (≈0.2 s a value idle, 2–3×
that on a loaded 2-core machine); a group option (`lora=dora`) needs a full compose (≈0.5–1 s), cached per
combination of group options.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ftx.errors import ConfigError
from ftx.spec import tree
from ftx.spec.run import build_spec
from hydra_plugins.ftx_sweeper import _space

MAX_COMBINATIONS = 64
"""Hydra's basic sweeper: beyond this many combinations only each value is checked, not every product."""
MAX_GROUP_COMPOSES = 16
"""Full composes (group options) allowed for the combination check."""


@dataclass
class Param:
    key: str
    where: str
    """How the user wrote it: `override 'lora.r=4,8'` or `hydra.sweeper.params.lora.r`."""
    lines: List[str] = field(default_factory=list)
    """One override line per candidate value."""
    values: List[str] = field(default_factory=list)
    group: bool = False


def check(overrides: List[str], config_dir: Optional[str] = None) -> None:
    """Validate a multirun's overrides (see the module docstring); one ConfigError for the first mistake."""
    from omegaconf import OmegaConf

    parser = _parser()
    parsed = [parser.parse_override(line) for line in overrides]  # syntax was checked by check_overrides
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeps = [o for o in parsed if o.is_sweep_override()]
    with tree.session(config_dir) as loader:
        hcfg = tree.compose(fixed, in_session=True, hydra=True)
        target = str(OmegaConf.select(hcfg, "hydra.sweeper._target_", default="") or "")
        conf_params = OmegaConf.select(hcfg, "hydra.sweeper.params", default=None)
        if "ftx_sweeper" in target:
            job_fixed, params = _ftx_params(conf_params, overrides, sweeps, loader)
        elif target.endswith("BasicSweeper"):
            job_fixed, params = _basic_params(conf_params, fixed, sweeps, loader)
        else:
            return  # another sweeper plugin: its own syntax, its own checks
        job_fixed = [f for f in job_fixed if not _key(f).startswith("hydra")]
        checker = _Checker(job_fixed, loader)
        for p in params:
            for line, value in zip(p.lines, p.values):
                checker.check([line], lambda msg, p=p, value=value: _value_error(p, value, msg))
        if "ftx_sweeper" in target or len(params) < 2:
            return
        combos = 1
        for p in params:
            combos *= max(1, len(p.lines))
        groups = 1
        for p in params:
            groups *= len(p.lines) if p.group else 1
        if combos > MAX_COMBINATIONS or groups > MAX_GROUP_COMPOSES:
            return
        for combo in itertools.product(*[p.lines for p in params]):
            checker.check(list(combo), lambda msg, combo=combo: ConfigError(
                f"sweep combination {' '.join(combo)}: {msg}"))


class _Checker:
    """Compose + build_spec for fixed overrides plus a few swept ones, composing only for group options."""

    def __init__(self, fixed: List[str], loader) -> None:
        self.fixed, self.loader = fixed, loader
        self.parser = _parser()
        self.composed: Dict[Tuple[str, ...], object] = {}
        base = self._base(())
        build_spec(base)  # the fixed overrides alone: the same message as a single run

    def _base(self, group_lines: Tuple[str, ...]):
        if group_lines not in self.composed:
            self.composed[group_lines] = tree.compose(self.fixed + list(group_lines), in_session=True)
        return self.composed[group_lines]

    def check(self, lines: List[str], error) -> None:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        groups = tuple(l for l in lines if _is_group(self.loader, _key(l)))
        keys = [self.parser.parse_override(l) for l in lines if l not in groups]
        try:
            cfg = self._base(groups)
            if keys:
                cfg = copy.deepcopy(cfg)
                with tree.one_line():
                    ConfigLoaderImpl._apply_overrides_to_config(keys, cfg)
            build_spec(cfg)
        except ConfigError as e:
            raise error(str(e)) from None


def _ftx_params(conf_params, overrides: List[str], sweeps, loader) -> Tuple[List[str], List[Param]]:
    """The ftx sweeper's space (hydra.sweeper.params, then the command line) as candidates."""
    from optuna.distributions import CategoricalDistribution

    task = [o for o in overrides if not _key(o).startswith("hydra")]
    space = _space.build(conf_params or {}, task)
    from_cli = {o.key_or_group: o.input_line for o in sweeps}
    params = []
    for key, dist in space.distributions.items():
        where = f"override '{from_cli[key]}'" if key in from_cli else f"hydra.sweeper.params.{key}"
        if isinstance(dist, CategoricalDistribution):
            values = list(dist.choices)
        else:
            values = [dist.low, dist.high]
        lines = [_space.param_overrides({key: v}, space.prefixes, space.encoded)[0] for v in values]
        params.append(Param(key, where, lines, [line.split("=", 1)[1] for line in lines],
                            _is_group(loader, key)))
    return space.fixed, params


def _basic_params(conf_params, fixed: List[str], sweeps, loader) -> Tuple[List[str], List[Param]]:
    """Hydra's basic sweeper: every value of every list/choice/range/glob (it enumerates them all)."""
    from hydra.core.override_parser.types import Glob, IntervalSweep

    parser = _parser()
    by_key = {}
    for key, value in (conf_params or {}).items():
        line = f"{key}={value}"
        where = f"hydra.sweeper.params.{key}"
        with _syntax(where, line):
            by_key[key.lstrip("+~")] = (where, parser.parse_override(line))
    for o in sweeps:
        by_key[o.key_or_group] = (f"override '{o.input_line}'", o)
    cli_keys = {_key(f) for f in fixed}
    params = []
    for key, (where, o) in by_key.items():
        if key in cli_keys and where.startswith("hydra."):
            continue  # a plain command-line value fixes what the sweep file sweeps
        if not o.is_sweep_override():
            fixed = fixed + [o.input_line]
            continue
        value = o.value()
        if isinstance(value, IntervalSweep):
            raise ConfigError(f"{where}: interval() needs a sampler; Hydra's basic sweeper only enumerates lists, "
                              "choice(), range() and glob() (use hydra/sweeper=ftx, or a ready +sweep=… file)")
        tags = sorted(getattr(value, "tags", None) or ())
        if tags:
            raise ConfigError(f"{where}: tag({tags[0]}, …) means nothing to Hydra's basic sweeper, which runs every "
                              "value as listed (use hydra/sweeper=ftx for tag(log, interval(…)))")
        if isinstance(value, Glob):
            o.config_loader = loader
        strings = list(o.sweep_string_iterator())
        if not strings:
            raise ConfigError(f"{where}: the sweep has no values")
        prefix = "++" if o.is_force_add() else "+" if o.is_add() else ""
        params.append(Param(key, where, [f"{prefix}{key}={s}" for s in strings], strings, _is_group(loader, key)))
    return fixed, params


def _value_error(p: Param, value: str, msg: str) -> ConfigError:
    if msg.startswith(("unknown key", "unknown option")):  # the key (or the option, named) is the mistake
        return ConfigError(f"{p.where}: {msg}")
    return ConfigError(f"{p.where}: value {value}: {msg}")


class _syntax:
    def __init__(self, where: str, line: str) -> None:
        self.where, self.line = where, line

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        from hydra.errors import OverrideParseException

        if isinstance(e, OverrideParseException):
            detail = [l for l in str(e).splitlines()[1:] if l and not l.startswith("See ")]
            raise ConfigError(f"{self.where}: cannot parse {self.line!r}: "
                              f"{detail[0] if detail else str(e).splitlines()[0]}") from None
        return False


def _is_group(loader, key: str) -> bool:
    return bool(_space._group_options(loader, key))


def _key(line: str) -> str:
    return line.split("=", 1)[0].lstrip("+~")


def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()
