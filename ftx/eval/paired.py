"""Paired significance of base → tuned on the same examples: McNemar's exact test for 0/1 scores
(scipy.stats.binomtest on the discordant pairs) and a seeded paired bootstrap for continuous ones,
with a bootstrap confidence interval on the mean difference for both.

    r = paired(base_scores, tuned_scores, alpha=0.05)
    r["p"], r["ci"], r["verdict"]        # verdict: regression | improvement | none

Scores are paired by position: callers pair them by example id first (`pair_rows`).
"""

from __future__ import annotations

from typing import Sequence

BOOTSTRAP_SAMPLES = 10_000
PAIRED_METRICS = ("exact_match", "contains", "token_f1", "rouge_l", "judge", "passed")
"""Per-example scores in the predictions rows (`passed`: golden set); BLEU is corpus-level, never paired."""


def wilson(k: int, n: int, level: float = 0.95) -> list[float]:
    """The Wilson score interval of k successes in n: statsmodels' proportion_confint when installed, else
    scipy's binomtest(...).proportion_ci — the same formula, (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    if n == 0:
        return [0.0, 1.0]
    try:
        from statsmodels.stats.proportion import proportion_confint

        lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    except ImportError:
        from scipy.stats import binomtest

        ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        lo, hi = ci.low, ci.high
    return [round(float(lo), 4), round(float(hi), 4)]


def is_binary(xs: Sequence[float]) -> bool:
    return all(x in (0, 1, 0.0, 1.0, True, False) for x in xs)


def mcnemar(base: Sequence[float], tuned: Sequence[float]) -> dict:
    """Exact McNemar test: under H0 the discordant pairs split 50/50. Two-sided p."""
    from scipy.stats import binomtest

    lost = sum(1 for b, t in zip(base, tuned) if b and not t)  # right before, wrong after
    won = sum(1 for b, t in zip(base, tuned) if t and not b)
    p = 1.0 if lost + won == 0 else float(binomtest(won, lost + won, 0.5).pvalue)
    return {"test": "mcnemar", "p": p, "lost": lost, "won": won}


def bootstrap(base: Sequence[float], tuned: Sequence[float], alpha: float, seed: int = 0,
              samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """Paired bootstrap of the mean difference (tuned − base): percentile CI at 1 − alpha and a two-sided
    p-value (twice the share of resampled means on the far side of zero)."""
    import numpy as np

    d = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
    n = len(d)
    if n == 0:
        return {"p": 1.0, "ci": [0.0, 0.0]}
    if np.all(d == d[0]):  # no spread: every resample gives the same mean
        p = 1.0 if d[0] == 0 else 0.0
        return {"p": p, "ci": [float(d[0]), float(d[0])]}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return {"p": p, "ci": [float(lo), float(hi)]}


def paired(base: Sequence[float], tuned: Sequence[float], alpha: float, seed: int = 0) -> dict:
    """One metric on n paired examples: means, difference, CI, p, the test used and the verdict."""
    n = len(base)
    if n != len(tuned):
        raise ValueError(f"paired scores differ in length: {n} vs {len(tuned)}")
    b_mean = sum(base) / n if n else 0.0
    t_mean = sum(tuned) / n if n else 0.0
    boot = bootstrap(base, tuned, alpha, seed)
    out = {"n": n, "alpha": alpha, "base": b_mean, "tuned": t_mean, "diff": t_mean - b_mean, "ci": boot["ci"]}
    if is_binary(base) and is_binary(tuned):
        out.update(mcnemar(base, tuned))
    else:
        out.update(test="bootstrap", p=boot["p"])
    significant = n > 0 and out["p"] < alpha and out["diff"] != 0
    out["verdict"] = ("regression" if out["diff"] < 0 else "improvement") if significant else "none"
    return out


def pair_rows(base_rows: list[dict], tuned_rows: list[dict]) -> dict:
    """{(set, metric): (base scores, tuned scores)} over the examples both sides answered, paired by id."""
    out: dict = {}
    index = {(r["set"], r["id"]): r for r in base_rows}
    for t in tuned_rows:
        b = index.get((t["set"], t["id"]))
        if b is None or t["set"] == "offdomain":
            continue
        for m in PAIRED_METRICS:
            if isinstance(b.get(m), (int, float)) and isinstance(t.get(m), (int, float)):
                bs, ts = out.setdefault((t["set"], m), ([], []))
                bs.append(float(b[m]))
                ts.append(float(t[m]))
    return out


def metric_name(set_name: str, metric: str) -> str:
    """The flat metrics.json name of a paired metric (golden `passed` is golden_pass_rate)."""
    return "golden_pass_rate" if (set_name, metric) == ("golden", "passed") else f"{set_name}_{metric}"


def task_comparison(base_rows: list[dict], tuned_rows: list[dict], alpha: float, seed: int = 0) -> dict:
    """Every paired generation metric → `paired` result, keyed by its metrics.json name."""
    return {metric_name(s, m): paired(bs, ts, alpha, seed)
            for (s, m), (bs, ts) in pair_rows(base_rows, tuned_rows).items()}


def describe(name: str, r: dict) -> str:
    """`val_contains 0.34 → 0.18 (paired, p=0.003, n=70)`; improvements add the CI of the difference."""
    head = f"{name} {r['base']:.2f} → {r['tuned']:.2f}"
    ci = f"{r['diff']:+.2f}, {100 * (1 - r.get('alpha', 0.05)):.0f}% CI [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}], "
    return f"{head} ({ci if r['verdict'] == 'improvement' else ''}paired, p={r['p']:.3g}, n={r['n']})"
