"""Search space: Hydra sweep syntax or explicit dicts → Optuna distributions, checked against the config.

    lora.r: choice(4, 8, 16)                     categorical
    optimizer.lr: tag(log, interval(1e-5, 1e-2)) float, log scale
    lora.dropout: interval(0, 0.2)               float
    train.seed: int(interval(1, 100))            int
    lora.r: range(4, 33, 4)                      int with a step (stop excluded, as in Python)
    quant: choice(none, nf4)                     a config group: picks between its option files
    optimizer.lr: {type: float, low: 1e-5, high: 1e-2, log: true}

Command-line arguments win over the config: a sweep override (`lora.r=choice(4,8)`) replaces that
parameter's range, a plain one (`lora.r=8`) fixes it for every trial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ftx.errors import ConfigError

TAGS = ("log",)
"""Sweep tags the ftx sweeper reads: tag(log, interval(…)) is a log-scale float or int."""
_PLAIN = re.compile(r"^[A-Za-z0-9_./:\-]+$")


@dataclass
class Space:
    distributions: Dict[str, Any] = field(default_factory=dict)
    """param key → optuna distribution."""
    prefixes: Dict[str, str] = field(default_factory=dict)
    """param key → '', '+' or '++' as written."""
    fixed: List[str] = field(default_factory=list)
    """Plain overrides passed to every trial, as written."""
    encoded: List[str] = field(default_factory=list)
    """Params whose choices are already override strings (lists, dicts: Optuna only stores scalars)."""

    def overrides(self, params: Dict[str, Any]) -> List[str]:
        """A trial's overrides: the fixed ones, then the sampled parameters."""
        return self.fixed + param_overrides(params, self.prefixes, self.encoded)


def param_overrides(params: Dict[str, Any], prefixes: Dict[str, str], encoded=()) -> List[str]:
    return [f"{prefixes.get(k, '')}{k}={v if k in encoded else encode(v)}" for k, v in params.items()]


def encode(value: Any) -> str:
    """A Python value as a Hydra override value that parses back to the same value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and _PLAIN.match(value):
        try:
            if OverridesParser.create().parse_override(f"k={value}").value() == value:
                return value
        except Exception:
            pass
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _from_override(where: str, override) -> Any:
    """A parsed Hydra sweep override → an Optuna distribution."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    tags = sorted(getattr(value, "tags", None) or ())
    known = TAGS if isinstance(value, IntervalSweep) else ()
    unknown = [t for t in tags if t not in known]
    if unknown:
        valid = f"valid: {', '.join(TAGS)}, on interval()" if known or not isinstance(value, (ChoiceSweep, RangeSweep)) \
            else "choice() and range() take no tags; tag(log, …) goes on interval()"
        raise ConfigError(f"{where}: unknown sweep tag {unknown[0]!r} ({valid})")
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.identity))
        if not choices:
            raise ConfigError(f"{where}: empty choice(); give at least one value")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode))), True
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(x, float) for x in (start, stop, step)):
            n = int((stop - start) / step + 1e-9)
            if n < 1:
                raise ConfigError(f"{where}: range({start}, {stop}, {step}) is empty")
            return FloatDistribution(start, start + (n - 1) * step if n > 1 else start, step=step if n > 1 else None)
        values = list(range(int(start), int(stop), int(step)))
        if not values:
            raise ConfigError(f"{where}: range({start}, {stop}, {step}) is empty")
        return IntDistribution(values[0], values[-1], step=int(step))
    if isinstance(value, IntervalSweep):
        lo, hi, log = value.start, value.end, "log" in value.tags
        if not lo < hi:
            raise ConfigError(f"{where}: interval({lo}, {hi}) needs low < high")
        if log and lo <= 0:
            raise ConfigError(f"{where}: tag(log, interval({lo}, {hi})) needs low > 0")
        if isinstance(lo, int) and isinstance(hi, int):
            return IntDistribution(lo, hi, log=log)
        return FloatDistribution(float(lo), float(hi), log=log)
    raise ConfigError(f"{where}: unsupported sweep {override.input_line!r}")


