"""ftx: domain-specific LLM fine-tuning as declarative, reproducible Hydra experiments."""

__version__ = "0.1.0"
