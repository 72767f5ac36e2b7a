"""ftx's shipped Hydra configs: this folder is the primary config directory (`config.yaml` + groups).

It ships inside the package (pyproject package-data), so an installed ftx finds its configs with no
checkout; as a package it is also reachable as `pkg://ftx.conf` in a Hydra search path.
"""

from __future__ import annotations

import os
from pathlib import Path


def conf_dir() -> Path:
    """The primary config directory: $FTX_CONF if set (your own copy of the whole tree), else this package.

    Not checked here: `ftx.spec.tree.compose` reports a missing folder as one config error.
    """
    env = os.environ.get("FTX_CONF")
    return Path(env) if env else Path(__file__).resolve().parent
