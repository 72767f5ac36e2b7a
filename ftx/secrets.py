"""The one redaction rule: which names hold secrets, which values are secrets, and how they are masked.

Every writer of files (atomic writes, the manifest's argv, W&B's config, tags and log lines) and the
override check use these functions, so a secret is recognised the same way everywhere:

- a *name* holds a secret when its last part ends in KEY / API_KEY / TOKEN (after `_` or at the
  start) or contains SECRET, PASSWORD / PASSWD or CREDENTIAL (case-insensitive): `WANDB_API_KEY`,
  `HF_TOKEN`, `db.password`, `hub_token`; not `pad_token_id`, `max_new_tokens` or `monkey`;
- a *value* is a secret when an environment variable with such a name holds it (6+ characters);
- both are masked as `***`.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Optional
from ftx.errors import ConfigError

MASK = "***"
MIN_LENGTH = 6
"""Shorter environment values are not treated as secrets (they would mask ordinary words)."""
SECRET_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN)$|SECRET|PASSW(OR)?D|CREDENTIAL", re.I)
FLAG_VALUES = ("", "true", "false", "null", "none")
"""Values that are settings, not secrets, even under a secret-looking key (`curation.pii.api_key=false`)."""


def is_secret_name(name: str) -> bool:
    """Does this environment variable or config key (dotted: its last part) name a secret?"""
    return bool(SECRET_NAME.search(str(name).rsplit(".", 1)[-1]))


def secret_values(environ: Optional[dict] = None) -> list[str]:
    """Values of environment variables whose names hold secrets, longest first (so a secret that
    contains another is masked whole)."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_LENGTH}, key=len, reverse=True)


def redact_text(text: str, secrets: Optional[Iterable[str]] = None) -> str:
    for v in secret_values() if secrets is None else secrets:
        text = text.replace(v, MASK)
    return text


def redact(obj: Any, secrets: Optional[list[str]] = None) -> Any:
    """Copy of `obj` (text, or nested dicts/lists) with string values under secret names and every
    secret value masked. Only string values can hold a secret: a boolean switch named `api_key` stays."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: MASK if isinstance(k, str) and is_secret_name(k) and isinstance(v, str) and v
                else redact(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj


def check_no_secrets(overrides: list[str]) -> None:
    """Overrides end up in run directories (.hydra/, manifest): refuse secret-looking keys and values."""
    values = secret_values()
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        flag = value.strip().lower() in FLAG_VALUES
        if (is_secret_name(key) and not flag) or (value and any(v in value for v in values)):
            raise ConfigError(f"{key}: looks like a secret; ftx never takes secrets as overrides because overrides "
                              "are written to the run directory (set WANDB_API_KEY / HF_TOKEN in the environment)")
