"""Stage `pii`: mask e-mail addresses, phone numbers, IP addresses and API-key-like secrets.

Masking rewrites text (and every chat message) in place: records are kept and counted as modified
under the kind of data masked. Patterns are deliberately conservative so technical text survives:
IPs are validated with `ipaddress` (LAN and loopback addresses are left alone by default; public and
documentation ranges are masked),
phone numbers need a phone-like shape and 9–15 digits (so dates, versions, ports and number lists
pass), and secrets are recognised by well-known prefixes or a `key=…`/`Bearer …` assignment.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict

from ftx.secrets import TOKEN
from ftx.data.curate.table import Context, map_batches, rewrite_batch
from ftx.spec.curation import CurationConfig, PiiConfig

VERSION = "2"  # 2: token shapes from ftx/secrets.py (hf_, github_pat_, glpat-, npm_, pypi-)
EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})(?![\w-])")
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]*\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PHONE = re.compile(
    r"(?<![\w+/.:-])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,4}"   # +44 20 7946 0958, +1-555-010-0199
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"                                       # (555) 010-0199
    r"|\d{3}[.-]\d{3}[.-]\d{4}"                                              # 555-010-0199
    r"|0\d{2,4} \d{3,4} \d{3,4}"                                             # 020 7946 0958
    r")(?![\w-])")
SECRET = TOKEN
"""Token shapes: the one list in ftx/secrets.py (what run directories refuse, this stage masks)."""
ASSIGNED = re.compile(r"(?i)(\b(?:api[_-]?key|apikey|secret|access[_-]?token|auth[_-]?token|password|passwd)"
                      r"[\"']?\s*[:=]\s*[\"']?|\bBearer\s+)([A-Za-z0-9_\-./+=]{11,}[A-Za-z0-9_\-/+=])")


LOCAL_NETS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


def _ip_ok_to_mask(s: str, mask_local: bool) -> bool:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return False
    local = ip.is_loopback or ip.is_link_local or ip.is_unspecified or any(ip in n for n in LOCAL_NETS
                                                                           if n.version == ip.version)
    return mask_local or not local


_NO_DIGITS = str.maketrans("", "", "0123456789")


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def mask(text: str, cfg: PiiConfig) -> tuple[str, set]:
    why: set = set()

    def tag(kind: str) -> str:
        why.add(kind.lower())
        return cfg.placeholder.format(kind=kind)

    allowed = {d.lower() for d in cfg.allow_email_domains}
    # Cheap character tests first: most records hold no candidate at all.
    digits = len(text) - len(text.translate(_NO_DIGITS))
    if cfg.api_key:
        text = SECRET.sub(lambda m: tag("API_KEY"), text)
        text = ASSIGNED.sub(lambda m: m.group(1) + (tag("API_KEY") if _digits(m.group(2)) and
                                                      any(c.isalpha() for c in m.group(2)) else m.group(2)), text)
    if cfg.email and "@" in text:
        text = EMAIL.sub(lambda m: m.group(0) if m.group(1).lower() in allowed else tag("EMAIL"), text)
    if cfg.ip and digits >= 4:
        text = IPV4.sub(lambda m: tag("IP") if _ip_ok_to_mask(m.group(0), cfg.mask_local_ips) else m.group(0), text)
        if text.count(":") >= 2:
            text = IPV6.sub(lambda m: tag("IP") if m.group(0).count(":") >= 2 and
                            _ip_ok_to_mask(m.group(0), cfg.mask_local_ips) else m.group(0), text)
    if cfg.phone and digits >= 9:
        text = PHONE.sub(lambda m: tag("PHONE") if 9 <= _digits(m.group(0)) <= 15 else m.group(0), text)
    return text, {f"pii_{w}" for w in why}


def _batch(batch: dict, cfg: dict) -> dict:
    pcfg = PiiConfig(**cfg)
    return rewrite_batch(batch, lambda s: mask(s, pcfg))


def fingerprint(cfg: CurationConfig) -> dict:
    return {"version": VERSION, **asdict(cfg.pii)}


def run(ds, cfg: CurationConfig, ctx: Context):
    return map_batches(ds, _batch, ctx, "pii", cfg=asdict(cfg.pii)), {}
