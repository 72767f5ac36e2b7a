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
"""

from __future__ import annotations

from typing import Optional

from ftx.eval.heldout import loss_pass


def margins(model, pairs: list[dict], collator, batch_size: int, bf16: bool) -> list[dict]:
    """Per pair: `margin` log π(chosen) − log π(rejected) (summed, nats) and `per_token` (the same with each
    side's mean log-likelihood per token)."""
    chosen = loss_pass(model, [p["chosen"] for p in pairs], collator, batch_size, bf16)
    rejected = loss_pass(model, [p["rejected"] for p in pairs], collator, batch_size, bf16)
    return [{"margin": r["loss_sum"] - c["loss_sum"],
             "per_token": r["loss_sum"] / max(r["tokens"], 1) - c["loss_sum"] / max(c["tokens"], 1)}
            for c, r in zip(chosen, rejected)]


def summarize(m: list[dict]) -> dict:
    return {"pref_accuracy": sum(x["per_token"] > 0 for x in m) / len(m),
            "pref_margin": sum(x["margin"] for x in m) / len(m)}


def reward(base: list[dict], tuned: list[dict], beta: float, ids: list[str]) -> dict:
    """DPO's implicit reward of the tuned model against the base (its reference) on the same pairs."""
    per = [beta * (t["margin"] - b["margin"]) for b, t in zip(base, tuned)]
    first = lambda m: m["per_token"] > 0  # the chosen reply ranked first (length-normalised)
    return {"pairs": len(per), "beta": beta, "reward_margin": sum(per) / len(per),
            "reward_accuracy": sum(x > 0 for x in per) / len(per),
            "base_pref_accuracy": sum(map(first, base)) / len(base),
            "tuned_pref_accuracy": sum(map(first, tuned)) / len(tuned),
            "flipped_to_chosen": sorted(i for i, b, t in zip(ids, base, tuned) if not first(b) and first(t)),
            "flipped_to_rejected": sorted(i for i, b, t in zip(ids, base, tuned) if first(b) and not first(t))}


def comparison(results: dict, pairs: dict, beta: float) -> Optional[dict]:
    """metrics.json eval.preference: per held-out split, the reward block (needs both sides measured)."""
    if "base" not in results or "tuned" not in results:
        return None
    out = {}
    for split, base in results["base"].get("pairs", {}).items():
        tuned = results["tuned"].get("pairs", {}).get(split)
        if tuned:
            out[split] = reward(base, tuned, beta, [p["id"] for p in pairs[split][:len(base)]])
    return out or None
