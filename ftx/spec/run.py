"""RunSpec: every group's schema composed into one typed, validated, hashable run spec.

Hydra composes conf/ into a DictConfig; `build_spec` merges it onto the typed schema, so a typo'd
key, a `+`-added key no schema knows, or a wrong type fails here with one line that names the full
key and what is valid. Each group's schema lives beside the code it configures.
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from ftx.errors import ConfigError, require
from ftx.spec.curation import CurationConfig
from ftx.spec.data import DataConfig
from ftx.spec.eval import EvalConfig
from ftx.spec.lora import LoraConfig
from ftx.spec.model import ModelConfig
from ftx.spec.optimizer import OptimizerConfig
from ftx.spec.quant import QuantConfig
from ftx.spec.tracking import TrackingConfig
from ftx.spec.train import TrainConfig
from ftx.spec.zero import ZeroConfig
from ftx.spec.cpt import resolve


@dataclass
class ObjectiveConfig:
    """What a run returns to a sweeper."""

    metric: str = "tuned/val_loss"
    """Path into metrics.json (tuned/val_loss, delta/val_loss, tuned/val_ppl, …)."""
    direction: str = "minimize"
    """minimize | maximize."""


@dataclass
class RunSpec:
    """One run, fully specified."""

    name: str = "ftx"
    """Run name (part of the run directory name)."""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    zero: ZeroConfig = field(default_factory=ZeroConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sweep: Dict[str, Any] = field(default_factory=dict)
    """Set by the sweeper for its jobs (trial number, study, storage); empty otherwise. (A None default
    would reject the sweeper's `++sweep.trial=N` overrides: OmegaConf cannot merge into a None node.)"""

    def check(self) -> None:
        require(self.objective.direction in ("minimize", "maximize"), "objective.direction",
                f"must be minimize or maximize; got {self.objective.direction!r}")
        for f in fields(self):
            group = getattr(self, f.name)
            if hasattr(group, "check"):
                group.check()
        # Cross-group rules.
        require(not (self.quant.enabled and self.lora.method == "full"), "quant.mode",
                f"={self.quant.mode} cannot train with lora.method=full (quantised weights are frozen); "
                "use quant=none or a LoRA method")
        require(not (self.optimizer.mixout and self.zero.stage == 3), "optimizer.mixout",
                "cannot mix ZeRO-3's partitioned weights; use zero.stage<=2 or optimizer.mixout=0")
        require(not (self.model.source == "gguf_package" and self.model.trust_remote_code), "model.trust_remote_code",
                "is not needed for the embedded GGUF model; leave it false")


def _valid_keys(schema: Any, full_key: str) -> list[str]:
    node = schema
    for part in full_key.split(".")[:-1]:
        if is_dataclass(node):
            node = getattr(node, part, None)
        elif isinstance(node, dict):
            node = next(iter(node.values()), None) if node else None
        else:
            return []
    if is_dataclass(node):
        return [f.name for f in fields(node)]
    return []


def unknown_key_message(key: str) -> str:
    valid = _valid_keys(RunSpec(), key)
    parent = key.rsplit(".", 1)[0] if "." in key else "the top level"
    return f"unknown key '{key}'" + (f" (valid keys of {parent}: {', '.join(valid)})" if valid else "")


def explain(e: OmegaConfBaseException) -> str:
    """One line from an OmegaConf error: the full key, what went wrong, what is valid."""
    key = getattr(e, "full_key", None) or "?"
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ConfigKeyError) or "not in" in msg:
        return unknown_key_message(key)
    if isinstance(e, MissingMandatoryValue):
        return f"'{key}' is required but not set"
    if isinstance(e, ValidationError):
        return f"'{key}': {msg}"
    return f"'{key}': {msg}"


def _dataclass_of(tp: Any) -> Any:
    """The dataclass a field holds directly, or as the values of a Dict[str, X] / Optional[X]."""
    if is_dataclass(tp):
        return tp
    for arg in reversed(typing.get_args(tp)):
        if is_dataclass(arg):
            return arg
    return None


def unknown_key(node: Any, cls: Any, prefix: str = "") -> Optional[str]:
    """The first key in `node` that the schema `cls` does not declare (Hydra lets `+`/`++` add them)."""
    if not isinstance(node, dict):
        return None
    hints = typing.get_type_hints(cls)
    for key, value in node.items():
        full = f"{prefix}{key}"
        if key not in hints:
            return full
        tp = hints[key]
        sub = _dataclass_of(tp)
        if sub is None:
            continue
        if typing.get_origin(tp) in (dict, typing.Dict) and isinstance(value, dict):
            for name, item in value.items():
                found = unknown_key(item, sub, f"{full}.{name}.")
                if found:
                    return found
        else:
            found = unknown_key(value, sub, f"{full}.")
            if found:
                return found
    return None


def build_spec(cfg: DictConfig) -> RunSpec:
    """Validate a composed config: schema (keys, types) first, then cross-field rules."""
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"]) if "hydra" in cfg else cfg
    extra = unknown_key(OmegaConf.to_container(cfg, resolve=False), RunSpec)
    if extra:
        raise ConfigError(unknown_key_message(extra))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunSpec), cfg)
        spec = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(explain(e)) from None
    spec.check()

    resolve(spec)  # train.objective=cpt → data-plan settings, visible in config.yaml and the hash
    return spec


def as_dict(spec: RunSpec) -> dict:
    """The fully resolved run spec, every default filled in, as plain data."""
    return OmegaConf.to_container(OmegaConf.structured(spec), resolve=True)


def spec_hash(resolved: dict) -> str:
    """Hash of what determines the result: everything except tracking and sweep bookkeeping."""
    material = {k: v for k, v in resolved.items() if k not in ("tracking", "sweep")}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def register() -> None:
    """Put the schema under conf/config.yaml's defaults (`- ftx_schema`), so every key exists and is typed
    while Hydra composes: overriding a default without `+` works and a bad type fails early."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="ftx_schema", node=RunSpec)


register()
