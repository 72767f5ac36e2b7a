"""Memory: the chunked loss equals the full loss (values and gradients), evaluation keeps no logits, the
activation plan (gradient_checkpointing=auto), the fit check, and the per-stage meter. In-process, seconds."""

from __future__ import annotations

import pytest
import torch

from ftx import memory
from ftx.errors import ConfigError
from ftx.spec.run import build_spec
from ftx.spec.tree import compose


def _lora_model():
    from ftx.engine.lora import wrap
    from ftx.engine.model import load_model
    from ftx.spec.lora import LoraConfig
    from ftx.spec.model import ModelConfig

    torch.manual_seed(0)
    model = wrap(load_model(ModelConfig(name="tiny-llama", source="tiny", dtype="fp32")), LoraConfig(r=2, dropout=0.0))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)  # B = 0 would give A no gradient to compare
    return model


def _trainer(model, tmp_path, chunk: int, rows=()):
    from transformers import TrainingArguments

    from ftx.data.format import Collator
    from ftx.engine.trainer import make_trainer_class

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_eval_batch_size=2,
                             remove_unused_columns=False, prediction_loss_only=True, disable_tqdm=True)
    trainer = make_trainer_class()(model=model, args=args, eval_dataset=list(rows) or None,
                                   data_collator=Collator(0))
    trainer.loss_chunk = chunk
    return trainer


def _batch(vocab: int) -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (3, 17), generator=g)
    labels = ids.clone()
    labels[:, :6] = -100  # prompt
    labels[2, 12:] = -100  # padding of a shorter row
    weight = torch.where(labels != -100, 1.0, 0.0)
    weight[:, :6] = 0.25  # prompt_loss_weight
    weight[1] *= 2.0  # a per-example (source) weight
    weight[2, 12:] = 0.0
    return {"input_ids": ids, "attention_mask": (labels[:, :] > -1000).long(), "labels": labels, "loss_weight": weight}


@pytest.mark.parametrize("train", [True, False])
def test_chunked_loss_equals_the_full_loss_in_value_and_gradient(tmp_path, train):
    results = {}
    for chunk in (0, 5):  # 0: the full-logits loss; 5 divides none of the row counts
        model = _lora_model()
        model.train(train)
        trainer = _trainer(model, tmp_path, chunk)
        head = model.get_output_embeddings()
        widest = []
        hook = head.register_forward_hook(lambda m, i, o: widest.append(o.shape[:-1].numel()))
        loss = trainer.compute_loss(model, _batch(model.config.vocab_size))
        loss.backward()
        hook.remove()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[chunk] = (loss.detach(), grads, max(widest))
    (full, g_full, w_full), (chunked, g_chunk, w_chunk) = results[0], results[5]
    assert w_full == 3 * 17 and w_chunk <= 5  # the full loss projects every position; chunks never more than 5
    assert torch.allclose(full, chunked, rtol=1e-5, atol=1e-6), (full, chunked)
    assert g_full.keys() == g_chunk.keys() and len(g_full) > 4
    for k in g_full:
        assert g_full[k].abs().sum() > 0
        assert torch.allclose(g_full[k], g_chunk[k], rtol=1e-4, atol=1e-6), k  # 2 threads: summation order varies


