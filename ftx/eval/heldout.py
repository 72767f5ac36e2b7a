"""Held-out loss passes: answer-token cross-entropy, perplexity, and how confident the model is.

Confidence (mean top-1 probability) next to accuracy (top-1 = reference token) over the same
tokens tells a calibrated model from one that is confidently wrong (the off-domain probe).
"""

from __future__ import annotations

import contextlib
import math

from ftx.engine.loss import LOSS_CHUNK, head_logits, keep_one_logit, loss_head


def autocast(bf16: bool):
    """The training precision for evaluation too: a bf16-trained model is measured under bf16."""
    import torch

    if bf16:
        return torch.autocast("cpu" if not torch.cuda.is_available() else "cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def own_precision(model):
    """Lift accelerate's mixed-precision wrapper off `model.forward` while evaluating.

    Trainer(bf16=True) leaves the in-memory model's forward wrapped in bf16 autocast after training,
    so an "fp32" measurement of it would silently run in bf16 (a reloaded adapter would not).
    Evaluation picks its precision itself (`autocast`), identically for in-memory and reloaded models.
    """
    wrapped = "forward" in vars(model) and hasattr(model, "_original_forward")
    saved = model.forward if wrapped else None
    if wrapped:
        model.forward = model._original_forward
    try:
        yield model
    finally:
        if wrapped:
            model.forward = saved


def ppl(loss):
    return None if loss is None else math.exp(min(loss, 50.0))


def loss_pass(model, examples: list[dict], collator, batch_size: int, bf16: bool, chunk: int = LOSS_CHUNK) -> list[dict]:
    """Per example: summed CE, token count, summed top-1 probability and top-1 hits (labels != -100).

    Only answer positions are projected onto the vocabulary, `chunk` of them at a time, from the model's final
    hidden states (ftx.engine.loss): no batch × seq × vocab logits (chunk 0, or a model the chunked head does not
    fit, projects the whole batch as before)."""
    import torch

    out: list[dict] = []
    if not examples:
        return out
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    head = loss_head(model, chunk)
    try:
        with torch.no_grad(), autocast(bf16):
            for i in range(0, len(examples), batch_size):
                batch = collator(examples[i:i + batch_size])
                ids, attn = batch["input_ids"].to(device), batch["attention_mask"].to(device)
                labels = batch["labels"].to(device)[:, 1:]
                mask = labels != -100
                target = labels[mask]
                if head is not None:
                    hidden = model(input_ids=ids, attention_mask=attn, output_hidden_states=-1,
                                   logits_to_keep=keep_one_logit(model, device)).hidden_states[-1][:, :-1][mask]
                    parts = [_token_stats(head_logits(head, hidden[j:j + chunk]), target[j:j + chunk])
                             for j in range(0, hidden.size(0), chunk)]
                    ce, top_p, hit = (torch.cat(x) for x in zip(*parts)) if parts else (target.float(),) * 3
                else:
                    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
                    # Only answer positions: the vocabulary-wide softmax is the costly part, and prompts
                    # are most of each sequence.
                    ce, top_p, hit = _token_stats(logits[mask].float(), target)
                row, n = mask.nonzero()[:, 0], labels.size(0)

                def per_row(values):
                    return torch.zeros(n, dtype=torch.float64, device=device).index_add_(0, row, values.double())

                loss_sum, conf_sum = per_row(ce), per_row(top_p)
                hits, tokens = per_row(hit), mask.sum(1)
                for j in range(n):
                    out.append({"loss_sum": float(loss_sum[j]), "tokens": int(tokens[j]),
                                "conf_sum": float(conf_sum[j]), "hits": int(hits[j])})
    finally:
        if was_training:
            model.train()
    return out


def _token_stats(logits, target):
    """Per position: cross-entropy, top-1 probability, and whether the top-1 token is the target (as 0/1)."""
    logp = logits.log_softmax(-1)
    ce = -logp.gather(1, target[:, None]).squeeze(1)
    top_lp, top_i = logp.max(-1)
    return ce, top_lp.exp(), (top_i == target).double()


def summarize(per: list[dict]) -> dict:
    """Token-weighted loss, perplexity, confidence and top-1 accuracy over per-example results."""
    n = sum(p["tokens"] for p in per)
    if not n:
        return {"loss": None, "ppl": None, "confidence": None, "accuracy": None, "tokens": 0}
    loss = sum(p["loss_sum"] for p in per) / n
    return {"loss": loss, "ppl": ppl(loss), "confidence": sum(p["conf_sum"] for p in per) / n,
            "accuracy": sum(p["hits"] for p in per) / n, "tokens": n}


def heldout_loss(model, examples: list[dict], collator, batch_size: int, bf16: bool) -> dict:
    """Token-weighted mean cross-entropy over response tokens (labels != -100), and perplexity."""
    return summarize(loss_pass(model, examples, collator, batch_size, bf16))
