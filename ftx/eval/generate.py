"""Prompts to answers: held-out prompts from the encoded splits, prompt files (golden set,
off-domain probe), and batched generation with the run's chat format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ftx.errors import DataError
from ftx.eval.heldout import autocast
from ftx.runs import atomic_write_text, read_jsonl


def split_prompts(examples: list[dict], tok, index: dict) -> list[dict]:
    """Encoded chat examples → {id, prompt_ids, prompt, answers}: the prompt is every token before the
    first answer token (exactly what training conditioned on); raw-text examples have no prompt.
    `index` (Prepared.answers: id → accepted answers) adds the record's accepted answers. The question text shown in the
    predictions is decoded from the tokens, i.e. after curation (PII masked), never the raw source."""
    items = []
    for ex in examples:
        n_prompt = len(ex["input_ids"]) - ex["n_response"]
        if n_prompt <= 0:
            continue
        reference = tok.decode(ex["input_ids"][n_prompt:], skip_special_tokens=True).strip()
        extra = [a for a in index.get(ex.get("id"), []) if a != reference]
        prompt_ids = list(ex["input_ids"][:n_prompt])
        items.append({"id": ex.get("id"), "prompt_ids": prompt_ids, "prompt": last_user_text(prompt_ids, tok),
                      "answers": [reference, *extra]})
    return items


def last_user_text(prompt_ids: list[int], tok) -> str:
    """The last user message of a chat-formatted prompt, found by rendering the template around a
    sentinel; the whole decoded prompt when the template does not allow that."""
    text = tok.decode(prompt_ids, skip_special_tokens=False)
    try:
        probe = tok.apply_chat_template([{"role": "user", "content": "\x00"}], add_generation_prompt=True,
                                        tokenize=False)
    except Exception:  # a template that rejects a lone user turn
        return text
    head, _, tail = probe.partition("\x00")
    head = head[len(tok.bos_token or ""):] if tok.bos_token and head.startswith(tok.bos_token) else head
    if head and head in text and text.endswith(tail):
        return text.rsplit(head, 1)[1][: len(text.rsplit(head, 1)[1]) - len(tail)]
    return text


def read_prompt_file(path_str: str, key: str, need: tuple[str, ...]) -> list[dict]:
    """A JSONL file of prompts; every line must hold the fields in `need` (errors name file:line)."""
    from ftx.data.sources import resolve_path
    path = resolve_path(path_str)
    if not path.is_file():
        raise DataError(f"{key}: file not found: {path}")
    out = []
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        if "answers" in need and isinstance(obj.get("answers"), str):
            obj["answers"] = [obj["answers"]]
        for field in need:
            ok = (isinstance(obj.get(field), list) and obj[field] and all(isinstance(a, str) for a in obj[field])
                  if field == "answers" else isinstance(obj.get(field), str) and obj[field].strip())
            if not ok:
                what = "a non-empty list of strings" if field == "answers" else "a non-empty string"
                raise DataError(f"{where}: field {field!r} must be {what}; fields present: {', '.join(sorted(obj))}")
        obj.setdefault("id", f"{path.stem}:{lineno}")
        obj["id"] = str(obj["id"])
        out.append(obj)
    if not out:
        raise DataError(f"{key}: {path} holds no prompts")
    return out


def chat_prompt_ids(prompt: str, tok, fmt_cfg) -> list[int]:
    """A user prompt in the run's chat format (system prompt included), ready for generation."""
    msgs = [{"role": "user", "content": prompt}]
    if fmt_cfg.system_prompt:
        msgs.insert(0, {"role": "system", "content": fmt_cfg.system_prompt})
    return list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))


def stop_ids(tok) -> list[int]:
    """EOS plus the end-of-turn tokens of the chat templates ftx ships (chatml, llama3)."""
    vocab = tok.get_vocab()
    ids = {tok.eos_token_id} | {vocab[t] for t in ("<|im_end|>", "<|eot_id|>") if t in vocab}
    return sorted(i for i in ids if i is not None)


def generation_kwargs(tok, gen_cfg) -> dict:
    """`model.generate` keyword arguments for eval.generation (seeds the sampler when sampling)."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    kwargs = dict(max_new_tokens=gen_cfg.max_new_tokens, do_sample=gen_cfg.do_sample, pad_token_id=pad,
                  eos_token_id=stop_ids(tok), use_cache=True, repetition_penalty=gen_cfg.repetition_penalty)
    if gen_cfg.do_sample:
        kwargs.update(temperature=gen_cfg.temperature, top_p=gen_cfg.top_p)
        torch.manual_seed(gen_cfg.seed)
    else:  # greedy: clear sampling knobs a model's generation_config may carry
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def generate(model, tok, prompt_ids: list[list[int]], gen_cfg, bf16: bool) -> list[str]:
    """Batched generation, left-padded; returns the decoded new text of each prompt."""
    import torch

    if not prompt_ids:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    kwargs = generation_kwargs(tok, gen_cfg)
    pad = kwargs["pad_token_id"]
    texts: list[str] = []
    try:
        with torch.no_grad(), autocast(bf16):
            for i in range(0, len(prompt_ids), gen_cfg.batch_size):
                chunk = prompt_ids[i:i + gen_cfg.batch_size]
                width = max(len(p) for p in chunk)
                ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=device)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
                out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
                texts += [tok.decode(o[width:], skip_special_tokens=True).strip() for o in out]
    finally:
        if was_training:
            model.train()
    return texts


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def cap(items: list, n: int) -> list:
    return items[:n] if n else items


def probe_examples(items: list[dict], tok, fmt_cfg) -> tuple[list[dict], list[str]]:
    """{"prompt","response"} items encoded like training data (answer loss only); ids of dropped ones."""
    from ftx.data.format import encode

    kept, dropped = [], []
    for it in items:
        rec = {"id": it["id"], "messages": [{"role": "user", "content": it["prompt"]},
                                            {"role": "assistant", "content": it["response"]}]}
        ex, _reason = encode(rec, tok, fmt_cfg)
        if ex is None:
            dropped.append(it["id"])
            continue
        ex["id"] = it["id"]
        kept.append(ex)
    return kept, dropped


def optional_path(value: Optional[str]) -> Optional[str]:
    return value if value not in (None, "", "null") else None
