"""ftx/secrets.py: the one redaction rule — token-shaped values refused in overrides and configs, masked in files."""

from __future__ import annotations

import json

import pytest

from ftx.errors import ConfigError
from ftx.runs import atomic_write_text
from ftx.secrets import check_config_values, check_no_secrets, find_token_value, redact, redact_text, token_kind

TOKENS = {  # fake, but shaped like the real thing
    "hf": "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567",
    "openai": "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv",
    "anthropic": "sk-ant-api03-" + "x1y2z3" * 6,
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "github": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "github_pat": "github_pat_11ABCDEFG0" + "abcdefghij" * 5,
    "slack": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "google": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6q",
    "gitlab": "glpat-" + "xYz123AbC456dEf789gH",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}
ORDINARY = ["tiny_llama", "smollm2_135m", "hf_quantizer", "risk-assessment-dataset-v2-final", "sk-learn-style-name",
            "pad_token_id", "asset:demo/http_qa.jsonl", "outputs/runs/2026-12-01/22-01-05", "lora.target_modules",
            "HuggingFaceTB/SmolLM2-135M-Instruct", "ghp_short", "AKIA_not_a_key", "eyJ", "0123456789abcdef" * 4,
            "checkpoint-1200", "q_proj,k_proj,v_proj,o_proj", "sha256:" + "a1" * 32]


@pytest.mark.parametrize("name", list(TOKENS))
def test_token_shaped_values_are_recognised_refused_with_the_key_named_and_masked(name):
    token = TOKENS[name]
    assert token_kind(f"see {token} here")
    with pytest.raises(ConfigError) as e:
        check_no_secrets(["lora.r=8", f"tracking.tags=[ok,{token}]"])
    assert str(e.value).startswith("tracking.tags: the value is shaped like a secret token (") and token not in str(e.value)
    assert redact_text(f"url=https://x:{token}@host/p") == "url=https://x:***@host/p"
    assert redact({"a": [f"x {token}"]}) == {"a": ["x ***"]}
    assert find_token_value({"data": {"sources": {"http": {"path": f"s3://{token}/x"}}}})[0] == "data.sources.http.path"


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_values_are_not_tokens(text):
    assert token_kind(text) is None and redact_text(text, secrets=[]) == text
    check_no_secrets([f"name={text}"])


def test_composed_config_with_a_token_is_refused_naming_the_list_index():
    with pytest.raises(ConfigError, match=r"^tracking\.tags\[1\]: the value is shaped like a secret token "
                                          r"\(Hugging Face token, hf_…\)"):
        check_config_values({"tracking": {"tags": ["fine", TOKENS["hf"]]}, "name": "x"})
    check_config_values({"tracking": {"tags": ["fine"]}, "n": 3, "none": None})


def test_build_spec_refuses_a_token_from_any_source_of_the_config():
    from omegaconf import OmegaConf

    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    cfg = compose([])
    OmegaConf.update(cfg, "data.sources.http.path", f"https://{TOKENS['github']}@example.com/a.jsonl")
    with pytest.raises(ConfigError, match=r"^data\.sources\.http\.path: the value is shaped like a secret token "
                                          r"\(GitHub token, ghp_…\)") as e:
        build_spec(cfg)
    assert TOKENS["github"] not in str(e.value)


def test_every_file_written_atomically_has_token_shaped_values_masked(tmp_path):
    p = tmp_path / "notes.json"
    atomic_write_text(p, json.dumps({"note": f"token {TOKENS['slack']} and {TOKENS['jwt']}"}))
    text = p.read_text()
    assert TOKENS["slack"] not in text and TOKENS["jwt"] not in text and text.count("***") == 2


def test_the_pii_stage_masks_the_same_shapes():
    from ftx.data.curate.pii import mask
    from ftx.spec.curation import PiiConfig

    for token in TOKENS.values():
        out, why = mask(f"my key is {token} ok", PiiConfig())
        assert token not in out and "<API_KEY>" in out and why == {"pii_api_key"}, token


def test_a_config_holding_a_secret_environment_value_is_refused(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "s3cr3tValue!x")
    with pytest.raises(ConfigError, match=r"^model\.name_or_path: the value is shaped like a secret token \(the value "
                                          r"of a secret environment variable\)") as e:
        check_config_values({"model": {"name_or_path": "/data/s3cr3tValue!x/m"}})
    assert "s3cr3tValue" not in str(e.value)
