"""Stage `agreement`: inter-annotator agreement and a policy for disputed items.

Records that carry several annotators' labels in `labels` — a list (`["yes", "no", "yes"]`) or a
mapping annotator → label (`{"ann1": "yes", "ann2": "no"}`) — get a per-item agreement (share of
annotators who chose the majority label). The report gives Fleiss' kappa over all items with the
usual number of annotators, Cohen's kappa (scikit-learn) for every pair of named annotators, or for
the two positions when every item has exactly two labels, and the disputed items themselves.

Disputed = agreement below `min_agreement`, or a tie for the majority. Policies:
  drop         disputed items go to the ledger (reason disputed, detail the label counts)
  majority     every labelled item's `label` becomes the majority label; ties are dropped (reason tie)
  down_weight  as majority, and the item's trust (a factor of its loss weight) × its agreement
Records without `labels` pass untouched.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import asdict
from typing import Optional

import numpy as np

from ftx.data.curate.table import Context, column, verdicts, with_columns
from ftx.spec.curation import AgreementConfig

VERSION = "1"
MAX_LISTED = 200
"""Disputed items listed in the report (all of them are counted)."""


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa of an items × categories count table with the same number of raters per item."""
    table = np.asarray(table, dtype=float)
    n = table.sum(axis=1)
    if len(table) == 0 or not np.allclose(n, n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs >= 2 raters, the same number for every item")
    n = n[0]
    p_items = ((table * (table - 1)).sum(axis=1)) / (n * (n - 1))
    p_cat = table.sum(axis=0) / table.sum()
    p_bar, p_e = p_items.mean(), (p_cat ** 2).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else 1.0


def item_labels(value) -> Optional[dict]:
    """{annotator: label}; list positions become annotators "0", "1", …; None when not annotations."""
    if isinstance(value, dict):
        out = {str(k): str(v) for k, v in value.items() if v is not None}
    elif isinstance(value, list):
        out = {str(i): str(v) for i, v in enumerate(value) if v is not None}
    else:
        return None
    return out or None


def resolve(labels: dict) -> tuple[str, float, bool]:
    """(majority label, agreement share, tie)."""
    counts = Counter(labels.values()).most_common()
    top, k = counts[0]
    tie = len(counts) > 1 and counts[1][1] == k
    return top, k / len(labels), tie


def statistics(items: list[dict], named: bool) -> dict:
    """Fleiss' kappa over the items with the most common annotator count; Cohen's kappa per pair."""
    from sklearn.metrics import cohen_kappa_score

    out: dict = {"items": len(items)}
    if not items:
        return out
    n_common = Counter(len(x) for x in items).most_common(1)[0][0]
    same = [x for x in items if len(x) == n_common]
    cats = sorted({v for x in same for v in x.values()})
    if n_common >= 2:
        table = np.array([[list(x.values()).count(c) for c in cats] for x in same])
        out["fleiss_kappa"] = round(fleiss_kappa(table), 4)
        out["fleiss_items"], out["raters_per_item"] = len(same), n_common
    annotators = sorted({a for x in items for a in x}) if named or n_common == 2 else []
    pairs = {}
    for a, b in itertools.combinations(annotators, 2):
        both = [x for x in items if a in x and b in x]
        if len(both) >= 2:
            ya, yb = [x[a] for x in both], [x[b] for x in both]
            k = cohen_kappa_score(ya, yb) if len(set(ya) | set(yb)) > 1 else 1.0
            pairs[f"{a}|{b}"] = {"kappa": round(float(k), 4), "items": len(both)}
    if pairs:
        out["cohen_kappa"] = pairs
    return out


def fingerprint(cfg) -> dict:
    return {"version": VERSION, **asdict(cfg.agreement)}


def run(ds, cfg, ctx: Context):
    c: AgreementConfig = cfg.agreement
    extras = column(ds, "extra")
    ids = column(ds, "id")
    out = verdicts(len(ds))
    new_extra = list(extras)
    items, disputed, named = [], [], False
    for i, raw in enumerate(extras):
        extra = json.loads(raw) if raw else {}
        labels = item_labels(extra.get(c.field))
        if labels is None:
            continue
        named = named or isinstance(extra.get(c.field), dict)
        items.append(labels)
        top, share, tie = resolve(labels)
        out["_score"][i] = share
        is_disputed = tie or share < c.min_agreement
        if is_disputed:
            disputed.append({"id": ids[i], "labels": labels, "agreement": round(share, 4), "tie": tie})
            counts = dict(Counter(labels.values()))
            if c.policy == "drop" or tie:  # a tie has no majority to keep
                out["_drop"][i] = "tie" if c.policy != "drop" and tie else "disputed"
                out["_detail"][i] = json.dumps(counts, sort_keys=True)
                continue
        if c.policy in ("majority", "down_weight") and extra.get(c.label_field) != top:
            extra[c.label_field] = top
            out["_mod"][i] = "majority_label"
        if c.policy == "down_weight" and share < 1.0:
            extra["trust"] = float(extra.get("trust", 1.0)) * share
            out["_mod"][i] = ",".join(filter(None, [out["_mod"][i], "down_weighted"]))
        new_extra[i] = json.dumps(extra, ensure_ascii=False, sort_keys=True)
    out["extra"] = new_extra
    stats = statistics(items, named)
    stats.update(disputed=len(disputed), policy=c.policy, min_agreement=c.min_agreement,
                 disputed_items=sorted(disputed, key=lambda d: d["agreement"])[:MAX_LISTED])
    return with_columns(ds, out, ctx, "agreement"), stats