def test_only_chunks_before_the_last_are_recomputed_in_the_backward_pass(tmp_path):
    """The backward pass consumes the last chunk's logits first, so it is kept instead of recomputed: a step
    with at most `chunk` answer positions projects them once (no extra head matmul against the full loss), and
    n chunks cost n + (n - 1) projections, never more than `chunk` positions at a time."""
    calls = {}
    for chunk in (5, 1000):
        model = _lora_model()
        model.train(True)
        trainer = _trainer(model, tmp_path, chunk)
        sizes = []
        hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: sizes.append(o.shape[:-1].numel()))
        trainer.compute_loss(model, _batch(model.config.vocab_size)).backward()
        hook.remove()
        assert sizes[0] == 3  # the model's own forward: logits_to_keep=1, the last position of each row
        calls[chunk] = sizes[1:]
    kept = calls[1000][0]
    assert calls[1000] == [kept] and kept > 10  # one chunk: projected once, in the forward pass only
    n = -(-kept // 5)
    assert len(calls[5]) == 2 * n - 1 and max(calls[5]) <= 5
    assert sum(calls[5]) == kept + 5 * (n - 1)  # every chunk once, and the n - 1 full ones again


def test_chunked_loss_without_answer_tokens_is_zero_with_a_graph(tmp_path):
    model = _lora_model().train()
    batch = _batch(model.config.vocab_size)
    batch["loss_weight"].zero_()
    loss = _trainer(model, tmp_path, 4).compute_loss(model, batch)
    loss.backward()
    assert loss.item() == 0.0


def test_evaluation_during_training_keeps_no_logits(tmp_path, monkeypatch):
    """Every tensor the evaluation loop accumulates is recorded: only the per-batch losses may be there, and no
    forward projects more than one chunk of positions onto the vocabulary."""
    import transformers.trainer as hf_trainer

    kept: list[tuple] = []
    original = hf_trainer.EvalLoopContainer.add

    def add(self, tensors):
        kept.append(tuple(getattr(tensors, "shape", ())))
        return original(self, tensors)

    monkeypatch.setattr(hf_trainer.EvalLoopContainer, "add", add)
    model = _lora_model()
    b = _batch(model.config.vocab_size)
    rows = [{k: b[k][i].tolist() for k in ("input_ids", "labels", "loss_weight")} for i in range(3)]
    trainer = _trainer(model, tmp_path, 4, rows)
    widest = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: widest.append(o.shape[:-1].numel()))
    out = trainer.evaluate()
    assert out["eval_loss"] > 0
    assert kept and all(len(s) <= 1 for s in kept), kept  # losses (scalars or one per batch), never B×S×V logits
    assert max(widest) <= 4


def test_training_arguments_ask_for_the_loss_only_and_the_planned_checkpointing(tmp_path):
    from ftx.engine.trainer import training_arguments

    spec = build_spec(compose([]))
    assert spec.train.gradient_checkpointing == "auto"
    a = training_arguments(spec, tmp_path, bf16=False)
    assert a.prediction_loss_only and not a.activation_checkpointing  # auto unplanned: off
    on = training_arguments(spec, tmp_path, bf16=False, checkpointing=True)
    assert on.activation_checkpointing and on.activation_checkpointing_kwargs == {"use_reentrant": False}


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), ("auto", "auto"), ("True", True)])
def test_gradient_checkpointing_takes_auto_true_false(value, expected):
    assert build_spec(compose([f"train.gradient_checkpointing={value}"])).train.gradient_checkpointing == expected


def test_gradient_checkpointing_refuses_other_values_in_one_line():
    with pytest.raises(ConfigError, match=r"train.gradient_checkpointing: must be auto, true or false; got 'sometimes'"):
        build_spec(compose(["train.gradient_checkpointing=sometimes"]))


class _Smol:  # SmolLM2-135M's shape
    num_hidden_layers, hidden_size, intermediate_size, vocab_size = 30, 576, 1536, 49152


def test_plan_scales_with_batch_and_length_and_checkpointing_saves_most():
    small = memory.estimate(_Smol, 4, 256, 2_442_240, 512)
    big = memory.estimate(_Smol, 4, 1024, 2_442_240, 512)
    assert big.activations == 4 * small.activations
    assert big.checkpointed < big.activations / 5
    assert big.logits == small.logits  # one chunk either way
    assert memory.estimate(_Smol, 4, 1024, 0, 0).logits == 4096 * 49152 * 16  # full logits: the whole batch


