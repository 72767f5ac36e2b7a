"""The one redaction rule: which names hold secrets, which values are secrets, and how they are masked.

Every writer of files (atomic writes, the manifest's argv, W&B's config, tags and log lines) and the
override check use these functions, so a secret is recognised the same way everywhere:

- a *name* holds a secret when its last part ends in KEY / API_KEY / TOKEN (after `_` or at the
  start) or contains SECRET, PASSWORD / PASSWD or CREDENTIAL (case-insensitive): `WANDB_API_KEY`,
  `HF_TOKEN`, `db.password`, `hub_token`; not `pad_token_id`, `max_new_tokens` or `monkey`;
- a *value* is a secret when an environment variable with such a name holds it (6+ characters),
  or when it is shaped like a well-known token (`TOKENS`: `hf_…`, `sk-…`, `ghp_…`/`github_pat_…`,
  `xox?-…`, `AKIA…`, `AIza…`, `glpat-…`, `npm_…`, `pypi-…`, JWTs `eyJ….eyJ….…`) wherever it appears;
- both are masked as `***`; a token-shaped value in an override or a composed config is refused
  with its key named (`check_no_secrets`, `find_token_value`, used by `ftx.spec.run.build_spec`),
  and the curation `pii` stage masks the same shapes in data.
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
TOKENS = {
    "Hugging Face token, hf_…": r"hf_[A-Za-z0-9]{30,}",
    "OpenAI/Anthropic/Stripe-style key, sk-…": r"(?:sk|pk|rk)[-_](?:live|test|proj|ant|svcacct)?[-_]?"
                                                r"(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{16,}",
    "GitHub token, ghp_…": r"gh[pousr]_[A-Za-z0-9]{30,}",
    "GitHub token, github_pat_…": r"github_pat_[A-Za-z0-9_]{30,}",
    "Slack token, xox?-…": r"xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}",
    "AWS access key id, AKIA…": r"(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Za-z])",
    "Google API key, AIza…": r"AIza[0-9A-Za-z_-]{35}",
    "GitLab token, glpat-…": r"glpat-[A-Za-z0-9_-]{20,}",
    "npm token, npm_…": r"npm_[A-Za-z0-9]{36}",
    "PyPI token, pypi-…": r"pypi-AgE[A-Za-z0-9_-]{50,}",
    "JSON Web Token, eyJ….eyJ….…": r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
}
"""Well-known token shapes, by what they are: a value containing one is a secret wherever it appears."""
TOKEN = re.compile("(?<![A-Za-z0-9])(?:" + "|".join(f"(?P<t{i}>{p})" for i, p in enumerate(TOKENS.values())) + ")")
_TOKEN_KINDS = list(TOKENS)
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


def token_kind(text: str) -> Optional[str]:
    """What a token-shaped part of `text` is ("Hugging Face token, hf_…"), or None. Never the value."""
    m = TOKEN.search(text) if isinstance(text, str) else None
    return _TOKEN_KINDS[int(m.lastgroup[1:])] if m else None


def find_token_value(obj: Any, prefix: str = "") -> Optional[tuple[str, str]]:
    """The first (dotted key, kind) of a token-shaped string in nested dicts/lists, or None."""
    if isinstance(obj, dict):
        items = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{prefix}[{i}]", v) for i, v in enumerate(obj))
    else:
        kind = token_kind(obj) if isinstance(obj, str) else None
        return (prefix, kind) if kind else None
    for key, value in items:
        found = find_token_value(value, key)
        if found:
            return found
    return None


def _find_env_value(obj: Any, values: list[str], prefix: str = "") -> Optional[tuple[str, str]]:
    if isinstance(obj, dict):
        items = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{prefix}[{i}]", v) for i, v in enumerate(obj))
    else:
        hit = isinstance(obj, str) and any(v in obj for v in values)
        return (prefix, "the value of a secret environment variable") if hit else None
    for key, value in items:
        found = _find_env_value(value, values, key)
        if found:
            return found
    return None


def redact_text(text: str, secrets: Optional[Iterable[str]] = None) -> str:
    for v in secret_values() if secrets is None else secrets:
        text = text.replace(v, MASK)
    return TOKEN.sub(MASK, text) if ("_" in text or "-" in text or "eyJ" in text or "AKIA" in text
                                     or "ASIA" in text or "AIza" in text) else text


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


SECRET_ADVICE = "(set WANDB_API_KEY / HF_TOKEN in the environment)"


def check_no_secrets(overrides: list[str]) -> None:
    """Overrides end up in run directories (.hydra/, manifest): refuse secret-looking keys and values,
    the value never repeated."""
    values = secret_values()
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        flag = value.strip().lower() in FLAG_VALUES
        if (is_secret_name(key) and not flag) or (value and any(v in value for v in values)):
            raise ConfigError(f"{key}: looks like a secret; ftx never takes secrets as overrides because overrides "
                              f"are written to the run directory {SECRET_ADVICE}")
        kind = token_kind(value)
        if kind:
            raise ConfigError(f"{key}: the value is shaped like a secret token ({kind}); ftx never takes secrets as overrides because "
                              f"overrides are written to the run directory {SECRET_ADVICE}")


def check_config_values(container: Any) -> None:
    """A composed config (plain data) holds no token-shaped value: config files are copied into run dirs."""
    found = find_token_value(container)
    values = secret_values()
    if not found and values:
        found = _find_env_value(container, values)
    if found:
        raise ConfigError(f"{found[0]}: the value is shaped like a secret token ({found[1]}); ftx refuses secrets in configs because "
                          f"the config is written to the run directory {SECRET_ADVICE}")
