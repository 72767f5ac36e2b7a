"""Evaluation: held-out loss and perplexity, generation metrics, forgetting, golden set, off-domain
probe and LLM-as-judge, base vs tuned (`suite.Evaluator`). Its schema is ftx/spec/eval.py;
`ftx eval RUN_DIR` is ftx/cli/eval.py over ftx/record/rerun.py."""
