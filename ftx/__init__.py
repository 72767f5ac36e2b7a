"""ftx: domain-specific LLM fine-tuning as declarative, reproducible Hydra experiments."""

__version__ = "0.1.0"

from pathlib import Path as _Path

ASSETS = _Path(__file__).resolve().parent / "assets"
"""The package's shipped data (demo sources, seeds, golden set): ftx/assets/."""
