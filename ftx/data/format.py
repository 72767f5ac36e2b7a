"""Formatting: records → token ids, labels and per-token loss weights.

Each example carries `loss_weight` per token: response tokens get the example weight, prompt
tokens get `prompt_loss_weight × example weight` (0 masks them), padding 0. `labels` marks the
response tokens (-100 elsewhere) so held-out loss is always the answer loss.
"""

from __future__ import annotations

from typing import Optional

from ftx.data.config import FormatConfig
from ftx.errors import ConfigError, DataError
from ftx.model import CHATML_TEMPLATE

IGNORE = -100


def prepare_tokenizer(tok, cfg: FormatConfig):
    if cfg.template == "chatml":
        tok.chat_template = CHATML_TEMPLATE
    elif not getattr(tok, "chat_template", None):
        raise ConfigError("data.format.template=auto: the tokenizer has no chat template "
                          "(set data.format.template=chatml)")
    return tok


def _with_system(messages: list, system_prompt: Optional[str]) -> list:
    if system_prompt and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": system_prompt}] + list(messages)
    return list(messages)


def encode(rec: dict, tok, cfg: FormatConfig) -> Optional[dict]:
    """One record → {input_ids, labels, loss_weight, n_response}; None when dropped for length."""
    weight = float(rec.get("weight", 1.0))
    if rec.get("messages"):
        msgs = _with_system(rec["messages"], cfg.system_prompt)
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"record {rec['id']}: the last message must be the assistant's (got {msgs[-1]['role']!r})")
        prompt_ids = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=True,
                                             return_dict=False)
        full_ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)
        if full_ids[: len(prompt_ids)] != prompt_ids:
            # Templates that rewrite earlier turns: fall back to string prefixes.
            prompt_s = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
            full_s = tok.apply_chat_template(msgs, tokenize=False)
            prompt_ids = tok(prompt_s, add_special_tokens=False)["input_ids"]
            full_ids = prompt_ids + tok(full_s[len(prompt_s):], add_special_tokens=False)["input_ids"]
        n_prompt = len(prompt_ids)
    else:  # raw text: next-token loss on everything
        full_ids = tok(rec["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n_prompt = 0
    truncated = False
    if len(full_ids) > cfg.max_length:
        if cfg.truncation == "error":
            raise DataError(f"record {rec['id']}: {len(full_ids)} tokens > data.format.max_length={cfg.max_length} "
                            "(raise it, or set data.format.truncation=drop|truncate)")
        if cfg.truncation == "drop" or n_prompt >= cfg.max_length - 1:
            return None
        full_ids = full_ids[: cfg.max_length]
        truncated = True
    n = len(full_ids)
    labels = [IGNORE] * n_prompt + full_ids[n_prompt:]
    lw = [cfg.prompt_loss_weight * weight] * n_prompt + [weight] * (n - n_prompt)
    return {"input_ids": full_ids, "labels": labels, "loss_weight": lw,
            "n_response": n - n_prompt, "truncated": truncated}


def encode_all(records: list[dict], tok, cfg: FormatConfig, split: str, ledger=None) -> tuple[list[dict], dict]:
    out, dropped, truncated = [], 0, 0
    for rec in records:
        ex = encode(rec, tok, cfg)
        if ledger is not None:
            ledger.record_in(f"format:{split}", 1)
        if ex is None:
            dropped += 1
            if ledger is not None:
                ledger.drop(f"format:{split}", "too_long", rec, detail=f"max_length={cfg.max_length}")
            continue
        if ledger is not None:
            ledger.keep(f"format:{split}")
        truncated += ex.pop("truncated")
        ex["id"] = rec["id"]
        out.append(ex)
    stats = {"examples": len(out), "dropped_too_long": dropped, "truncated": truncated,
             "tokens": sum(len(e["input_ids"]) for e in out),
             "response_tokens": sum(e["n_response"] for e in out)}
    return out, stats


class Collator:
    """Right-pads input_ids/labels/loss_weight into a batch."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(b["input_ids"]) for b in batch)

        def pad(key, value, dtype):
            return torch.tensor([b[key] + [value] * (width - len(b[key])) for b in batch], dtype=dtype)

        return {
            "input_ids": pad("input_ids", self.pad_id, torch.long),
            "labels": pad("labels", IGNORE, torch.long),
            "loss_weight": pad("loss_weight", 0.0, torch.float32),
            "attention_mask": torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"]))
                                            for b in batch], dtype=torch.long),
        }
