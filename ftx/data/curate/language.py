"""Stage `language`: py3langid (its naive-Bayes model ships inside the package, no download).

Code blocks are removed before identification (code reads as no language). A record is dropped
only when the model is confident (`min_confidence`) that it is a language not in `keep`; short or
ambiguous texts stay. Kept records get `scores.language` = the probability of their language.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import lru_cache

import numpy as np

from ftx.data.curate.table import NAN, Context, column, map_batches, prose_lines, texts, verdicts
from ftx.spec.curation import CurationConfig

VERSION = "2"  # 2: table.code_lines knows definition lists, C comments, synopses


@lru_cache(maxsize=1)
def identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str, min_chars: int) -> tuple[str, float]:
    prose = "\n".join(prose_lines(text)).strip()
    if len(prose) < min_chars:
        return "und", 0.0
    lang, prob = identifier().classify(prose)
    return lang, float(prob)


def _batch(batch: dict, keep: list, min_confidence: float, min_chars: int) -> dict:
    n = len(batch["id"])
    out = verdicts(n)
    out["lang"], out["s_language"] = [""] * n, [NAN] * n
    for i, t in enumerate(texts(batch)):
        lang, prob = detect(t, min_chars)
        out["lang"][i], out["s_language"][i] = lang, prob
        if lang != "und" and lang not in keep and prob >= min_confidence:
            out["_drop"][i], out["_score"][i] = "language", prob
            out["_detail"][i] = f"{lang} (p={prob:.2f}); keeping {', '.join(keep)}"
    return out


def fingerprint(cfg: CurationConfig) -> dict:
    import py3langid

    return {"version": VERSION, "py3langid": py3langid.__version__, **asdict(cfg.language)}


def run(ds, cfg: CurationConfig, ctx: Context):
    c = cfg.language
    out = map_batches(ds, _batch, ctx, "language", keep=list(c.keep), min_confidence=c.min_confidence,
                      min_chars=c.min_chars)
    langs = dict(sorted(zip(*np.unique(np.array(column(out, "lang"), dtype=object).astype(str), return_counts=True)),
                        key=lambda kv: -kv[1]))
    out = out.remove_columns("lang")
    return out, {"languages": {k: int(v) for k, v in langs.items()},
                 "histograms": {"language": {"column": "s_language", "bins": np.linspace(0, 1, 21).tolist()}}}
