"""Synthetic augmentation with the local base model: prompt paraphrases and instruction back-translation.

`ftx augment [overrides] --out FILE` reads the domain sources of the data plan, asks the configured
model (offline; the embedded SmolLM2 by default) for

  paraphrase      the same question in other words (the original response is kept), and
  backtranslate   the question a response — or a raw domain text — answers ("instruction
                  back-translation", Li et al. 2023), paired with that response,

and writes JSON Lines: every record `synthetic: true`, `source_id` naming the record it came from
and `augment` naming the method. Use the file as a source with `role: synthetic`: it then passes the
same curation filters as real data, gets `data.weights.synthetic` as loss weight, is never held out
(validation stays real), and records derived from a held-out record are dropped from training
(`drop_held_out_derivatives`), so a paraphrase cannot leak a validation answer into training.
"""

from __future__ import annotations

import logging
from typing import Optional

from ftx.spec.data import AugmentConfig

log = logging.getLogger(__name__)
PROMPTS = {
    "paraphrase": "Rewrite this question in different words. Reply with the new question only.\n\n"
                  "Question: {prompt}",
    "backtranslate": "Here is an answer. Write the question it answers. Reply with the question only.\n\n"
                     "Answer: {response}",
}


def _pair(rec: dict) -> tuple[Optional[str], str]:
    """(prompt, response) of a record; raw text has no prompt and is its own response."""
    msgs = rec.get("messages")
    if msgs:
        prompt = next((m["content"] for m in msgs if m["role"] == "user"), None)
        resp = next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), "")
        return prompt, resp
    return None, rec.get("text") or ""


def clean(text: str) -> str:
    """First non-empty line, without a 'Question:' lead-in or wrapping quotes."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    for lead in ("question:", "new question:", "q:"):
        if line.lower().startswith(lead):
            line = line[len(lead):].strip()
    return line.strip("\"'` ").strip()


def _generate(model, tok, prompts: list[str], cfg: AugmentConfig) -> list[list[str]]:
    import torch

    out = []
    sample = cfg.per_record > 1
    for p in prompts:
        msgs = [{"role": "user", "content": p}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True) \
            if tok.chat_template else tok(p + "\n", return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=cfg.max_new_tokens, do_sample=sample,
                                 temperature=cfg.temperature if sample else None, top_p=0.95 if sample else None,
                                 num_return_sequences=cfg.per_record, pad_token_id=tok.pad_token_id)
        n = ids["input_ids"].shape[1]
        out.append([tok.decode(g[n:], skip_special_tokens=True) for g in gen])
    return out


def augment(records: list[dict], model, tok, cfg: AugmentConfig) -> tuple[list[dict], dict]:
    """Synthetic records derived from `records`, and per kind the counts generated, written and rejected
    (empty, not_question, copied: the original question or a piece of the response repeated)."""
    from transformers import set_seed

    set_seed(cfg.seed)
    src = records[:cfg.max_records] if cfg.max_records else records
    out, stats = [], {k: {"generated": 0, "written": 0, "empty": 0, "not_question": 0, "copied": 0} for k in cfg.kinds}
    for kind in cfg.kinds:
        jobs = []
        for rec in src:
            prompt, resp = _pair(rec)
            if kind == "paraphrase" and not prompt:
                continue  # raw text has no question to paraphrase
            if resp:
                jobs.append((rec, prompt, resp))
        gens = _generate(model, tok, [PROMPTS[kind].format(prompt=p, response=r) for _, p, r in jobs], cfg)
        for (rec, prompt, resp), texts in zip(jobs, gens):
            for j, g in enumerate(texts):
                stats[kind]["generated"] += 1
                q = clean(g)
                why = ("empty" if len(q) < cfg.min_chars else
                       "not_question" if cfg.require_question and not q.endswith("?") else
                       "copied" if q.lower() == (prompt or "").strip().lower() or q.rstrip("?").lower() in resp.lower()
                       else None)
                if why:
                    stats[kind][why] += 1
                    continue
                out.append({"id": f"{rec['id']}~{kind[:4]}{j}", "prompt": q, "response": resp, "synthetic": True,
                            "source_id": rec["id"], "augment": kind})
                stats[kind]["written"] += 1
    return out, stats


def drop_held_out_derivatives(parts: dict, ledger=None) -> int:
    """Drop training records derived (source_id) from a validation/test record: they would leak it.
    Ledger stage `derived`, reason derived_from_held_out."""
    held = {str(r["id"]) for name in ("val", "test", "general_eval") for r in parts.get(name, [])}
    derived = [r for r in parts["train"] if r.get("source_id") is not None]
    if not derived:
        return 0
    leak = [r for r in derived if str(r["source_id"]) in held]
    if ledger is not None:
        ledger.record_in("derived", len(derived))
        ledger.keep("derived", len(derived) - len(leak))
        for r in leak:
            ledger.drop("derived", "derived_from_held_out", r, detail=f"source_id {r['source_id']} is held out")
    gone = {id(r) for r in leak}
    parts["train"] = [r for r in parts["train"] if id(r) not in gone]
    return len(leak)


