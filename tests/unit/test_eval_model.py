"""Loss passes, generation and the LM judge on a tiny random Llama: each checked against a direct
computation (HF's own loss, a hand-written greedy loop, a hand-computed yes/no probability)."""

from __future__ import annotations

import math
from types import MethodType

import pytest

torch = pytest.importorskip("torch")

from ftx.data.format import Collator, encode  # noqa: E402
from ftx.eval.generate import chat_prompt_ids, generate, split_prompts, stop_ids  # noqa: E402
from ftx.eval.heldout import loss_pass, own_precision, summarize  # noqa: E402
from ftx.eval.judge import RUBRIC, LMJudge  # noqa: E402
from ftx.spec.data import FormatConfig  # noqa: E402
from ftx.spec.eval import GenerationConfig  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    from ftx.engine.model import load_tokenizer, resolve_model_path
    from ftx.spec.model import ModelConfig

    cfg = ModelConfig(name="tiny-llama", source="tiny", dtype="fp32")
    return load_tokenizer(cfg, resolve_model_path(cfg))


@pytest.fixture(scope="module")
def model(tok):
    """Random weights with a wide init, so greedy decoding wanders instead of repeating one token."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, initializer_range=0.3,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id)
    return LlamaForCausalLM(cfg).eval()


def _examples(tok, n=3):
    cfg = FormatConfig(max_length=128)
    recs = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"Question {i}" + "?" * i},
                                         {"role": "assistant", "content": f"Answer number {i} " * (i + 1)}]}
            for i in range(n)]
    out = []
    for r in recs:
        ex, _ = encode(r, tok, cfg)
        out.append(ex)
    return out


def test_loss_pass_matches_hf_loss_per_example_despite_padding(model, tok):
    examples = _examples(tok)
    per = loss_pass(model, examples, Collator(tok.pad_token_id), batch_size=3, bf16=False)
    for ex, p in zip(examples, per):
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([ex["input_ids"]]), labels=torch.tensor([ex["labels"]])).loss
        assert p["tokens"] == ex["n_response"]
        assert p["loss_sum"] / p["tokens"] == pytest.approx(float(ref), rel=1e-5)
    s = summarize(per)
    assert s["loss"] == pytest.approx(sum(p["loss_sum"] for p in per) / sum(p["tokens"] for p in per))
    assert s["ppl"] == pytest.approx(math.exp(s["loss"]))


def test_confidence_and_accuracy_are_top1_probability_and_hits(model, tok):
    ex = _examples(tok, 1)[0]
    (p,) = loss_pass(model, [ex], Collator(tok.pad_token_id), batch_size=1, bf16=False)
    with torch.no_grad():
        probs = model(input_ids=torch.tensor([ex["input_ids"]])).logits[0, :-1].softmax(-1)
    labels = torch.tensor(ex["labels"][1:])
    m = labels != -100
    assert p["conf_sum"] == pytest.approx(float(probs.max(-1).values[m].sum()), rel=1e-5)
    assert p["hits"] == int((probs.argmax(-1) == labels)[m].sum())
    s = summarize([p])
    assert 0.0 < s["confidence"] <= 1.0 and 0.0 <= s["accuracy"] <= 1.0


def test_own_precision_lifts_a_leftover_bf16_autocast_wrapper(model, tok):
    """Trainer(bf16) leaves model.forward wrapped in bf16 autocast; an fp32 measurement must undo it."""
    examples = _examples(tok)
    collator = Collator(tok.pad_token_id)
    fp32 = summarize(loss_pass(model, examples, collator, 3, bf16=False))["loss"]
    original = model.forward

    def wrapped(self, *a, **k):  # what accelerate's prepare_model(mixed_precision=bf16) installs
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return original(*a, **k)

    model._original_forward = original
    model.forward = MethodType(wrapped, model)
    try:
        leaked = summarize(loss_pass(model, examples, collator, 3, bf16=False))["loss"]
        with own_precision(model):
            clean = summarize(loss_pass(model, examples, collator, 3, bf16=False))["loss"]
        assert model.forward.__func__ is wrapped, "the wrapper must be restored afterwards"
    finally:
        del model.forward, model._original_forward
    assert leaked != fp32
    assert clean == fp32


def _greedy(model, ids, stops, max_new):
    """The obvious greedy loop: full forward each step, argmax, stop at a stop token."""
    out = list(ids)
    with torch.no_grad():
        for _ in range(max_new):
            nxt = int(model(input_ids=torch.tensor([out])).logits[0, -1].argmax())
            if nxt in stops:
                break
            out.append(nxt)
    return out[len(ids):]


def test_batched_generation_equals_a_plain_greedy_loop(model, tok):
    fmt = FormatConfig()
    prompts = [chat_prompt_ids(q, tok, fmt) for q in ("Hi", "What is HTTP status 404?", "Why?")]
    assert len({len(p) for p in prompts}) == 3  # different lengths: left padding is exercised
    cfg = GenerationConfig(max_new_tokens=12, batch_size=3)
    got = generate(model, tok, prompts, cfg, bf16=False)
    want = [tok.decode(_greedy(model, p, set(stop_ids(tok)), 12), skip_special_tokens=True).strip()
            for p in prompts]
    assert got == want
    assert any(got), "the wide-init model should produce some text"
    assert generate(model, tok, prompts, cfg, bf16=False) == got  # greedy is deterministic


def test_chat_prompt_carries_the_system_prompt(tok):
    plain = tok.decode(chat_prompt_ids("Hello", tok, FormatConfig()))
    system = tok.decode(chat_prompt_ids("Hello", tok, FormatConfig(system_prompt="Be brief.")))
    assert "Be brief." in system and "Be brief." not in plain
    assert system.endswith("assistant\n") and "Hello" in system


def test_split_prompts_cut_at_the_first_answer_token_and_merge_answer_lists(tok):
    examples = _examples(tok, 2)
    items = split_prompts(examples, tok, {"r0": ["Answer number 0", "zero"], "r1": ["Answer number 1"]})
    assert [it["id"] for it in items] == ["r0", "r1"]
    for ex, it in zip(examples, items):
        n = next(i for i, l in enumerate(ex["labels"]) if l != -100)  # the first answer token
        assert it["prompt_ids"] == ex["input_ids"][:n]
    # the question as the model saw it (after curation), without the chat template around it
    assert [it["prompt"] for it in items] == ["Question 0", "Question 1?"]
    with_system = encode({"id": "s", "messages": [{"role": "user", "content": "Why?"}, {"role": "assistant",
                          "content": "Because."}]}, tok, FormatConfig(system_prompt="Be brief."))[0]
    assert split_prompts([with_system], tok, {})[0]["prompt"] == "Why?"
    # the decoded reference first, then the record's own accepted answers (without repeating it)
    assert items[0]["answers"] == ["Answer number 0", "zero"]
    assert items[1]["answers"] == ["Answer number 1 Answer number 1", "Answer number 1"]
    text_only = {"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "n_response": 3, "id": "t"}  # raw text: no prompt
    assert split_prompts([text_only], tok, {}) == []


def test_lm_judge_scores_p_yes_over_p_yes_plus_no(model, tok):
    judge = LMJudge(model, tok)
    items = [{"prompt": "Capital of France?", "prediction": "Paris", "answers": ["Paris"]},
             {"prompt": "2+2?", "prediction": "five", "answers": ["4"]}]
    scores = judge.score(items)
    assert scores == judge.score(items)  # deterministic
    for it, s in zip(items, scores):
        text = RUBRIC.format(prompt=it["prompt"], reference=it["answers"][0], prediction=it["prediction"])
        ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
        with torch.no_grad():
            p = model(input_ids=torch.tensor([ids])).logits[0, -1].softmax(-1)
        yes, no = float(p[judge.yes].sum()), float(p[judge.no].sum())
        assert s == pytest.approx(yes / (yes + no), rel=1e-4)


def test_pairwise_judge_is_p_one_over_p_one_plus_two_and_each_order_is_its_own_prompt(model, tok):
    from ftx.eval.judge import PAIRWISE_RUBRIC, PairwiseLMJudge

    judge = PairwiseLMJudge(model, tok, batch_size=2)
    items = [{"prompt": "Capital of France?", "first": "Paris", "second": "Lyon", "answers": ["Paris"]},
             {"prompt": "Capital of France?", "first": "Lyon", "second": "Paris", "answers": ["Paris"]},
             {"prompt": "2+2?", "first": "four", "second": "five", "answers": ["4"]}]
    p = judge.compare(items)
    assert p == judge.compare(items) and len(set(p)) == 3  # deterministic; the order changes the prompt
    for it, s in zip(items, p):
        text = PAIRWISE_RUBRIC.format(prompt=it["prompt"], reference=it["answers"][0], first=it["first"],
                                      second=it["second"])
        ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
        with torch.no_grad():
            probs = model(input_ids=torch.tensor([ids])).logits[0, -1].softmax(-1)
        one, two = float(probs[judge.one].sum()), float(probs[judge.two].sum())
        assert s == pytest.approx(one / (one + two), rel=1e-4)
