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

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ftx.errors import ConfigError, require

log = logging.getLogger(__name__)
KINDS = ("paraphrase", "backtranslate")
PROMPTS = {
    "paraphrase": "Rewrite this question in different words. Reply with the new question only.\n\n"
                  "Question: {prompt}",
    "backtranslate": "Here is an answer. Write the question it answers. Reply with the question only.\n\n"
                     "Answer: {response}",
}


@dataclass
class AugmentConfig:
    """`ftx augment`: which synthetic records the base model writes (see ftx/data/augment.py)."""

    kinds: List[str] = field(default_factory=lambda: list(KINDS))
    """paraphrase and/or backtranslate."""
    per_record: int = 1
    """Generations per source record and kind (sampled when > 1, greedy when 1)."""
    max_records: Optional[int] = None
    """Augment at most this many source records (null: all domain records)."""
    max_new_tokens: int = 64
    temperature: float = 0.8
    """Sampling temperature when per_record > 1."""
    min_chars: int = 8
    """Generations shorter than this (after cleaning) are counted as empty and not written."""
    require_question: bool = True
    """Keep only generations that end with '?' (small models often answer instead of asking)."""
    seed: int = 0

    def check(self) -> None:
        for k in self.kinds:
            require(k in KINDS, "data.augment.kinds", f"unknown kind {k!r} (valid: {', '.join(KINDS)})")
        require(bool(self.kinds), "data.augment.kinds", "is empty (use paraphrase and/or backtranslate)")
        require(self.per_record >= 1, "data.augment.per_record", f"must be >= 1, got {self.per_record}")
        require(self.max_new_tokens >= 4, "data.augment.max_new_tokens", f"must be >= 4, got {self.max_new_tokens}")
        require(self.temperature > 0, "data.augment.temperature", f"must be > 0, got {self.temperature}")


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


def cmd_augment(args: list[str]) -> None:
    """`ftx augment [overrides] --out FILE`: synthetic records from the domain sources, written by the model."""
    from ftx.cli import _split_args, compose
    from ftx.data.sources import load_sources
    from ftx.model import load_model, load_tokenizer, resolve_model_path
    from ftx.runs import atomic_write_text, write_json
    from ftx.spec import build_spec

    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return
    out = None
    rest = []
    it = iter(args)
    for a in it:
        if a == "--out":
            out = next(it, None)
        elif a.startswith("--out="):
            out = a.split("=", 1)[1]
        else:
            rest.append(a)
    if not out:
        raise ConfigError("ftx augment: --out FILE is required (where to write the synthetic .jsonl)")
    overrides, flags, _ = _split_args(rest)
    if flags:
        raise ConfigError(f"ftx augment: unknown flag {flags[0]!r} (flags: --out FILE)")
    spec = build_spec(compose(overrides))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    domain = {k: s for k, s in spec.data.sources.items() if s.role == "domain"}
    records, _ = load_sources(domain)
    records = [r for r in records if not r.get("synthetic")]
    path = resolve_model_path(spec.model)
    tok = load_tokenizer(spec.model, path)
    model = load_model(spec.model, path).eval()
    t0 = time.time()
    synth, stats = augment(records, model, tok, spec.data.augment)
    out = Path(out)
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in synth))
    write_json(out.with_suffix(".stats.json"), {"model": spec.model.name, "source_records": len(records),
                                                "seconds": round(time.time() - t0, 2), "kinds": stats})
    for kind, s in stats.items():
        print(f"{kind}: {s['generated']} generated, {s['written']} written; rejected: {s['empty']} empty, "
              f"{s['not_question']} not a question, {s['copied']} copied")
    print(f"{len(synth)} synthetic records → {out} (use it as a source with role: synthetic)")
