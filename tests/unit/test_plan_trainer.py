"""The plan reaches training: example weights change the loss (and gradients) as expected, the
curriculum order is the Trainer's dataloader order, and packed batches train on the same loss."""

from __future__ import annotations

import pytest

from ftx.data import format as fmt
from ftx.data.plan import assign_weights, curriculum
from ftx.engine.model import load_model, load_tokenizer
from ftx.spec.data import DataConfig, FormatConfig, SourceConfig
from tests.helpers import TINY


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def model():
    return load_model(TINY)


@pytest.fixture
def trainer_for(model, tok, tmp_path):
    from transformers import TrainingArguments

    from ftx.engine.trainer import make_trainer_class

    def make(train, batch_size=2, use_cache=False):
        args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=batch_size, use_cpu=True,
                                 report_to=[], remove_unused_columns=False, seed=42, disable_tqdm=True,
                                 use_cache=use_cache)
        return make_trainer_class()(model=model, args=args, train_dataset=train,
                                    data_collator=fmt.Collator(tok.pad_token_id))
    return make


def record(i, role, source):
    return {"id": f"{source}{i}", "source": source, "role": role, "synthetic": role == "synthetic", "weight": None,
            "text": None, "messages": [{"role": "user", "content": f"question {i} about {source}?"},
                                       {"role": "assistant", "content": f"{source} answer number {i}"}]}


def per_token_ce(model, batch):
    import torch
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), batch["input_ids"][:, 1:], reduction="none")


def weighted_examples(tok, synthetic_weight, plw=0.0):
    data = DataConfig(sources={"gold": SourceConfig(path="g.jsonl"), "synth": SourceConfig(path="s.jsonl", role="synthetic")})
    data.weights.synthetic = synthetic_weight
    recs = [record(1, "domain", "gold"), record(2, "synthetic", "synth")]
    assign_weights(recs, data)
    return [fmt.encode(r, tok, FormatConfig(prompt_loss_weight=plw))[0] for r in recs]


def test_example_weights_change_the_training_loss_as_expected(model, tok, trainer_for):
    import torch

    collate = fmt.Collator(tok.pad_token_id)
    model.train()
    trainer = trainer_for([])
    with torch.no_grad():
        ce = per_token_ce(model, collate(weighted_examples(tok, 1.0)))
        losses = {}
        for w in (0.0, 0.5, 1.0, 3.0):
            exs = weighted_examples(tok, w, plw=0.2)
            batch = collate(exs)
            lw = batch["loss_weight"][:, 1:]
            expected = float((ce * lw).sum() / lw.sum())  # Σ w·CE / Σ w with per-example and prompt weights
            losses[w] = float(trainer.compute_loss(model, dict(batch)))
            assert losses[w] == pytest.approx(expected, rel=1e-5)
        gold_only = float(trainer.compute_loss(model, dict(collate(weighted_examples(tok, 1.0, plw=0.2)[:1]))))
    assert losses[0.0] == pytest.approx(gold_only, rel=1e-5), "weight 0 removes the synthetic example"
    synth_loss = float((ce[1] * collate(weighted_examples(tok, 1.0, 0.2))["loss_weight"][1, 1:]).sum()
                       / collate(weighted_examples(tok, 1.0, 0.2))["loss_weight"][1, 1:].sum())
    # More weight on synthetic pulls the batch loss monotonically towards the synthetic example's own loss.
    gaps = [abs(losses[w] - synth_loss) for w in (0.0, 0.5, 1.0, 3.0)]
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > gaps[-1] + 1e-4


def test_zero_weight_examples_contribute_no_gradient(model, tok, trainer_for):
    import torch

    collate = fmt.Collator(tok.pad_token_id)
    trainer = trainer_for([])
    model.train()

    def grads(batch):
        model.zero_grad()
        trainer.compute_loss(model, dict(batch)).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    mixed = grads(collate(weighted_examples(tok, 0.0)))
    alone = grads(collate(weighted_examples(tok, 0.0)[:1]))
    both = grads(collate(weighted_examples(tok, 1.0)))
    model.zero_grad()
    assert torch.allclose(mixed, alone, atol=1e-6)
    assert not torch.allclose(both, alone, atol=1e-4)


def test_the_curriculum_order_is_the_trainers_dataloader_order(tok, trainer_for):
    data = DataConfig(sources={"d": SourceConfig(path="d.jsonl")})
    exs = []
    for i in range(12):
        ex = fmt.encode(record(i, "domain", "d"), tok, FormatConfig())[0]
        ex["scores"] = {"relevance": (i * 7 % 12) / 12}
        exs.append(ex)

    def loader_order(train):
        order = []
        for batch in trainer_for(train, batch_size=4).get_train_dataloader():
            for row in batch["input_ids"].tolist():
                order.append(next(e["id"] for e in exs if e["input_ids"] == row[:len(e["input_ids"])]))
        return order

    shuffled, _ = curriculum(exs, data)
    assert loader_order(shuffled) != [e["id"] for e in exs], "no curriculum: the Trainer shuffles"
    data.curriculum.strategy = "score"
    ordered, _ = curriculum(exs, data)
    expected = [e["id"] for e in sorted(exs, key=lambda e: -e["scores"]["relevance"])]
    assert [e["id"] for e in ordered] == expected
    assert loader_order(ordered) == expected
    rows, _ = fmt.pack(ordered, 128, keep_order=True)  # packed rows keep the order too
    got = [i for batch in trainer_for(rows).get_train_dataloader() for i in _ids_of(batch, rows)]
    assert got == expected


def _ids_of(batch, rows):
    for r in batch["input_ids"].tolist():
        yield from next(row["ids"] for row in rows if row["input_ids"] == r[:len(row["input_ids"])])


@pytest.mark.parametrize("use_cache", [False, True])
def test_packed_training_loss_equals_unpacked(model, tok, trainer_for, use_cache):
    """Through WeightedTrainer.compute_loss in train mode; with use_cache on, transformers would build a KV
    cache and ignore the packed position ids unless the trainer turns it off for packed batches."""
    import torch

    exs = [fmt.encode(record(i, "domain", "d"), tok, FormatConfig(prompt_loss_weight=0.3))[0] for i in range(6)]
    for i, e in enumerate(exs):  # varied example weights
        e["loss_weight"] = [w * (0.5 + i / 4) for w in e["loss_weight"]]
    trainer = trainer_for([], use_cache=use_cache)
    collate = fmt.Collator(tok.pad_token_id)
    rows, _ = fmt.pack(exs, 180)
    assert len(rows) < len(exs)
    model.train()
    with torch.no_grad():
        unpacked = float(trainer.compute_loss(model, dict(collate(exs))))
        packed = float(trainer.compute_loss(model, dict(collate(rows))))
    assert packed == pytest.approx(unpacked, abs=1e-5)
