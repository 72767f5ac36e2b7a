"""Stage `normalize`: mojibake repair (ftfy), NFC, control characters, whitespace.

Each fix is applied to the text of text records and to every message of chat records; a record
changed by a fix is counted under that fix's name as modified. A record left empty is dropped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict

import ftfy

from ftx.data.curate.table import Context, map_batches, rewrite_batch, texts
from ftx.spec.curation import CurationConfig, NormalizeConfig

VERSION = "1"
# Mojibake only: the other ftfy fixers would silently rewrite domain text (quotes, HTML entities).
_FTFY = ftfy.TextFixerConfig(unescape_html=False, remove_terminal_escapes=False, fix_latin_ligatures=False,
                             fix_character_width=False, uncurl_quotes=False, fix_line_breaks=False,
                             remove_control_chars=False, normalization=None, explain=False)
# C0/C1 controls except tab and newline (\r is handled with line breaks), and invisible format characters.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_RUNS = re.compile(r"(?<=\S)[ ]{2,}")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")


def _whitespace(t: str) -> str:
    t = t.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    t = _SPACES.sub(" ", t)
    t = _RUNS.sub(" ", t)  # inner runs only: leading indentation (code) survives
    t = _TRAILING.sub("", t)
    return _BLANKS.sub("\n\n", t).strip()


def fix_text(t: str, cfg: NormalizeConfig) -> tuple[str, set]:
    why = set()
    if cfg.fix_mojibake and not t.isascii():  # mojibake needs non-ASCII characters
        new = ftfy.fix_text(t, _FTFY)
        if new != t:
            why.add("mojibake")
            t = new
    if cfg.nfc and not unicodedata.is_normalized("NFC", t):
        new = unicodedata.normalize("NFC", t)
        if new != t:
            why.add("nfc")
            t = new
    if cfg.control_chars and _CONTROL.search(t):
        t = _CONTROL.sub("", t)
        why.add("control_chars")
    if cfg.whitespace:
        new = _whitespace(t)
        if new != t:
            why.add("whitespace")
            t = new
    return t, why


def _batch(batch: dict, cfg: dict) -> dict:
    ncfg = NormalizeConfig(**cfg)
    out = rewrite_batch(batch, lambda s: fix_text(s, ncfg))
    for i, t in enumerate(texts(out)):
        if not t.strip():
            out["_drop"][i] = "empty_text"
        elif msgs_empty(out["messages"][i]):
            out["_drop"][i] = "empty_message"
            out["_detail"][i] = "a message has no content left after normalisation"
    return out


def msgs_empty(messages) -> bool:
    return bool(messages) and any(not m["content"].strip() and m["role"] != "system" for m in messages)


def fingerprint(cfg: CurationConfig) -> dict:
    return {"version": VERSION, "ftfy": ftfy.__version__, **asdict(cfg.normalize)}


def run(ds, cfg: CurationConfig, ctx: Context):
    return map_batches(ds, _batch, ctx, "normalize", cfg=asdict(cfg.normalize)), {}
