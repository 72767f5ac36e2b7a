"""`ftx augment [overrides] --out F`: synthetic paraphrases/back-translations written by the base model."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ftx.cli.args import add_config_dir, add_out, command_parser, parse
from ftx.cli.preflight import check_paths
from ftx.data.augment import augment
from ftx.data.sources import load_sources
from ftx.engine.model import load_model, load_tokenizer, resolve_model_path
from ftx.runs import atomic_write_text, input_paths, output_file, write_json
from ftx.spec.run import as_dict, build_spec
from ftx.spec.tree import compose


def parser():
    p = command_parser("augment", "ftx augment [key=value …] --out FILE",
                       "Synthetic records (paraphrases, back-translations) from the domain sources, written by "
                       "the base model;\nuse the output as a source with role: synthetic.", overrides=True)
    add_out(p, "where to write the synthetic .jsonl (FILE.stats.json beside it); a new file unless --overwrite",
            metavar="FILE", required=True)
    add_config_dir(p)
    return p


def cmd_augment(args: list[str]) -> None:
    """`ftx augment [overrides] --out FILE`: synthetic records from the domain sources, written by the model."""
    ns = parse(parser(), args)
    spec = build_spec(compose(ns.overrides, ns.config_dir))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(ns.out)
    stats_path = out.with_suffix(".stats.json")
    check_paths(spec, model=True)
    with output_file(out, "--out", overwrite=ns.overwrite, inputs=input_paths(as_dict(spec)), also=[stats_path]):
        domain = {k: s for k, s in spec.data.sources.items() if s.role == "domain"}
        records, _ = load_sources(domain)
        records = [r for r in records if not r.get("synthetic")]
        path = resolve_model_path(spec.model)
        tok = load_tokenizer(spec.model, path)
        model = load_model(spec.model, path).eval()
        t0 = time.time()
        synth, stats = augment(records, model, tok, spec.data.augment)
        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in synth))
        write_json(stats_path, {"model": spec.model.name, "source_records": len(records),
                                "seconds": round(time.time() - t0, 2), "kinds": stats})
    for kind, s in stats.items():
        print(f"{kind}: {s['generated']} generated, {s['written']} written; rejected: {s['empty']} empty, "
              f"{s['not_question']} not a question, {s['copied']} copied")
    print(f"{len(synth)} synthetic records → {out} (use it as a source with role: synthetic)")
