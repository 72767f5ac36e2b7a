"""ftx's shipped Hydra configs: this folder is the primary config directory (`config.yaml` + groups).

It ships inside the package (pyproject package-data), so an installed ftx finds its configs with no
checkout; as a package it is also reachable as `pkg://ftx.conf` in a Hydra search path. A user's own
folder of options is layered in front of it by `ftx.spec.tree.layers` (docs/architecture.md).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGED = Path(__file__).resolve().parent
"""This folder: ftx's own config tree."""


def conf_dir() -> Path:
    """The base config tree: $FTX_CONF when it is a whole tree of its own (holds config.yaml) or does not
    exist (compose reports it), else this package. An $FTX_CONF folder without config.yaml is not a base:
    it is layered over this one (`ftx.spec.tree.layers`).
    """
    env = os.environ.get("FTX_CONF")
    if env and (not Path(env).is_dir() or (Path(env) / "config.yaml").is_file()):
        return Path(env)
    return PACKAGED
