"""Formatting: records → token ids, labels and per-token loss weights; packing; the collator.

Each example carries `loss_weight` per token: response tokens get the example weight, prompt
tokens get `prompt_loss_weight × example weight` (0 masks them), padding 0. `labels` marks the
response tokens (-100 elsewhere) so held-out loss is always the answer loss. The first token of
an example is never a target (nothing precedes it), which also keeps packed examples apart in
the loss: the last token of one example never learns to predict the first of the next.
"""

from __future__ import annotations

import bisect
import logging
import random
from typing import Optional

from ftx.data.plan import Examples
from ftx.engine.model import CHATML_TEMPLATE
from ftx.errors import ConfigError, DataError
from ftx.spec.data import FormatConfig

log = logging.getLogger(__name__)
IGNORE = -100

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
PLAIN_TEMPLATE = (  # for base models without a chat template; needs no special token but EOS
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### User:\\n' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ '### Assistant:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)
# Named template → (jinja, special tokens the tokenizer must have for it to make sense).
TEMPLATES = {
    "chatml": (CHATML_TEMPLATE, ("<|im_start|>", "<|im_end|>")),
    "llama3": (LLAMA3_TEMPLATE, ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    "plain": (PLAIN_TEMPLATE, ()),
}


def prepare_tokenizer(tok, cfg: FormatConfig):
    """Install the configured chat template; a template the tokenizer cannot express is an error."""
    if cfg.template == "auto":
        if not getattr(tok, "chat_template", None):
            raise ConfigError("data.format.template=auto: the tokenizer has no chat template "
                              f"(name one: data.format.template={'|'.join(TEMPLATES)})")
        return tok
    jinja, needed = TEMPLATES[cfg.template]
    vocab = tok.get_vocab()
    missing = [t for t in needed if t not in vocab]
    if missing:
        usable = [n for n, (_, req) in TEMPLATES.items() if all(t in vocab for t in req)]
        raise ConfigError(f"data.format.template={cfg.template}: the tokenizer lacks its special tokens "
                          f"{', '.join(missing)} (usable here: auto{''.join(', ' + u for u in usable)})")
    if cfg.template == "plain" and tok.eos_token is None:
        raise ConfigError("data.format.template=plain: the tokenizer has no EOS token to end responses")
    tok.chat_template = jinja
    return tok


def _with_system(messages: list, system_prompt: Optional[str]) -> list:
    if system_prompt and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": system_prompt}] + list(messages)
    return list(messages)


def _chat_ids(msgs: list, tok) -> tuple[list[int], int]:
    """Token ids of a conversation and how many of them are prompt (all but the last reply)."""
    prompt_ids = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=True, return_dict=False)
    full_ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # Templates that rewrite earlier turns, or BPE merges across the boundary: split the strings.
        prompt_s = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
        full_s = tok.apply_chat_template(msgs, tokenize=False)
        prompt_ids = tok(prompt_s, add_special_tokens=False)["input_ids"]
        full_ids = prompt_ids + tok(full_s[len(prompt_s):], add_special_tokens=False)["input_ids"]
    return list(full_ids), len(prompt_ids)


def _where(rec: dict) -> str:
    return f"record {rec['id']!r} (source {rec.get('source')})"


def encode(rec: dict, tok, cfg: FormatConfig) -> tuple[Optional[dict], Optional[str]]:
    """One record → (example, None), or (None, reason) when the truncation policy drops it."""
    weight = float(rec.get("weight") if rec.get("weight") is not None else 1.0)
    if cfg.raw_text and rec.get("messages"):  # continued pre-training: the whole record is text
        rec = dict(rec, text="\n".join(m["content"] for m in rec["messages"]), messages=None)
    if rec.get("messages"):
        msgs = _with_system(rec["messages"], cfg.system_prompt)
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{_where(rec)}: the last message must be the assistant's (got {msgs[-1]['role']!r})")
        full_ids, n_prompt = _chat_ids(msgs, tok)
    else:  # raw text: next-token loss on everything
        full_ids, n_prompt = tok(rec["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id], 0
    limit, truncated = cfg.max_length, False
    if len(full_ids) > limit:
        if cfg.truncation == "error":
            raise DataError(f"{_where(rec)}: {len(full_ids)} tokens > data.format.max_length={limit} "
                            "(raise it, or set data.format.truncation=drop|truncate)")
        if n_prompt >= limit - 1:
            if cfg.truncation == "truncate":
                raise DataError(f"{_where(rec)}: the prompt alone is {n_prompt} tokens, leaving no room for the "
                                f"response within data.format.max_length={limit} (raise it, or set "
                                "data.format.truncation=drop to skip such examples)")
            return None, "prompt_too_long"
        if cfg.truncation == "drop":
            return None, "too_long"
        full_ids, truncated = full_ids[:limit], True
    n = len(full_ids)
    labels = [IGNORE] * n_prompt + full_ids[n_prompt:]
    lw = [cfg.prompt_loss_weight * weight] * n_prompt + [weight] * (n - n_prompt)
    labels[0], lw[0] = IGNORE, 0.0
    ex = {"input_ids": full_ids, "labels": labels, "loss_weight": lw, "n_response": n - n_prompt,
          "truncated": truncated, "id": rec["id"], "source": rec.get("source"), "role": rec.get("role"),
          "weight": weight}
    if rec.get("scores"):
        ex["scores"] = dict(rec["scores"])
    return ex, None


def encode_all(records: list[dict], tok, cfg: FormatConfig, split: str, ledger=None) -> tuple[list[dict], dict]:
    out, dropped, truncated = [], {"too_long": 0, "prompt_too_long": 0}, 0
    stage = f"format:{split}"
    for rec in records:
        ex, reason = encode(rec, tok, cfg)
        if ledger is not None:
            ledger.record_in(stage, 1)
        if ex is None:
            dropped[reason] += 1
            if ledger is not None:
                ledger.drop(stage, reason, rec, detail=f"max_length={cfg.max_length}")
            continue
        if ledger is not None:
            ledger.keep(stage)
            if ex["truncated"]:
                ledger.modify(stage, "truncated")
        truncated += ex.pop("truncated")
        out.append(ex)
    if sum(dropped.values()):
        log.warning("%s: dropped %s over data.format.max_length=%d (see data/dropped.jsonl)",
                    split, {k: v for k, v in dropped.items() if v}, cfg.max_length)
    stats = {"examples": len(out), "dropped_too_long": dropped["too_long"],
             "dropped_prompt_too_long": dropped["prompt_too_long"], "truncated": truncated,
             "tokens": sum(len(e["input_ids"]) for e in out),
             "response_tokens": sum(e["n_response"] for e in out)}
    return out, stats


def encode_pairs(records: list[dict], encoded: list[dict], tok, cfg: FormatConfig, split: str,
                 ledger=None) -> tuple[list[dict], dict]:
    """Preference pairs of one split: each pair's chosen side is its record's SFT example (`encoded`, already
    through encode_all); the rejected side is encoded the same way. A pair whose rejected side does not fit
    data.format.max_length is dropped into the ledger (stage pairs:<split>), as its chosen side would have been.

    A pair: {id, chosen, rejected (examples with token ids, as held-out loss reads them), prompt (the messages
    before the reply, system prompt included), chosen_text, rejected_text, rater?}: what the DPO trainer and the
    preference metrics need, so neither re-reads the sources."""
    by_id = {ex["id"]: ex for ex in encoded}
    out, dropped, stage = [], {"too_long": 0, "prompt_too_long": 0}, f"pairs:{split}"
    for rec in records:
        if rec.get("rejected") is None or rec["id"] not in by_id:
            continue  # not a pair, or its chosen side was dropped by format:<split> (counted there)
        if ledger is not None:
            ledger.record_in(stage, 1)
        msgs = rec["messages"]
        rej, reason = encode(dict(rec, messages=msgs[:-1] + [{"role": "assistant", "content": rec["rejected"]}]),
                             tok, cfg)
        if rej is None:
            dropped[reason] += 1
            if ledger is not None:
                ledger.drop(stage, f"rejected_{reason}", rec, detail=f"max_length={cfg.max_length}")
            continue
        if ledger is not None:
            ledger.keep(stage)
            if rej["truncated"]:
                ledger.modify(stage, "rejected_truncated")
        rej.pop("truncated")
        pair = {"id": rec["id"], "chosen": by_id[rec["id"]], "rejected": rej,
                "prompt": _with_system(msgs[:-1], cfg.system_prompt), "chosen_text": msgs[-1]["content"],
                "rejected_text": rec["rejected"]}
        if rec.get("rater") is not None:
            pair["rater"] = rec["rater"]
        out.append(pair)
    stats = {"pairs": len(out), "dropped_rejected_too_long": dropped["too_long"] + dropped["prompt_too_long"],
             "tokens": sum(len(p["chosen"]["input_ids"]) + len(p["rejected"]["input_ids"]) for p in out)}
    return out, stats


def _row(items: list[dict]) -> dict:
    row = {"input_ids": [], "labels": [], "loss_weight": [], "position_ids": [], "seq_lens": [], "ids": []}
    for e in items:
        row["input_ids"] += e["input_ids"]
        row["labels"] += e["labels"]
        row["loss_weight"] += e["loss_weight"]
        row["position_ids"] += list(range(len(e["input_ids"])))
        row["seq_lens"].append(len(e["input_ids"]))
        row["ids"].append(e["id"])
    return row


def pack(examples: list[dict], length: int, keep_order: bool = False, bands: Optional[list[int]] = None,
         seed: int = 0) -> tuple[Examples, dict]:
    """Pack examples into rows of at most `length` tokens; position ids restart for each example.

    No order: best-fit decreasing, then `_squeeze` (fullest rows). `bands` (curriculum stages,
    shuffled inside): the same within each band, bands kept in order. `keep_order` (a strict
    curriculum): next-fit in order, trading some fill for the order.
    """
    if bands:
        bins, start, rng = [], 0, random.Random(seed)
        for n in bands:
            band = _best_fit(examples[start:start + n], length)
            rng.shuffle(band)  # best-fit sorts by length; a stage's rows should not be
            bins += band
            start += n
    elif keep_order:
        bins, used = [], length + 1
        for e in examples:
            n = len(e["input_ids"])
            if used + n > length:
                bins.append([])
                used = 0
            bins[-1].append(e)
            used += n
    else:
        bins = _best_fit(examples, length)
    rows = Examples(_row(b) for b in bins)
    rows.ordered = bool(keep_order or bands or getattr(examples, "ordered", False))
    tokens = sum(len(r["input_ids"]) for r in rows)
    return rows, {"rows": len(rows), "examples": len(examples), "pack_length": length, "tokens": tokens,
                  "fill": round(tokens / max(len(rows) * length, 1), 4),
                  "order": "stages" if bands else "kept" if keep_order else "free"}


def _best_fit(examples: list[dict], length: int) -> list[list[dict]]:
    bins: list[list[dict]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted: best fit = smallest that fits
    for e in sorted(examples, key=lambda e: -len(e["input_ids"])):
        n = len(e["input_ids"])
        i = bisect.bisect_left(free, (n, -1))
        if i == len(free):
            bins.append([e])
            bisect.insort(free, (length - n, len(bins) - 1))
        else:
            space, b = free.pop(i)
            bins[b].append(e)
            bisect.insort(free, (space - n, b))
    return _squeeze(bins, length)


def _squeeze(bins: list[list[dict]], length: int, passes: int = 20, drained: int = 64) -> list[list[dict]]:
    """Local search after best-fit decreasing: move an example from an emptier row into a fuller one,
    or swap it for a shorter one there, while that raises Σ load² (so free space gathers in a few
    rows, which then empty). Each move strictly raises Σ load², so it ends. On the demo data it takes
    256-token rows from 68 to 65 (fill 92.5% → 96.8%); each pass drains only the `drained` emptiest rows.
    """
    size = lambda e: len(e["input_ids"])  # noqa: E731
    load = [sum(map(size, b)) for b in bins]
    if len(bins) <= -(-sum(load) // length):  # already the fewest rows possible
        return bins
    for _ in range(passes):
        moved = False
        for a in sorted(range(len(bins)), key=load.__getitem__)[:drained]:
            for x in sorted(bins[a], key=size):
                n = size(x)
                fuller = [b for b in range(len(bins)) if b != a and bins[b] and load[b] >= load[a]]
                fits = [b for b in fuller if load[b] + n <= length]
                if fits:
                    b = max(fits, key=load.__getitem__)
                    bins[a] = [e for e in bins[a] if e is not x]
                    bins[b].append(x)
                    load[a], load[b], moved = load[a] - n, load[b] + n, True
                    continue
                swap = next(((b, j) for b in fuller for j, y in enumerate(bins[b])
                             if size(y) < n and load[b] - size(y) + n <= length), None)
                if swap:
                    b, j = swap
                    y = bins[b].pop(j)
                    bins[b].append(x)
                    bins[a] = [e for e in bins[a] if e is not x]
                    bins[a].append(y)
                    d = n - size(y)
                    load[a], load[b], moved = load[a] - d, load[b] + d, True
        keep = [i for i, b in enumerate(bins) if b]
        bins, load = [bins[i] for i in keep], [load[i] for i in keep]
        if not moved:
            break
    return bins


class Collator:
    """Right-pads input_ids/labels/loss_weight into a batch.

    Packed rows (with `position_ids`) get no attention_mask: transformers then derives a
    block-diagonal causal mask from the position ids restarting at 0 (masking_utils
    `find_packed_sequence_indices`, used by eager, sdpa and flash-attention paths), so no token
    attends across an example boundary. Padding continues as its own segment with weight 0.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(b["input_ids"]) for b in batch)

        def pad(key, value, dtype):
            return torch.tensor([b[key] + [value] * (width - len(b[key])) for b in batch], dtype=dtype)

        out = {
            "input_ids": pad("input_ids", self.pad_id, torch.long),
            "labels": pad("labels", IGNORE, torch.long),
            "loss_weight": pad("loss_weight", 0.0, torch.float32),
        }
        if "position_ids" in batch[0]:
            out["position_ids"] = torch.tensor([b["position_ids"] + list(range(width - len(b["position_ids"])))
                                                for b in batch], dtype=torch.long)
        else:
            out["attention_mask"] = torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"]))
                                                  for b in batch], dtype=torch.long)
        return out
