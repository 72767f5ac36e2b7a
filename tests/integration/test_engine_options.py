"""Every engine option trains the tiny model end to end (in-process, a few seconds each): the quant,
lora, optimizer and train options and their useful combinations. ZeRO options run in subprocesses
(tests/integration/test_zero*.py) because DeepSpeed initialises process-wide state."""

from __future__ import annotations

import json

import pytest

from ftx.spec.run import build_spec
from ftx.spec.tree import compose
from tests.engine_helpers import write_data

CASES = {
    "int8": ["quant=int8"],
    "qdora_nf4_checkpointing": ["quant=nf4", "lora=dora", "train.gradient_checkpointing=true"],
    "rslora_adamw8bit": ["lora=rslora", "optimizer=adamw_8bit"],
    "full_paged8bit_dropout": ["lora=full", "optimizer=paged_adamw_8bit", "optimizer.dropout=0.1",
                               "optimizer.lr=3e-3"],
    "llrd_decay_linear_accum": ["optimizer.llrd=0.8", "optimizer.weight_decay=0.01", "optimizer.scheduler=linear",
                                "train.grad_accum=2"],
    "bf16_early_stopping": ["train.precision=bf16", "train.early_stopping_patience=1", "train.eval_steps=2",
                            "train.save_steps=2"],
    "train_demo": ["train=demo", "train.max_steps=6", "train.precision=fp32"],
    "train_low_memory": ["train=low_memory", "train.max_steps=6", "train.precision=fp32", "optimizer.lr=3e-3"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_option_trains_tiny_model(case, data, tmp_path):
    from ftx.pipeline import execute

    domain, general = data
    overrides = ["model=tiny_llama", "train=tiny", "curation=none", "data.format.max_length=128",
                 f"data.sources.http.path={domain}", f"data.sources.general.path={general}", *CASES[case]]
    spec = build_spec(compose(overrides))
    execute(spec, None, tmp_path, overrides)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["train"]["steps"] == 6 or (case == "bf16_early_stopping" and 2 <= m["train"]["steps"] <= 6)
    assert m["delta"]["val_loss"] < 0, f"{case}: validation loss did not fall ({m['delta']})"
    adapter = tmp_path / "adapter"
    if spec.lora.method == "full":
        assert (adapter / "model.safetensors").is_file()
        assert m["params"]["trainable"] == m["params"]["total"]
    else:
        cfg = json.loads((adapter / "adapter_config.json").read_text())
        assert cfg["use_dora"] == (spec.lora.method == "dora") and cfg["use_rslora"] == (spec.lora.method == "rslora")
        assert m["params"]["trainable"] < m["params"]["total"] / 2
    if case in EXPORT:
        check_export(tmp_path, spec)


EXPORT = ("qdora_nf4_checkpointing", "full_paged8bit_dropout")


def check_export(run_dir, spec):
    """`ftx export`: a plain transformers folder whose logits equal base + adapter (or the trained model)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftx.engine.model import load_model
    from ftx.record.export import export, locate

    out = run_dir / "merged"
    report = export(*locate(run_dir), out)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    x = torch.arange(1, 17).view(1, 16)
    if spec.lora.method == "full":
        expected = AutoModelForCausalLM.from_pretrained(str(run_dir / "adapter"), dtype=torch.float32)(input_ids=x).logits
        assert "max_abs_logit_diff" not in report
    else:
        from peft import PeftModel

        expected = PeftModel.from_pretrained(load_model(spec.model), str(run_dir / "adapter"))(input_ids=x).logits
        assert report["max_abs_logit_diff"] < 1e-4 and report["quant_during_training"] == "nf4"
    got = merged(input_ids=x).logits
    assert torch.allclose(got, expected, atol=1e-4)
    base = load_model(spec.model)(input_ids=x).logits
    assert not torch.allclose(got, base, atol=1e-4), "export returned the untrained base"
