"""`ftx augment [overrides] --out F`: synthetic paraphrases/back-translations written by the base model."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ftx.data.augment import augment
from ftx.errors import ConfigError
from ftx.cli.args import split_args
from ftx.data.sources import load_sources
from ftx.engine.model import load_model, load_tokenizer, resolve_model_path
from ftx.runs import atomic_write_text, write_json
from ftx.spec.run import build_spec
from ftx.spec.tree import compose


def cmd_augment(args: list[str]) -> None:
    """`ftx augment [overrides] --out FILE`: synthetic records from the domain sources, written by the model."""

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
    overrides, flags, _ = split_args(rest)
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