def _from_dict(where: str, spec: dict) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind = spec.get("type", "categorical" if "choices" in spec else "float")
    known = {"type", "low", "high", "log", "step", "choices"}
    extra = sorted(set(spec) - known)
    if extra:
        raise ConfigError(f"{where}: unknown field {extra[0]!r} (valid: {', '.join(sorted(known))})")
    if kind == "categorical":
        choices = list(spec.get("choices") or [])
        if not choices:
            raise ConfigError(f"{where}: empty choices; give at least one value")
        return CategoricalDistribution(choices)
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}.type: must be float, int or categorical; got {kind!r}")
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: a {kind} parameter needs low and high")
    lo, hi, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    if not lo < hi or (log and lo <= 0):
        raise ConfigError(f"{where}: needs low < high{' and low > 0 (log scale)' if log else ''}; got {lo}, {hi}")
    if kind == "int":
        return IntDistribution(int(lo), int(hi), log=log, step=int(step or 1))
    return FloatDistribution(float(lo), float(hi), log=log, step=step)


def build(params: Dict[str, Any], arguments: List[str]) -> Space:
    """The search space from `hydra.sweeper.params`, then the command line on top."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException
    from omegaconf import DictConfig, OmegaConf

    parser = OverridesParser.create()
    space = Space()

    def parse(where: str, line: str):
        try:
            return parser.parse_overrides([line])[0]
        except OverrideParseException as e:
            detail = str(e).splitlines()[1] if len(str(e).splitlines()) > 1 else str(e)
            if "empty choice" in detail:
                raise ConfigError(f"{where}: empty choice(); give at least one value") from None
            raise ConfigError(f"{where}: cannot parse {line!r}: {detail}") from None

    def add(where: str, override) -> None:
        key = override.key_or_group
        prefix = "++" if override.is_force_add() else "+" if override.is_add() else ""
        space.fixed = [f for f in space.fixed if _key_of(f) != key]
        space.distributions.pop(key, None)
        space.encoded = [k for k in space.encoded if k != key]
        if override.is_sweep_override():
            dist = _from_override(where, override)
            if isinstance(dist, tuple):
                dist = dist[0]
                space.encoded.append(key)
            space.distributions[key], space.prefixes[key] = dist, prefix
        else:
            space.fixed.append(override.input_line)

    for key, value in (params or {}).items():
        where = f"hydra.sweeper.params.{key}"
        if isinstance(value, (dict, DictConfig)):
            spec = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
            space.distributions[key.lstrip("+")] = _from_dict(where, spec)
            space.prefixes[key.lstrip("+")] = key[: len(key) - len(key.lstrip("+"))]
            continue
        if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
            raise ConfigError(f"{where}: a list is ambiguous here; write choice(a, b, …) to search over "
                              "values, or set a fixed value as a normal override")
        add(where, parse(where, f"{key}={value if isinstance(value, str) else encode(value)}"))
    for line in arguments:
        add(f"override '{line}'", parse(f"override '{line}'", line))
    return space


def _key_of(line: str) -> str:
    return line.split("=", 1)[0].lstrip("+~")


def check(space: Space, cfg, config_loader) -> None:
    """Every parameter names a key of the composed config or a config group with those options."""
    from omegaconf import OmegaConf

    from ftx.spec.run import unknown_key_message

    missing = object()
    for key, dist in space.distributions.items():
        where = f"search space '{key}'"
        options = _group_options(config_loader, key)
        if options:
            bad = [c for c in getattr(dist, "choices", ()) if str(c) not in options]
            if not hasattr(dist, "choices"):
                raise ConfigError(f"{where}: '{key}' is a config group; search it with choice(…) of its "
                                  f"options ({', '.join(options)})")
            if bad:
                raise ConfigError(f"{where}: unknown option {bad[0]!r} for group '{key}' "
                                  f"(available: {', '.join(options)})")
            continue
        if key.startswith("hydra.") or key == "hydra":
            raise ConfigError(f"{where}: Hydra's own settings cannot be searched")
        if OmegaConf.select(cfg, key, default=missing, throw_on_missing=False) is missing and not space.prefixes.get(key):
            raise ConfigError(f"{where}: unknown parameter path: {unknown_key_message(key)}")


def _group_options(config_loader, key: str) -> List[str]:
    try:
        return sorted(config_loader.get_group_options(key.replace(".", "/")))
    except Exception:
        return []


def grid(space: Space) -> Optional[Dict[str, list]]:
    """The grid for GridSampler, or a one-line error naming a parameter that has no finite values."""
    out = {}
    for key, dist in space.distributions.items():
        if hasattr(dist, "choices"):
            out[key] = list(dist.choices)
        elif getattr(dist, "step", None):
            n = int(round((dist.high - dist.low) / dist.step)) + 1
            out[key] = [dist.low + i * dist.step for i in range(n)]
        else:
            raise ConfigError(f"hydra.sweeper.sampler.name=grid: '{key}' is continuous; give it choice(…) or "
                              "range(…), or use sampler tpe/random")
    return out
