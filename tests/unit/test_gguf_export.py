"""GGUF export pieces that need no conversion: the Ollama template derived from (and checked against) the
tokenizer's chat template, the Modelfile, the converter's architecture map, flag combinations."""

from __future__ import annotations

import pytest

from ftx.errors import RunError
from ftx.record import gguf


@pytest.fixture
def tok():
    import copy

    from ftx.engine.model import load_tokenizer
    from tests.helpers import TINY

    return copy.deepcopy(load_tokenizer(TINY))  # the tests set its chat template


def go_render(go: str, system: str, messages: list[dict]) -> str:
    """What Ollama's Go template gives for these messages (the two constructs the FAMILIES templates use)."""
    import re

    head, _, rest = go.partition("{{ end }}")
    sys_part = re.search(r"\{\{- if \.System \}\}(.*)", head, re.S).group(1)
    loop, _, tail = rest.removeprefix("{{- range .Messages }}").partition("{{ end }}")
    out = sys_part.replace("{{ .System }}", system) if system else ""
    for m in messages:
        out += loop.replace("{{ .Role }}", m["role"]).replace("{{ .Content }}", m["content"])
    return out + tail


@pytest.mark.parametrize("family", ["chatml", "llama3"])
def test_ollama_template_renders_what_the_chat_template_renders(tok, family):
    from ftx.data.format import TEMPLATES

    tok.chat_template = TEMPLATES[family][0]
    go, how, default = gguf.ollama_template(tok)
    assert go is not None and how.startswith(family) and "checked" in how and default is None
    msgs = [{"role": "user", "content": "Which port?"}, {"role": "assistant", "content": "22."},
            {"role": "user", "content": "And HTTPS?"}]
    expected = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, *msgs],
                                       add_generation_prompt=True, tokenize=False)
    bos = tok.bos_token or ""
    assert go_render(go, "Be brief.", msgs) in (expected, expected.removeprefix(bos))


def test_a_template_that_renders_differently_gets_no_template(tok):
    from ftx.data.format import TEMPLATES

    tok.chat_template = TEMPLATES["chatml"][0].replace("<|im_start|>", "<|im_start|> ")
    go, how, default = gguf.ollama_template(tok)
    assert go is None and "renders differently" in how and default is None
    text, _ = gguf.modelfile("model-f16.gguf", tok, ["<|im_end|>"], None, 0.0)
    assert "TEMPLATE" not in text.replace("# no TEMPLATE", "") and "FROM ./model-f16.gguf" in text


def test_modelfile_carries_system_prompt_stops_and_greedy_temperature(tok):
    from ftx.data.format import TEMPLATES

    tok.chat_template = TEMPLATES["chatml"][0]
    text, _ = gguf.modelfile("model-q8_0.gguf", tok, ["<|im_end|>", "<|endoftext|>"], "You answer HTTP questions.", 0.0)
    lines = text.splitlines()
    assert lines[1] == "FROM ./model-q8_0.gguf"
    assert 'SYSTEM """You answer HTTP questions."""' in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines and 'PARAMETER stop "<|endoftext|>"' in lines
    assert "PARAMETER temperature 0" in lines


def test_the_converter_maps_llama_and_names_what_it_cannot(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"architectures": ["LlamaForCausalLM"]}')
    assert gguf.check_architecture(cfg) == "LlamaForCausalLM"
    cfg.write_text('{"architectures": ["FrobnicatorForCausalLM"]}')
    with pytest.raises(RunError, match="architecture FrobnicatorForCausalLM cannot be mapped"):
        gguf.check_architecture(cfg)


@pytest.mark.parametrize("args,message", [
    (["--format", "gguf", "--dtype", "bf16"], "--dtype applies to --format safetensors"),
    (["--quant", "q8_0"], "--quant applies to --format gguf"),
    (["--format", "gguf", "--quant", "q4_0"], "argument --quant: invalid choice: 'q4_0'"),
])
def test_export_flag_mistakes_are_one_line(tmp_path, capsys, args, message):
    from tests.helpers import run_main

    code, err = run_main(["export", str(tmp_path), *args], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_template_default_system_prompt_becomes_the_modelfile_system(tok):
    """SmolLM2's template adds "You are a helpful AI assistant named SmolLM…" when no system turn is given."""
    from ftx.data.format import TEMPLATES

    tok.chat_template = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe a helper.<|im_end|>\\n' }}"
                         "{% endif %}" + TEMPLATES["chatml"][0])
    go, how, default = gguf.ollama_template(tok)
    assert go is not None and default == "Be a helper." and "default system prompt" in how
    text, _ = gguf.modelfile("m.gguf", tok, [], None, 0.0)
    assert 'SYSTEM """Be a helper."""' in text
    text, _ = gguf.modelfile("m.gguf", tok, [], "The run's own.", 0.0)
    assert 'SYSTEM """The run\'s own."""' in text
