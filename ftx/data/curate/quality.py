"""Stage `quality`: structure and boilerplate filters (Gopher-style heuristics, Rae et al. 2021).

Navigation/template sentences (menus, cookie banners, share/subscribe calls, copyright lines) are
found sentence by sentence; lines made only of them are stripped (modified) or, when they make up
most of the text, the record is dropped as boilerplate. Then length, mean word length, symbol-to-word ratio, letter share, bullet/ellipsis
lines, repeated lines and repeated n-grams are checked; the first failing check names the drop.
Code (fenced, indented or reST `::` blocks, interactive sessions, option tables: table.code_lines) and
markdown headers are exempt from every check but length, so technical text with code and lists survives. Every kept record gets `scores.quality` in [0, 1] and `scores.words`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict
from typing import Optional

import numpy as np

from ftx.data.curate.table import NAN, Context, code_lines, map_batches, prose_lines, rewrite, texts, verdicts
from ftx.spec.curation import CurationConfig, QualityConfig

VERSION = "3"  # 3: code-aware boilerplate and line shares, top n-gram counts repeats only
WORD = re.compile(r"\w+")
ALNUM = re.compile(r"[^\W_]")
HEADER = re.compile(r"^\s{0,3}#{1,6}\s")
BULLET = re.compile(r"^\s*([•‣◦▪*-]|\d+[.)])\s")
MAX_BOILERPLATE_WORDS = 40
MIN_PROSE_BESIDE_CODE = 20
"""Beside code, prose ratios are judged only on at least this many prose words."""
ELLIPSIS_END = re.compile(r"(?<![\]>)}])(\.\.\.|…)\s*$")  # not grammar notation: `<name>...`, `[<args>]...`
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
HISTOGRAMS = {"quality": {"column": "s_quality", "bins": np.linspace(0, 1, 21).tolist()},
              "words": {"column": "s_words", "log_bins": True}}


def _boilerplate_regex(cfg: QualityConfig) -> Optional[re.Pattern]:
    if not cfg.boilerplate_patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in cfg.boilerplate_patterns), re.IGNORECASE)


def _is_boilerplate(segment: str, rx) -> bool:
    s = segment.strip()
    return bool(s) and len(s.split()) <= MAX_BOILERPLATE_WORDS and rx.fullmatch(s) is not None


def boilerplate(text: str, rx, exempt_code: bool = True) -> tuple[float, list[bool]]:
    """(share of prose characters in boilerplate sentences, per line: is it all boilerplate). Code lines
    (table.code_lines: command synopses `[-a | --all]`, sessions, …) are neither boilerplate nor counted."""
    total = bp = 0
    line_flags = []
    lines = text.split("\n")
    code = code_lines(text) if exempt_code else [False] * len(lines)
    for line, is_code in zip(lines, code):
        segs = [] if is_code else [s for s in SENTENCE_END.split(line.strip()) if s.strip()]
        flags = [_is_boilerplate(s, rx) for s in segs]
        total += sum(len(s) for s in segs)
        bp += sum(len(s) for s, f in zip(segs, flags) if f)
        line_flags.append(bool(segs) and all(flags))
    return bp / max(total, 1), line_flags


def _grams(tokens: list[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n))))


def top_ngram_frac(tokens: list[str], n: int, total: int, min_count: int = 2) -> float:
    """Share of characters in the occurrences of the most frequent n-gram (0 unless it occurs min_count times)."""
    counts = _grams(tokens, n)
    if not counts:
        return 0.0
    top, c = counts.most_common(1)[0]
    return min(sum(map(len, top)) * (c - 1) / total, 1.0) if c >= max(min_count, 2) else 0.0


def dup_ngram_frac(tokens: list[str], n: int, total: int, min_count: int = 2) -> float:
    """Share of characters in repeated occurrences of n-grams (Gopher; the first occurrence of an n-gram is
    not a duplicate, and overlapping repeats are counted once — as datatrove's reference filter does).
    Only n-grams occurring at least `min_count` times count."""
    counts = _grams(tokens, n) if min_count > 2 else None
    seen, dup, i = set(), 0, 0
    while i + n <= len(tokens):
        g = tuple(tokens[i:i + n])
        if g in seen and (counts is None or counts[g] >= min_count):
            dup += sum(map(len, g))
            i += n
        else:
            seen.add(g)
            i += 1
    return min(dup / total, 1.0)


def _line_frac(count: int, n_lines: int) -> float:
    """Share of lines with a property; a single line is not a share (short texts would fail on one line)."""
    return count / n_lines if count >= 2 else 0.0


def measure(text: str, cfg: QualityConfig) -> dict:
    """Every check but length reads the prose only: code blocks, sessions, option tables (table.code_lines)
    are exempt when `exempt_code_blocks` (their symbols, short lines and repeated tokens are normal)."""
    words = text.split()
    prose = prose_lines(text) if cfg.exempt_code_blocks else text.split("\n")
    lines = [l for l in prose if l.strip()]
    all_lines = max(sum(1 for l in text.split("\n") if l.strip()), 1)  # code lines are lines too, and fine ones
    pwords = " ".join(prose).split()
    symbols = sum(l.count("#") for l in prose if not HEADER.match(l)) + \
        sum(l.count("...") + l.count("…") for l in prose)
    has_code = len(pwords) < len(words)
    if len(pwords) < (MIN_PROSE_BESIDE_CODE if has_code else cfg.min_words):
        # (nearly) all code: the prose ratios would be read off a few words (a caption, a stray output line)
        pwords, lines, symbols = [], [], 0
    m = {
        "words": len(words),
        "prose_words": len(pwords),
        "mean_word_length": sum(map(len, pwords)) / len(pwords) if pwords else None,
        "symbol_word_ratio": symbols / max(len(pwords), 1),
        "alnum_word_frac": sum(1 for w in pwords if ALNUM.search(w)) / len(pwords) if pwords else 1.0,
        "bullet_line_frac": _line_frac(sum(bool(BULLET.match(l)) for l in lines), all_lines),
        "ellipsis_line_frac": _line_frac(sum(bool(ELLIPSIS_END.search(l)) for l in lines), all_lines),
        "dup_line_frac": _line_frac(len(lines) - len(set(l.strip() for l in lines)), all_lines),
        "top_ngram": {}, "dup_ngram": {},
    }
    if len(pwords) >= cfg.ngram_min_words:
        tokens = WORD.findall("\n".join(prose).lower())
        total = sum(map(len, tokens)) or 1
        for n in cfg.max_top_ngram_frac:
            m["top_ngram"][n] = top_ngram_frac(tokens, int(n), total, cfg.ngram_min_count)
        none_repeat_at = None  # if no n-gram repeats, no longer one does either
        for n in sorted(cfg.max_dup_ngram_frac, key=int):
            if none_repeat_at is not None and int(n) > none_repeat_at:
                m["dup_ngram"][n] = 0.0
                continue
            m["dup_ngram"][n] = dup_ngram_frac(tokens, int(n), total, cfg.ngram_min_count)
            if m["dup_ngram"][n] == 0.0:
                none_repeat_at = int(n)
    return m


def verdict(m: dict, cfg: QualityConfig) -> Optional[tuple[str, float, str]]:
    """The first failing check as (reason, measured value, detail), or None."""
    mwl = m["mean_word_length"]
    checks = [
        ("too_short", m["words"], cfg.min_words, "<"),
        ("too_long", m["words"], cfg.max_words, ">"),
        ("mean_word_length", mwl, cfg.min_mean_word_length, "<"),
        ("mean_word_length", mwl, cfg.max_mean_word_length, ">"),
        ("symbol_word_ratio", m["symbol_word_ratio"], cfg.max_symbol_word_ratio, ">"),
        ("alnum_word_frac", m["alnum_word_frac"], cfg.min_alnum_word_frac, "<"),
        ("bullet_lines", m["bullet_line_frac"], cfg.max_bullet_line_frac, ">"),
        ("ellipsis_lines", m["ellipsis_line_frac"], cfg.max_ellipsis_line_frac, ">"),
        ("repeated_lines", m["dup_line_frac"], cfg.max_dup_line_frac, ">"),
    ]
    checks += [("repeated_ngrams", v, cfg.max_top_ngram_frac[n], ">") for n, v in m["top_ngram"].items()]
    checks += [("repeated_ngrams", v, cfg.max_dup_ngram_frac[n], ">") for n, v in m["dup_ngram"].items()]
    for reason, value, limit, op in checks:
        if limit is not None and value is not None and (value < limit if op == "<" else value > limit):
            return reason, float(value), f"{value:.3g} {op} {limit}"
    return None


def score(m: dict) -> float:
    """One number for the curriculum: cleaner prose → closer to 1."""
    dup = max(list(m["dup_ngram"].values()) + [0.0])
    return float(max(0.0, m["alnum_word_frac"] * (1 - m["dup_line_frac"]) * (1 - min(m["symbol_word_ratio"], 1.0))
                     * (1 - dup)))


def _batch(batch: dict, cfg: dict) -> dict:
    qcfg = QualityConfig(**cfg)
    rx = _boilerplate_regex(qcfg)
    n = len(batch["id"])
    out = verdicts(n)
    out["messages"], out["text"] = list(batch["messages"]), list(batch["text"])
    out["s_quality"], out["s_words"] = [NAN] * n, [NAN] * n
    for i, t in enumerate(texts(batch)):
        if len(t) > qcfg.max_chars:
            out["_drop"][i], out["_score"][i] = "too_long", float(len(t))
            out["_detail"][i] = f"{len(t)} characters > max_chars={qcfg.max_chars}"
            continue
        if rx is not None:
            frac, _ = boilerplate(t, rx, qcfg.exempt_code_blocks)
            if frac > qcfg.max_boilerplate_frac:
                out["_drop"][i], out["_score"][i] = "boilerplate", frac
                out["_detail"][i] = f"{frac:.0%} of the text is navigation/template text"
                continue
            if frac and qcfg.strip_boilerplate:
                def strip(s):
                    flags = boilerplate(s, rx, qcfg.exempt_code_blocks)[1]
                    new = "\n".join(l for l, f in zip(s.split("\n"), flags) if not f).strip()
                    return new, ({"boilerplate_lines"} if new != s else set())

                msgs, text, why = rewrite(out["messages"][i], out["text"][i], strip)
                out["messages"][i], out["text"][i], out["_mod"][i] = msgs, text, ",".join(sorted(why))
                t = texts({"messages": [msgs], "text": [text]})[0]
        m = measure(t, qcfg)
        out["s_quality"][i], out["s_words"][i] = score(m), float(m["words"])
        v = verdict(m, qcfg)
        if v:
            out["_drop"][i], out["_score"][i], out["_detail"][i] = v
    return out


def fingerprint(cfg: CurationConfig) -> dict:
    return {"version": VERSION, **asdict(cfg.quality)}


def run(ds, cfg: CurationConfig, ctx: Context):
    out = map_batches(ds, _batch, ctx, "quality", cfg=asdict(cfg.quality))
    return out, {"histograms": HISTOGRAMS}
