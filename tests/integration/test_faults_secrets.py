"""Secrets: no environment variable that looks like a key or token — name or value — in anything a run
writes (run dir, .hydra/, logs, W&B offline files and config, stdout/stderr), and no secret taken as an override."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftx.secrets import check_no_secrets, redact, secret_values
from tests.helpers import ftx_env, write_jsonl

SECRETS = {"WANDB_API_KEY": "wb0123456789abcdefSECRET", "HF_TOKEN": "hf_SECRETtokenvalue42",
           "MY_SERVICE_SECRET": "s3cr3t-service-value", "DB_PASSWORD": "hunter2hunter2",
           "OPENAI_API_KEY": "sk-SECRETopenaikey"}


def _written(root: Path):
    for p in root.rglob("*"):
        if p.is_file():
            yield p, p.read_bytes().decode("utf-8", errors="replace")


@pytest.mark.slow
def test_a_run_writes_no_secret_names_or_values(ftx, tmp_path):
    dom = [{"id": f"d{i}", "prompt": f"Which port does service {i} use?", "response": f"Service {i} uses port {1000 + i}."}
           for i in range(40)]
    d = write_jsonl(tmp_path / "dom.jsonl", dom)
    env = ftx_env(**SECRETS)
    r = ftx("train", "experiment=tiny_smoke", "curation=none", f"data.sources.http.path={d}",
            f"data.sources.general.path={d}", "train.max_steps=2", "eval.base_vs_tuned=false",
            "tracking=wandb", "tracking.mode=offline", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    files = list(_written(ftx.cwd))
    names = {p.name for p, _ in files}
    assert {"manifest.json", "overrides.yaml", "train.log", "config.yaml"} <= names
    assert any(n.endswith(".wandb") for n in names) and "debug-core.log" in names, "W&B offline files and logs"
    for p, text in [*files, ("stdout", r.stdout), ("stderr", r.stderr)]:
        for name, value in SECRETS.items():
            assert value not in text, f"{name}'s value in {p}"
            assert name not in text, f"{name} in {p}"


def test_secret_overrides_are_refused_and_values_redacted(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    assert set(SECRETS.values()) <= set(secret_values())
    for bad in ("+wandb.api_key=abc123xyz", "tracking.token=abc123xyz", "++db.password=x1y2z3",
                f"tracking.entity={SECRETS['HF_TOKEN']}", f"name=run-{SECRETS['DB_PASSWORD']}"):
        with pytest.raises(Exception, match="looks like a secret"):
            check_no_secrets([bad])
    check_no_secrets(["curation.pii.api_key=false", "lora.r=8", "data.mix.unit=tokens", "model.tiny.num_key_value_heads=2"])
    assert redact(f"argv --x={SECRETS['OPENAI_API_KEY']}") == "argv --x=***"
