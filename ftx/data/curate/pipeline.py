"""Runs the configured curation stages in order over canonical records."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ftx.data.curate.config import CurationConfig
from ftx.data.ledger import Ledger


def curate(records: list[dict], cfg: CurationConfig, ledger: Ledger,
           out_dir: Optional[Path] = None) -> list[dict]:
    if not cfg.enabled:
        return records
    raise NotImplementedError("curation stages land with issue #3")
