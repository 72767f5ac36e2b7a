"""Continued pre-training: raw-text encoding with loss on every token, the objective → data-plan settings,
and a second stage that starts from the first stage's adapter."""

from __future__ import annotations

import pytest
import torch

from ftx.data import format as fmt
from ftx.engine.build import load_init_adapter
from ftx.engine.model import load_model, load_tokenizer
from ftx.errors import ConfigError, ModelError
from ftx.spec.data import FormatConfig
from tests.helpers import TINY


def wrapped(r=4, seed=0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(load_model(TINY), LoraConfig(r=r, target_modules=["q_proj", "v_proj"]))


def test_raw_text_format_puts_loss_on_every_token_of_a_chat_record():
    tok = load_tokenizer(TINY)
    rec = {"id": "a", "weight": 1.0, "text": None,
           "messages": [{"role": "user", "content": "What is an ETag?"}, {"role": "assistant", "content": "A validator."}]}
    sft, _ = fmt.encode(rec, tok, FormatConfig())
    cpt, _ = fmt.encode(rec, tok, FormatConfig(raw_text=True))
    assert cpt["n_response"] == len(cpt["input_ids"])  # no prompt masking
    assert sum(1 for w in cpt["loss_weight"] if w) == len(cpt["input_ids"]) - 1  # all but the first token
    assert sft["n_response"] < len(sft["input_ids"])
    assert tok.decode(cpt["input_ids"]).startswith("What is an ETag?\nA validator.")


def test_init_adapter_loads_the_first_stage_weights(tmp_path):
    first = wrapped(seed=1)
    with torch.no_grad():
        for n, p in first.named_parameters():
            if "lora_B" in n:
                p.normal_()
    first.save_pretrained(str(tmp_path / "run1" / "adapter"))
    second = wrapped(seed=2)
    assert load_init_adapter(second, str(tmp_path / "run1")) > 0  # a run dir is accepted
    a = {n: p for n, p in first.named_parameters() if "lora_" in n}
    b = {n: p for n, p in second.named_parameters() if "lora_" in n}
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(p.requires_grad for p in b.values())  # still trainable: stage two continues training it
    with pytest.raises(ModelError, match="shapes do not fit"):
        load_init_adapter(wrapped(r=8), str(tmp_path / "run1" / "adapter"))
    with pytest.raises(ConfigError, match="no adapter_model.safetensors"):
        load_init_adapter(second, str(tmp_path))


def test_objective_cpt_sets_the_data_plan_and_rejects_conflicts(default_spec):
    from ftx.spec.run import build_spec
    from ftx.spec.tree import compose

    spec = build_spec(compose(["train.objective=cpt", "train.cpt_general_share=0.1"]))
    f = spec.data.format
    assert f.raw_text and f.packing and spec.data.mix.domain_ratio == pytest.approx(0.9)
    assert not default_spec.data.format.raw_text  # sft leaves the plan alone
    with pytest.raises(ConfigError, match="no data source has role=general"):
        build_spec(compose(["train.objective=cpt", "~data.sources.general"]))
    with pytest.raises(ConfigError, match="data.mix.domain_ratio"):
        build_spec(compose(["train.objective=cpt", "data.mix.domain_ratio=0.5"]))
    with pytest.raises(ConfigError, match="train.objective"):
        build_spec(compose(["train.objective=pretrain"]))
