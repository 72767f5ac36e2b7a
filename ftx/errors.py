"""User-facing errors: one line that names the key, file, line or field and what is valid.

Everything a user can get wrong raises a subclass of FtxError; the CLI prints it as a single
line and exits 2, never a traceback from deep inside a library.
"""


class FtxError(Exception):
    """Base of every error the CLI reports as one line."""

    kind = "error"

    def __init__(self, message: str):
        # Messages are single-line by contract; fold anything a library slipped in.
        super().__init__(" ".join(str(message).split()))


class ConfigError(FtxError):
    kind = "config error"


class DataError(FtxError):
    kind = "data error"


class ModelError(FtxError):
    kind = "model error"


class RunError(FtxError):
    kind = "run error"


def require(cond: bool, key: str, message: str) -> None:
    """Cross-field check helper: `require(r > 0, "lora.r", "must be > 0, got 0")`."""
    if not cond:
        raise ConfigError(f"{key}: {message}")
