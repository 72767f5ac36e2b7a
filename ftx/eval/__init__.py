"""Evaluation: held-out loss and perplexity, generation metrics, forgetting, golden set, off-domain
probe and LLM-as-judge, base vs tuned (`suite.Evaluator`); `ftx eval RUN_DIR` (`rerun`)."""

from ftx.eval.config import EvalConfig

__all__ = ["EvalConfig"]
