"""The one reader of run directories: `load_run(path) -> RunRecord`.

A run directory holds config.yaml (the resolved spec), manifest.json (spec hash, overrides, environment),
overrides.txt, metrics.json, metrics.jsonl (curves), data/ledger.json, data/stats.json, tracking.json and
adapter/. Cards, reports, compare, export and `ftx eval` all read it through here; `run_spec(record,
overrides)` rebuilds the RunSpec from the record for re-evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftx.errors import RunError
from ftx.runs import MetricsLog, read_json

FINISHED = ("config.yaml", "metrics.json", "adapter")
"""What `ftx eval` needs of a run."""


@dataclass
class RunRecord:
    """A run directory, read."""

    path: Path
    config: dict
    manifest: dict
    metrics: dict = field(default_factory=dict)
    curves: list = field(default_factory=list)
    ledger: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    tracking: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    adapter_config: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return bool(self.metrics)

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    def get(self, dotted: str, default: Any = None) -> Any:
        """A metric by path: `tuned/val_loss`, `objective/value`; a config key by `cfg:lora.r`."""
        node: Any = self.config if dotted.startswith("cfg:") else self.metrics
        for part in dotted.removeprefix("cfg:").replace("/", ".").split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.yaml").is_file() and (Path(path) / "manifest.json").is_file()


def _json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return default


def read_config(path: Path) -> dict:
    """RUN_DIR/config.yaml as plain data; bad YAML is a one-line 'file:line:col: malformed YAML (…)'."""
    import yaml

    p = Path(path) / "config.yaml"
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        from ftx.spec.tree import yaml_error

        raise RunError(yaml_error(e, p)) from None


def load_run(path: Path, finished: bool = False) -> RunRecord:
    """Read a run directory. A damaged optional file reads as empty (reports work on partial runs);
    `finished=True` (`ftx eval`) needs config.yaml, metrics.json and adapter/, and a damaged
    metrics.json or manifest.json is a one-line RunError."""
    path = Path(path)
    if finished:
        if not path.is_dir():
            raise RunError(f"run directory not found: {path}")
        for name in FINISHED:
            if not (path / name).exists():
                raise RunError(f"{path}: no {name} (not a finished ftx run; `ftx eval` needs config.yaml, "
                               "metrics.json and adapter/)")
    elif not is_run_dir(path):
        raise RunError(f"{path}: not a run directory (expected config.yaml and manifest.json in it)")
    config = read_config(path)
    if finished:
        metrics = read_json(path / "metrics.json")
        manifest = read_json(path / "manifest.json") if (path / "manifest.json").exists() else {}
    else:
        metrics, manifest = _json(path / "metrics.json", {}), _json(path / "manifest.json", {})
    overrides = manifest.get("overrides")
    if overrides is None and (path / "overrides.txt").is_file():
        overrides = (path / "overrides.txt").read_text(encoding="utf-8").splitlines()
    return RunRecord(path=path, config=config, manifest=manifest, metrics=metrics,
                     curves=MetricsLog(path / "metrics.jsonl").read(),
                     ledger=_json(path / "data" / "ledger.json", []), stats=_json(path / "data" / "stats.json", {}),
                     tracking=_json(path / "tracking.json", {}), overrides=list(overrides or []),
                     adapter_config=_json(path / "adapter" / "adapter_config.json", {}))


def run_spec(record: RunRecord, overrides: list[str]):
    """The run's RunSpec: its recorded config plus `overrides` (dotlist), for re-evaluation."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ftx.spec.run import build_spec, explain

    try:
        cfg = OmegaConf.merge(OmegaConf.create(record.config), OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as e:
        raise RunError(f"{record.path / 'config.yaml'}: {explain(e)}") from None
    return build_spec(cfg)