def test_auto_turns_checkpointing_on_only_when_activations_exceed_the_share():
    plan = memory.estimate(_Smol, 4, 1024, 0, 512)
    on, why = memory.decide("auto", plan, free=2 * plan.activations)
    assert on and why.startswith("auto: planned activations") and "> 20% of" in why
    off, why = memory.decide("auto", plan, free=10 * plan.activations)
    assert not off and "<= 20% of" in why
    assert memory.decide(False, plan, free=1) == (False, "train.gradient_checkpointing")
    assert memory.decide(True, plan, free=10 ** 15) == (True, "train.gradient_checkpointing")


def test_fit_check_names_the_keys_to_lower():
    plan = memory.estimate(_Smol, 4, 1024, 0, 512)
    memory.check_fit(plan, True, plan.need(True) * 2, 4, 1024, 1, 1024)  # fits: nothing raised
    with pytest.raises(ConfigError) as e:
        memory.check_fit(plan, False, plan.need(True) * 2, 4, 1024, 1, 1024)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("train.batch_size: a step of 4×1024 tokens needs ~")
    assert "set train.gradient_checkpointing=true" in msg  # it would fit with checkpointing
    assert "lower train.batch_size=4 (raising train.grad_accum=1 keeps" in msg and "data.format.max_length=1024" in msg
    with pytest.raises(ConfigError) as e:
        memory.check_fit(plan, True, plan.need(True) // 2, 4, 1024, 1, 1024)
    assert "gradient_checkpointing" not in str(e.value)  # already on: only the batch keys help


def test_meter_attributes_a_peak_to_its_stage():
    meter = memory.Meter(interval=0.01).start()
    try:
        with meter.stage("small"):
            pass
        with meter.stage("big"):
            block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB, touched
            meter.sample()
            del block
        with meter.stage("small"):
            pass
    finally:
        meter.stop()
    s = meter.summary()
    assert s["big"]["rss_mb"] >= s["small"]["rss_mb"] + 50
    assert s["peak"] == {"stage": "big", "rss_mb": s["big"]["rss_mb"]}
    assert "cuda_mb" not in s["big"]  # no GPU here


def test_meter_window_is_the_peak_since_the_last_read():
    meter = memory.Meter(interval=60)  # no thread: samples only when asked
    block = torch.ones(64 * 1024 * 1024 // 4)
    first = meter.take_window()
    del block
    second = meter.take_window()
    assert first >= second + 50  # the second window no longer holds the freed block


def test_release_drops_the_gradients_before_generation():
    model = _lora_model().train()
    x = torch.arange(24).view(2, 12) % model.config.vocab_size
    model(input_ids=x, labels=x).loss.backward()
    assert any(p.grad is not None for p in model.parameters())
    memory.release(model)
    assert all(p.grad is None for p in model.parameters())


def test_models_that_rescale_their_logits_keep_the_full_loss():
    from ftx.engine.loss import loss_head

    model = _lora_model()
    assert loss_head(model, 512) is model.get_output_embeddings()
    assert loss_head(model, 0) is None  # train.loss_chunk=0
    model.config.final_logit_softcapping = 30.0  # Gemma: tanh soft-capping after lm_head
    assert loss_head(model, 512) is None


def test_heldout_pass_in_chunks_equals_the_full_projection():
    """Loss, confidence and top-1 hits per example: the chunked pass (no B×S×V logits) equals the full one."""
    from ftx.data.format import Collator
    from ftx.eval.heldout import loss_pass

    model = _lora_model()
    b = _batch(model.config.vocab_size)
    rows = [{k: b[k][i].tolist() for k in ("input_ids", "labels", "loss_weight")} for i in range(3)]
    widest = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: widest.append(o.shape[:-1].numel()))
    full = loss_pass(model, rows, Collator(0), 2, False, chunk=0)
    assert max(widest) == 2 * 17
    widest.clear()
    chunked = loss_pass(model, rows, Collator(0), 2, False, chunk=4)
    assert max(widest) <= 4
    assert [r["tokens"] for r in full] == [r["tokens"] for r in chunked] == [11, 11, 6]
    for f, c in zip(full, chunked):
        assert f["hits"] == c["hits"]
        assert f["loss_sum"] == pytest.approx(c["loss_sum"], rel=1e-5)
        assert f["conf_sum"] == pytest.approx(c["conf_sum"], rel=1e-5)


HEAP_PROBE = """
import ctypes, sys, torch
from ftx import memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
applied = memory.return_freed_blocks(int(sys.argv[1]))
big = torch.ones(4 << 20); del big  # a freed 16 MiB block: glibc's dynamic threshold rises to 16 MiB
before = libc.mallinfo2().hblkhd
blocks = [torch.ones(512 << 10) for _ in range(20)]  # 2 MiB each, like a step's activations
print(applied, (libc.mallinfo2().hblkhd - before) >> 20)
"""


@pytest.mark.parametrize("threshold_kb, applied, mapped_mb", [(0, "False", 0), (1024, "True", 40)])
def test_freed_activation_sized_blocks_go_back_to_the_os_only_with_the_threshold(threshold_kb, applied, mapped_mb):
    """With glibc's default, blocks below the largest block freed so far come from the heap, whose freed space
    stays resident; with train.malloc_mmap_threshold_kb=1024 each 2 MiB block is its own mapping (returned to the
    OS when freed). A fresh process each: the threshold is process-wide."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", HEAP_PROBE, str(threshold_kb)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [applied, str(mapped_mb)]


def test_threshold_outside_glibcs_range_is_refused_in_one_line():
    for bad in (-1, 32769):
        with pytest.raises(ConfigError, match=r"train\.malloc_mmap_threshold_kb: must be in \[0, 32768\] KiB"):
            build_spec(compose([f"train.malloc_mmap_threshold_kb={bad}"]))


def test_the_chunked_loss_forward_projects_one_gathered_position_not_a_batched_copy_of_the_head(tmp_path):
    """The forward of the chunked loss keeps one logit per row. As the int 1 that is `hidden[:, -1:]`, a strided
    view, and torch multiplies it with the head as a batched matmul against a per-row copy of the head weight
    (SmolLM2: 205 ms of an 866 ms forward). ftx passes an index tensor where the model takes one."""
    from torch.profiler import ProfilerActivity, profile

    from ftx.engine.loss import keep_one_logit

    from ftx.engine.lora import wrap
    from ftx.engine.model import load_model
    from ftx.spec.lora import LoraConfig
    from ftx.spec.model import ModelConfig

    torch.manual_seed(0)  # bf16 weights, as the default model loads: the case torch runs as a batched matmul
    model = wrap(load_model(ModelConfig(name="tiny-llama", source="tiny", dtype="bf16")), LoraConfig(r=2, dropout=0.0))
    model.train(True)
    keep = keep_one_logit(model, "cpu")
    assert isinstance(keep, torch.Tensor) and keep.tolist() == [0]  # Llama: `logits_to_keep: int | torch.Tensor`

    class IntOnly(torch.nn.Module):
        def forward(self, input_ids, logits_to_keep: int = 0):
            return input_ids

    assert keep_one_logit(IntOnly(), "cpu") == 1  # a model that slices by an int only gets the int

    vocab = model.config.vocab_size
    batch = _batch(vocab)

    def head_matmuls(arg) -> list:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      output_hidden_states=-1, logits_to_keep=arg)
        return [e.input_shapes for e in prof.key_averages(group_by_input_shape=True)
                if e.key == "aten::bmm" and any(vocab in s for s in e.input_shapes if s)]

    assert head_matmuls(1), "the int no longer takes the batched path: keep_one_logit may be unneeded"
    assert head_matmuls(keep) == []
    # the chunked loss is unchanged by it: the value of the full-logits loss (bf16 weights: bf16 tolerance)
    full = _trainer(model, tmp_path, 0).compute_loss(model, dict(batch))
    chunked = _trainer(model, tmp_path, 5).compute_loss(model, dict(batch))
    assert torch.allclose(full, chunked, rtol=1e-2), (full, chunked)
