"""Continued pre-training (`train.objective=cpt`) and two-stage runs (`train.init_adapter`).

CPT trains next-token prediction on raw domain text — every token counts, records are packed — with
a share of general text mixed in (5–10% is the usual guard against forgetting; Gururangan et al.
2020, Ibrahim et al. 2024). `resolve` turns the objective into data-plan settings while the spec is
built, so `ftx spec`, config.yaml and the spec hash show what actually runs:

    data.format.raw_text = true     chat records become their text, loss on all tokens
    data.format.packing  = true
    data.mix.domain_ratio = 1 − train.cpt_general_share   (when a role=general source exists),
    data.mix.unit = tokens          counted in tokens

A second stage (SFT on the same adapter) starts from the CPT run's adapter with
`train.init_adapter=<cpt run>/adapter`: the new run wraps the base model with its own lora config,
then loads those weights (shapes must match; a mismatch is one line naming both configs).
"""

from __future__ import annotations

import logging

from ftx.errors import require

log = logging.getLogger("ftx")


def resolve(spec):
    """Apply train.objective=cpt to the data plan (in place); returns the spec."""
    t = spec.train
    if t.objective != "cpt":
        return spec
    d = spec.data
    d.format.raw_text = True
    d.format.packing = True
    share = t.cpt_general_share
    if share > 0:
        require("general" in d.roles(), "train.cpt_general_share",
                f"={share} mixes general text into CPT, but no data source has role=general "
                "(add one, or set train.cpt_general_share=0)")
        require(d.mix.domain_ratio is None or abs(d.mix.domain_ratio - (1 - share)) < 1e-9, "data.mix.domain_ratio",
                f"={d.mix.domain_ratio} conflicts with train.objective=cpt, which sets it to 1 - "
                f"train.cpt_general_share = {1 - share:g} (set one of them)")
        d.mix.domain_ratio = round(1.0 - share, 9)
        d.mix.unit = "tokens"  # the usual 5–10% is a share of tokens; general Q&A is much shorter than pages
    return spec


def check_objective(t) -> None:
    require(0.0 <= t.cpt_general_share < 1.0, "train.cpt_general_share",
            f"must be in [0, 1) (0.05–0.1 is usual), got {t.cpt_general_share}")


