"""Packed rows through ftx.engine.attention: each example's own SDPA gives what transformers' block-masked sdpa
gives (outputs and LoRA gradients), every other call falls back to sdpa unchanged, and ftx's SFT trainer uses
it only while it trains packed rows under sdpa."""

from __future__ import annotations

import pytest
import torch


def _rows(n_rows: int = 3, length: int = 256):
    """Real demo examples, tokenised and packed as the data path packs them; collated with the pad tail."""
    from ftx.data import format as fmt
    from ftx.engine.model import load_tokenizer
    from ftx.runs import read_jsonl
    from ftx.spec.data import FormatConfig
    from tests.helpers import ROOT, TINY

    tok = load_tokenizer(TINY)
    recs = [{"id": str(i), "source": "http", "role": "domain", "synthetic": False, "weight": None, "text": None,
             "messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]}
            for i, (_, r) in enumerate(read_jsonl(ROOT / "ftx" / "assets" / "demo" / "http_qa.jsonl"))][:40]
    exs = [e for r in recs for e in [fmt.encode(r, tok, FormatConfig(max_length=length))[0]] if e is not None]
    packed, _ = fmt.pack(exs, length)
    collate = fmt.Collator(tok.pad_token_id)
    return tok, collate(packed[:n_rows]), collate(exs[:4]), packed, exs


def _model(impl: str = "sdpa"):
    from ftx.engine.lora import wrap
    from ftx.engine.model import load_model
    from ftx.spec.lora import LoraConfig
    from tests.helpers import TINY

    torch.manual_seed(0)
    model = wrap(load_model(TINY), LoraConfig(r=4, dropout=0.0))
    model.get_base_model().set_attn_implementation(impl)
    for name, p in model.named_parameters():  # LoRA B starts at 0: give the adapter a non-zero output
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    return model


def _forward(model, batch, packed_attention: bool, backward: bool = False):
    """Logits of the packed rows through the per-example path or the block mask; with backward, the loss's
    backward runs before the model is switched back (as in the trainer: a checkpointed layer recomputes then)."""
    from ftx.engine import attention

    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    if packed_attention:
        model.get_base_model().set_attn_implementation(attention.register())
        inputs.update(attention.bounds(batch["position_ids"]))
    try:
        logits = model(**inputs).logits
        if backward:
            logits.float().pow(2).mean().backward()
    finally:
        model.get_base_model().set_attn_implementation("sdpa")
    return logits.detach()


def test_bounds_are_the_examples_offsets_in_the_flattened_batch_and_nothing_for_unpacked_rows():
    from ftx.engine.attention import bounds

    pos = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]])
    got = bounds(pos)
    assert got["cu_seq_lens_q"].tolist() == [0, 3, 5, 6, 10, 12]
    assert got["cu_seq_lens_k"] is got["cu_seq_lens_q"] and got["cu_seq_lens_q"].dtype == torch.int32
    assert got["max_length_q"] == got["max_length_k"] == 4
    assert bounds(torch.tensor([[1, 2, 3, 0, 1, 2]])) == {}  # a row that does not start an example


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient_checkpointing"])
def test_per_example_sdpa_equals_the_block_masked_sdpa_in_outputs_and_lora_gradients(checkpointing):
    """Under gradient checkpointing the bounds must reach the layers' recomputation too."""
    tok, packed, *_ = _rows()
    assert (packed["position_ids"] == 0).sum() > 2 * packed["input_ids"].size(0)  # several examples per row
    assert (packed["input_ids"] == 0).any() and (packed["labels"] != -100).any()  # a pad tail, answers
    model = _model()
    if checkpointing:
        model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    grads = {}
    out = {}
    for side in (False, True):
        model.zero_grad(set_to_none=True)
        out[side] = _forward(model, packed, side, backward=True)
        grads[side] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert torch.allclose(out[True], out[False], atol=1e-5), (out[True] - out[False]).abs().max()
    assert grads[True].keys() == grads[False].keys() and grads[True]
    for name in grads[True]:
        assert torch.allclose(grads[True][name], grads[False][name], atol=1e-6, rtol=1e-4), name


def test_a_row_attends_within_its_examples_only():
    """Changing one example's tokens changes no other example's logits (the block-diagonal mask's job)."""
    _, packed, *_ = _rows(n_rows=1)
    model = _model().eval()
    starts = (packed["position_ids"][0] == 0).nonzero().flatten().tolist()
    first_end = starts[1]
    edited = dict(packed, input_ids=packed["input_ids"].clone())
    edited["input_ids"][0, :first_end] = (edited["input_ids"][0, :first_end] + 7) % 1000
    with torch.no_grad():
        a, b = _forward(model, packed, True), _forward(model, edited, True)
    assert not torch.allclose(a[0, :first_end], b[0, :first_end])
    assert torch.allclose(a[0, first_end:], b[0, first_end:], atol=1e-5)


