"""Held-out preference accuracy and reward margin, base vs tuned (what DPO optimises, measured like the loss).

For a pair (x, y_w chosen, y_l rejected) the model's log-likelihood margin is
    m(x) = log π(y_w | x) − log π(y_l | x)        (summed over each reply's tokens; nats)
computed from the same answer-token cross-entropy pass as the held-out loss (ftx/eval/heldout.py), so a pair is
scored exactly as its chosen and rejected replies would be in the loss.

    pref_accuracy  share of pairs whose chosen reply has the higher mean log-likelihood per token (length-
                   normalised, like lm-eval's acc_norm: summed log-likelihoods favour the shorter reply)
    pref_margin    mean m (nats): the summed margin DPO moves

and, base vs tuned (the base run is DPO's reference π_ref: the starting weights), DPO's implicit reward
    r(x, y) = β · (log π(y | x) − log π_ref(y | x))
gives per pair the reward margin r(x, y_w) − r(x, y_l) = β · (m_tuned − m_base):

    reward_margin    mean of it (TRL's rewards/margins on held-out pairs)
    reward_accuracy  share of pairs where it is > 0 (TRL's rewards/accuracies)

A growing margin does not say which reply moved. DPO can widen it by lowering both likelihoods, the chosen
reply's too ("likelihood displacement", Razin et al. 2024; Pal et al. 2024): the tuned model then ranks the
pair right and says the chosen reply less readily than the base did. So each side's loss per token is
compared too, base vs tuned on the same pairs (a paired bootstrap, ftx.eval.paired):

    chosen / rejected   base and tuned mean loss per token, relative change, share of pairs whose reply
                        became likelier, the paired test (verdict rose | fell | none)

and a chosen side whose loss rose by more than eval.preference.max_chosen_rise flags the run
(`displacement_flags`); train.dpo.sft_weight (RPO) is the usual remedy.
"""

from __future__ import annotations

from typing import Optional

from ftx.eval.heldout import loss_pass
from ftx.eval.paired import paired

SIDES = ("chosen", "rejected")


def margins(model, pairs: list[dict], collator, batch_size: int, bf16: bool) -> list[dict]:
    """Per pair: `margin` log π(chosen) − log π(rejected) (summed, nats), `per_token` (the same with each
    side's mean log-likelihood per token) and each side's loss per token (`chosen_loss`, `rejected_loss`)."""
    chosen = loss_pass(model, [p["chosen"] for p in pairs], collator, batch_size, bf16)
    rejected = loss_pass(model, [p["rejected"] for p in pairs], collator, batch_size, bf16)
    per = lambda x: x["loss_sum"] / max(x["tokens"], 1)
    return [{"margin": r["loss_sum"] - c["loss_sum"], "per_token": per(r) - per(c),
             "chosen_loss": per(c), "rejected_loss": per(r)} for c, r in zip(chosen, rejected)]


def summarize(m: list[dict]) -> dict:
    return {"pref_accuracy": sum(x["per_token"] > 0 for x in m) / len(m),
            "pref_margin": sum(x["margin"] for x in m) / len(m)}


def side_loss(base: list[float], tuned: list[float], alpha: float, seed: int = 0) -> dict:
    """One side's loss per token on the same pairs, base vs tuned: means, relative change, the share of pairs
    whose reply became likelier, and the paired bootstrap (verdict rose | fell | none, at level alpha)."""
    test = paired(base, tuned, alpha, seed)
    b, t = test["base"], test["tuned"]
    verdict = {"improvement": "rose", "regression": "fell"}.get(test["verdict"], "none")  # of the loss
    return {"base": b, "tuned": t, "relative_change": (t - b) / b if b else 0.0,
            "likelier": sum(y < x for x, y in zip(base, tuned)) / max(len(base), 1),
            "test": {"test": test["test"], "p": test["p"], "ci": test["ci"], "verdict": verdict}}


def reward(base: list[dict], tuned: list[dict], beta: float, ids: list[str], alpha: float = 0.05,
           seed: int = 0) -> dict:
    """DPO's implicit reward of the tuned model against the base (its reference) on the same pairs, and which
    side moved (`chosen`, `rejected`: side_loss)."""
    per = [beta * (t["margin"] - b["margin"]) for b, t in zip(base, tuned)]
    first = lambda m: m["per_token"] > 0  # the chosen reply ranked first (length-normalised)
    sides = {side: side_loss([b[f"{side}_loss"] for b in base], [t[f"{side}_loss"] for t in tuned], alpha, seed)
             for side in SIDES if all(f"{side}_loss" in m for m in (*base, *tuned))}
    return {"pairs": len(per), "beta": beta, "reward_margin": sum(per) / len(per), **sides,
            "reward_accuracy": sum(x > 0 for x in per) / len(per),
            "base_pref_accuracy": sum(map(first, base)) / len(base),
            "tuned_pref_accuracy": sum(map(first, tuned)) / len(tuned),
            "flipped_to_chosen": sorted(i for i, b, t in zip(ids, base, tuned) if not first(b) and first(t)),
            "flipped_to_rejected": sorted(i for i, b, t in zip(ids, base, tuned) if first(b) and not first(t))}


def comparison(results: dict, pairs: dict, beta: float, alpha: float = 0.05, seed: int = 0) -> Optional[dict]:
    """metrics.json eval.preference: per held-out split, the reward block (needs both sides measured)."""
    if "base" not in results or "tuned" not in results:
        return None
    out = {}
    for split, base in results["base"].get("pairs", {}).items():
        tuned = results["tuned"].get("pairs", {}).get(split)
        if tuned:
            out[split] = reward(base, tuned, beta, [p["id"] for p in pairs[split][:len(base)]], alpha, seed)
    return out or None


REMEDY = {"dpo": "train.dpo.sft_weight=1 keeps them likely",
          "orpo": "a lower train.orpo.beta weighs ORPO's SFT term more"}


def displacement_flags(prefs: dict, budget: Optional[float], objective: str = "dpo") -> list[str]:
    """Run flags: a split whose chosen replies' loss per token rose by more than `budget` (relative)."""
    flags = []
    for split, p in prefs.items():
        c = p.get("chosen")
        if budget is None or c is None or c["relative_change"] <= budget:
            continue
        flags.append(f"preference: {split} chosen replies' loss per token {c['base']:.4f} -> {c['tuned']:.4f} "
                     f"({c['relative_change']:+.1%}, paired p={c['test']['p']:.3g}) exceeds "
                     f"eval.preference.max_chosen_rise {budget:.0%}: the margin grew by making the preferred "
                     f"replies less likely ({REMEDY.get(objective, REMEDY['dpo'])})")
    return flags
