"""The `eval` group (kept at this path for ftx/spec.py and older imports); the code is in ftx/eval/."""

from ftx.eval.config import EvalConfig
from ftx.eval.heldout import autocast, heldout_loss

__all__ = ["EvalConfig", "autocast", "heldout_loss"]