def test_16_bit_examples_are_computed_in_fp32_on_the_cpu_and_returned_in_their_dtype():
    """bf16 query/key/value (a bf16 run's attention, under autocast as the Trainer runs it): the output is the
    fp32 per-example attention of the same inputs, cast to bf16 — exactly — and the gradients reach the bf16
    inputs in bf16."""
    import torch.nn.functional as F

    from ftx.engine.attention import bounds, packed_sdpa

    pos = torch.tensor([list(range(100)) + list(range(60)) + list(range(96)), list(range(256))])
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, h, 256, 16, dtype=torch.bfloat16, requires_grad=True) for h in (6, 2, 2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = packed_sdpa(module, q, k, v, None, **bounds(pos))
    assert out.dtype == torch.bfloat16 and out.shape == (2, 256, 6, 16)
    ref = []
    for row, spans in ((0, ((0, 100), (100, 160), (160, 256))), (1, ((0, 256),))):
        ref.append(torch.cat([F.scaled_dot_product_attention(
            q[row:row + 1, :, a:b].float(), k[row:row + 1, :, a:b].float(), v[row:row + 1, :, a:b].float(),
            is_causal=True, enable_gqa=True) for a, b in spans], dim=2))
    ref = torch.cat(ref).transpose(1, 2).to(torch.bfloat16)
    assert torch.equal(out, ref)
    out.float().sum().backward()
    assert q.grad.dtype == k.grad.dtype == torch.bfloat16 and q.grad.abs().sum() > 0


def test_everything_else_falls_back_to_sdpa_padded_batches_and_generation():
    from ftx.engine import attention

    tok, _, padded, *_ = _rows()
    model = _model().eval()
    with torch.no_grad():
        ref = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        ids = padded["input_ids"][:1, :12]
        gen_ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        model.get_base_model().set_attn_implementation(attention.register())
        got = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                             do_sample=False, pad_token_id=tok.pad_token_id)
    keep = padded["attention_mask"].bool()
    assert torch.allclose(got[keep], ref[keep], atol=1e-5)
    assert torch.equal(gen, gen_ref)


def _trainer(tmp_path, rows, impl="sdpa", **extra):
    from transformers import TrainerCallback, TrainingArguments

    from ftx.data.format import Collator
    from ftx.engine.trainer import make_trainer_class
    from tests.helpers import TINY
    from ftx.engine.model import load_tokenizer

    model = _model(impl)
    seen = []

    class Watch(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            seen.append(model.get_base_model().config._attn_implementation)

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, use_cpu=True, max_steps=2,
                             learning_rate=1e-3, report_to=[], remove_unused_columns=False, seed=0,
                             disable_tqdm=True, save_strategy="no", logging_strategy="no", **extra)
    trainer = make_trainer_class()(model=model, args=args, train_dataset=rows,
                                   data_collator=Collator(load_tokenizer(TINY).pad_token_id), callbacks=[Watch()])
    return trainer, model, seen


def test_the_sft_trainer_switches_to_it_for_packed_training_and_back(tmp_path, monkeypatch):
    from ftx.engine import attention

    calls = []
    real = attention.packed_sdpa

    def spy(*a, **kw):
        calls.append(kw.get("cu_seq_lens_q") is not None)
        return real(*a, **kw)

    monkeypatch.setattr(attention, "packed_sdpa", spy)
    *_, rows, examples = _rows()
    rows = rows[:4]
    trainer, model, seen = _trainer(tmp_path / "packed", rows)
    trainer.train()
    assert seen and set(seen) == {attention.NAME}
    assert calls and all(calls)  # every attention call of the packed steps ran per example
    assert model.get_base_model().config._attn_implementation == "sdpa"

    calls.clear()  # a checkpointed layer recomputes inside train(), still through the per-example path
    trainer, model, seen = _trainer(tmp_path / "checkpointed", rows, gradient_checkpointing=True,
                                    gradient_checkpointing_kwargs={"use_reentrant": False})
    trainer.train()
    assert calls and all(calls) and model.get_base_model().config._attn_implementation == "sdpa"

    calls.clear()
    trainer, model, seen = _trainer(tmp_path / "unpacked", examples[:4])
    trainer.train()
    assert calls and not any(calls)  # padded rows: the sdpa fallback, with its mask
    trainer, model, seen = _trainer(tmp_path / "eager", rows, impl="eager")
    trainer.train()
    assert set(seen) == {"eager"}


def test_a_sliding_window_no_example_outgrows_keeps_the_per_example_path_a_shorter_one_falls_back(monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa_mod

    from ftx.engine.attention import bounds, packed_sdpa

    fell_back = []
    real = sdpa_mod.sdpa_attention_forward
    monkeypatch.setattr(sdpa_mod, "sdpa_attention_forward",
                        lambda *a, **kw: fell_back.append(True) or real(*a, **kw))
    pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0]])
    q, k, v = torch.randn(1, 4, 8, 16), torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True
    out, _ = packed_sdpa(module, q, k, v, None, sliding_window=4, **bounds(pos))  # longest example: 4
    assert not fell_back and out.shape == (1, 8, 4, 16)
    packed_sdpa(module, q, k, v, None, sliding_window=3, **bounds(pos))
    assert fell_back == [True]  # the window cuts into an example: transformers' masked sdpa


def test_models_it_cannot_serve_keep_their_attention(monkeypatch):
    from ftx.engine import attention

    model = _model()
    base = model.get_base_model()
    with attention.per_example(model, allowed=False) as on:
        assert not on and base.config._attn_implementation == "sdpa"
    eager = _model("eager")
    with attention.per_example(eager) as on:
        assert not on and eager.get_base_model().config._attn_implementation == "eager"

    def refuse(*a, **kw):
        raise ValueError("this model does not dispatch through AttentionInterface")

    monkeypatch.setattr(type(base), "set_attn_implementation", refuse)
    with attention.per_example(model) as on:
        assert not on and base.config._attn_implementation == "sdpa"
    monkeypatch.undo()

    class NoKwargs(type(base)):  # a forward that would not pass the bounds on to the layers
        def forward(self, input_ids=None, position_ids=None):
            return super().forward(input_ids=input_ids, position_ids=position_ids)

    monkeypatch.setattr(base, "__class__", NoKwargs)
    with attention.per_example(model) as on:
        assert not on
    monkeypatch.undo()
    with attention.per_example(model) as on:
        assert on and base.config._attn_implementation == attention.NAME
    assert base.config._attn_implementation == "sdpa"
