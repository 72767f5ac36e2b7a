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

import json
import logging
from pathlib import Path

from ftx.errors import ConfigError, ModelError, require

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
    require(t.objective in ("sft", "cpt"), "train.objective", f"must be sft or cpt; got {t.objective!r}")
    require(0.0 <= t.cpt_general_share < 1.0, "train.cpt_general_share",
            f"must be in [0, 1) (0.05–0.1 is usual), got {t.cpt_general_share}")


def load_init_adapter(model, path: str) -> int:
    """Load a previous run's adapter weights into the freshly wrapped PEFT model; returns tensors loaded."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    if p.is_dir() and (p / "adapter" / "adapter_model.safetensors").is_file():
        p = p / "adapter"  # a run directory
    weights = p / "adapter_model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"train.init_adapter={path}: no adapter_model.safetensors there "
                          "(give a run's adapter/ folder or the run directory)")
    if not hasattr(model, "peft_config"):
        raise ConfigError("train.init_adapter needs an adapter method (lora.method=lora|dora|rslora), not full")
    saved = json.loads((p / "adapter_config.json").read_text()) if (p / "adapter_config.json").is_file() else {}
    ours = model.peft_config["default"]
    state = load_file(str(weights))
    try:
        result = set_peft_model_state_dict(model, state)
    except RuntimeError as e:
        raise ModelError(f"train.init_adapter={path}: its shapes do not fit this run's adapter "
                         f"(saved r={saved.get('r')}, targets {saved.get('target_modules')}; this run r={ours.r}, "
                         f"targets {sorted(ours.target_modules) if ours.target_modules else None}): "
                         f"{next((ln.strip() for ln in str(e).splitlines() if 'size mismatch' in ln), '')[:200]}") from None
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ModelError(f"train.init_adapter={path}: {len(unexpected)} saved tensors have no place in this run's "
                         f"adapter (e.g. {unexpected[0]}); use the same lora.target_modules as the first stage")
    log.info("init adapter: %d tensors from %s", len(state), p)
    return len(state)
