"""Curation measured on real corpora (built by benchmarks/corpora.py from Debian packages).

    python benchmarks/corpora.py                 # once: builds ~/.cache/ftx/corpora/{syscalls,git,python-pkg}
    python benchmarks/curation_real.py           # every corpus
    python benchmarks/curation_real.py --only git --rounds 2 --embedding-docs 0

Per corpus it prints:
  - the false-drop rate of every filter on the corpus' clean records (all of them are real, unedited
    documentation or prose), overall and on the in-domain records; pii counts masked records;
  - relevance AP on the held-out test labels for: the TF-IDF centroid (ftx's `tfidf` scorer), a plain
    logistic regression on the same labels (word TF-IDF, seeds + dev), and ftx's `learned` scorer; and
    precision/recall on the test labels at the threshold calibrated on cross-fitted dev scores
    (target precision 0.8 at 95% confidence, best-F1 fallback);
  - AP after 0..R active-learning rounds of 20 oracle labels (uncertain + diverse picks);
  - near-dup, for the datasketch and rensa backends side by side: recall on the natural and planted pairs,
    precision of the drops and of same-cluster pairs judged by exact Jaccard (the corpora hold genuine
    near-duplicates nobody listed), and stage docs/s;
  - embedding docs/s: the scorer as it was (batches of 64 in input order) vs ftx.data.curate.embed now,
    on the same texts, and the cosine between their vectors.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftx.data.curate import relevance, scorers  # noqa: E402
from ftx.data.curate.pipeline import run as run_stages  # noqa: E402
from ftx.data.ledger import Ledger  # noqa: E402
from ftx.spec.curation import CurationConfig, RelevanceConfig  # noqa: E402

CORPORA = Path("~/.cache/ftx/corpora").expanduser()


def load(name: str) -> dict:
    d = CORPORA / name
    if not (d / "corpus.jsonl").is_file():
        sys.exit(f"curation_real: {d} is missing: run python benchmarks/corpora.py first")
    rd = lambda f: [json.loads(line) for line in open(d / f, encoding="utf-8")]  # noqa: E731
    test = rd("test_labels.jsonl")
    return {"corpus": rd("corpus.jsonl"), "seeds": [r["text"] for r in rd("seeds.jsonl")], "dev": rd("dev.jsonl"),
            "test": {r["id"]: r["label"] for r in test}, "kind": {r["id"]: r["kind"] for r in test},
            "pairs": rd("near_dups.jsonl")}


def record(r: dict) -> dict:
    return {"id": r["id"], "source": "bench", "role": "domain", "synthetic": False, "weight": 1.0,
            "messages": None, "text": r["text"]}


def stage_cfg(*stages: str) -> CurationConfig:
    cfg = CurationConfig(enabled=True, stages=list(stages), cache_dir=None)
    cfg.blocklist.terms = ["internal use only", "do not distribute"]  # as curation=default
    cfg.check()
    return cfg


def filters(c: dict) -> list[str]:
    records = [record(r) for r in c["corpus"]]
    domain = {rid for rid, kind in c["kind"].items() if kind == "domain"}
    domain |= {r["id"] for r in c["dev"] if r["label"] == 1}
    out = []
    for st in ("quality", "language", "pii", "blocklist"):
        ledger = Ledger()
        t0 = time.perf_counter()
        res = run_stages(records, stage_cfg(st), ledger)
        dt = time.perf_counter() - t0
        dropped = [d for d in ledger.dropped_records if d["stage"] == f"curate:{st}"]
        reasons = Counter(d["reason"] for d in dropped)
        nd = sum(d["id"] in domain for d in dropped)
        modified = sum(res.stages[0].modified_by_reason.values()) if st == "pii" else 0
        extra = f", masked {modified} ({modified / len(records):.2%})" if st == "pii" else ""
        out.append(f"  {st:<10} dropped {len(dropped):>4}/{len(records)} = {len(dropped) / len(records):6.2%}  "
                   f"in-domain {nd}/{len(domain)} = {nd / max(len(domain), 1):6.2%}{extra}  "
                   f"{dict(reasons.most_common(4)) or ''}  {len(records) / dt:,.0f} docs/s")
    return out


def ap(y, s) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s))


def plain_lr(seeds, dev, corpus_texts):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2).fit(corpus_texts)
    X = vec.transform(seeds + [t for t, _ in dev])
    y = np.r_[np.ones(len(seeds)), [l for _, l in dev]]
    m = LogisticRegression(max_iter=2000).fit(X, y)
    return m.predict_proba(vec.transform(corpus_texts))[:, 1]


def relevance_rows(c: dict, rounds: int, per_round: int) -> list[str]:
    texts = [r["text"] for r in c["corpus"]]
    ids = [r["id"] for r in c["corpus"]]
    test_idx = np.array([i for i, x in enumerate(ids) if x in c["test"]])
    yt = np.array([c["test"][ids[i]] for i in test_idx])
    dev = [(r["text"], r["label"]) for r in c["dev"]]
    seeds = c["seeds"]
    rows = []
    t0 = time.perf_counter()
    centroid = scorers.fit(RelevanceConfig(scorer="tfidf"), seeds, texts)(texts)
    rows.append(f"  centroid (tfidf)   AP {ap(yt, centroid[test_idx]):.3f}  ({time.perf_counter() - t0:.0f}s)")
    t0 = time.perf_counter()
    lr = plain_lr(seeds, dev, texts)
    rows.append(f"  plain LR           AP {ap(yt, lr[test_idx]):.3f}  ({time.perf_counter() - t0:.0f}s)")

    cfg = RelevanceConfig(scorer="learned")
    labelled_ids = {r["id"] for r in c["dev"]}
    feedback: list[tuple[str, int]] = []
    rng = random.Random(0)
    features = None
    for rnd in range(rounds + 1):
        t0 = time.perf_counter()
        fixed = [(t, 1) for t in seeds]
        lab = dev + feedback
        pool = [t for i, t in enumerate(texts) if ids[i] not in labelled_ids]
        unl = rng.sample(pool, min(cfg.background_sample, len(pool)))
        model = scorers.Learned(cfg, texts, fixed + lab, unl, features)
        features = model.features  # unsupervised (IDF on the corpus): the same every round
        s = model(texts)
        oof = scorers.crossfit(cfg, texts, fixed, lab, unl, cfg.crossfit_folds, features)
        ly = np.array([y for _, y in lab])
        thr, curve = relevance.calibrate(oof, ly, 0.8, 0.95, "best_f1")
        keep = test_idx[[ids[i] not in labelled_ids for i in test_idx]]
        y_keep = np.array([c["test"][ids[i]] for i in keep])
        pred = s[keep] >= thr
        tp = int((pred & (y_keep == 1)).sum())
        prec, rec = tp / max(int(pred.sum()), 1), tp / max(int(y_keep.sum()), 1)
        name = "learned" if rnd == 0 else f"  + round {rnd}"
        rows.append(f"  {name:<18} AP {ap(y_keep, s[keep]):.3f}  labels {len(seeds)}+{len(lab)}  threshold {thr:.3f}"
                    f"{' (best-F1 fallback)' if curve.get('fallback') else ''}: test precision {prec:.3f} "
                    f"recall {rec:.3f}; dev AP out-of-fold {ap(ly, oof):.3f}  ({time.perf_counter() - t0:.0f}s)")
        if rnd == rounds:
            break
        cand = np.array([i for i in range(len(texts)) if ids[i] not in labelled_ids and ids[i] in c["test"]])
        picked = relevance.select_for_labelling(s, thr, cand, per_round, texts)
        for i in picked:
            labelled_ids.add(ids[i])
            feedback.append((texts[i], c["test"][ids[i]]))
    return rows


def near_dup_rows(c: dict) -> list[str]:
    """Recall on the listed (planted + natural) pairs; precision judged pair by pair, because the real corpora
    hold genuine near-duplicates nobody listed (fortunes shipped twice with other line breaks, man pages in two
    packages, Rust feature metapackages): a predicted pair is right when its exact char-5 shingle Jaccard
    reaches the threshold, and precision against the listed pairs alone is shown too."""
    from itertools import combinations

    from ftx.data.curate import near_dedup

    records = [record(r) for r in c["corpus"]]
    truth = {frozenset((p["a"], p["b"])) for p in c["pairs"]}
    text = {r["id"]: r["text"] for r in c["corpus"]}
    nd_cfg = stage_cfg("near_dedup").near_dedup
    sets: dict = {}

    def jac(a: str, b: str) -> float:
        for x in (a, b):
            if x not in sets:
                sets[x] = set(near_dedup.shingles(text[x], nd_cfg.shingle, nd_cfg.unit))
        return len(sets[a] & sets[b]) / max(len(sets[a] | sets[b]), 1)

    rows, times = {}, {}
    for backend in ("datasketch", "rensa", "datasketch", "rensa"):  # twice, alternated: the faster of two runs
        cfg = stage_cfg("near_dedup")
        cfg.near_dedup.backend = backend
        ledger = Ledger()
        t0 = time.perf_counter()
        res = run_stages(records, cfg, ledger)
        dt = time.perf_counter() - t0
        times[backend] = dt = min(dt, times.get(backend, dt))
        drops = [(d["id"], d["detail"].split("near-duplicate of ", 1)[1].split(" ", 1)[0])
                 for d in ledger.dropped_records if d["stage"] == "curate:near_dedup"]
        cluster = {r["id"]: r["cluster"] for r in res.kept}
        for d in ledger.dropped_records:
            cluster[d["id"]] = d["record"].get("cluster")
        groups: dict = {}
        for rid, cl in cluster.items():
            if cl and cl.startswith("n"):
                groups.setdefault(cl, []).append(rid)
        same = {frozenset(p) for g in groups.values() for p in combinations(g, 2)}
        found = len(truth & same)
        dropped = {a for a, _ in drops}
        # a listed pair is served when one side is dropped for a record it is a near-duplicate of
        served = sum(1 for p in truth if set(p) & dropped)
        by_edit = Counter(p["edit"] for p in c["pairs"])
        hit = Counter(p["edit"] for p in c["pairs"] if frozenset((p["a"], p["b"])) in same)
        per = ", ".join(f"{k} {hit[k]}/{v}" for k, v in sorted(by_edit.items()))
        drop_ok = sum(jac(a, b) >= nd_cfg.threshold for a, b in drops)
        sample = random.Random(0).sample(sorted(same, key=sorted), min(len(same), 5000))
        pair_ok = sum(jac(*sorted(p)) >= nd_cfg.threshold for p in sample)
        rows[backend] = (f"  near_dedup[{backend}]  pair recall {found / max(len(truth), 1):.3f} ({found}/{len(truth)}; {per}); "
                    f"listed pairs with a side dropped {served}/{len(truth)}; drops {len(drops)}, precision "
                    f"{drop_ok / max(len(drops), 1):.3f} (exact Jaccard to the kept record >= {nd_cfg.threshold}); "
                    f"same-cluster pairs {len(same)}: precision {pair_ok / max(len(sample), 1):.3f} by exact Jaccard, "
                    f"{found / max(len(same), 1):.3f} against the listed pairs only  {len(records) / dt:,.0f} docs/s")
    return list(rows.values()) + [f"  near_dedup speed: rensa {times['datasketch'] / times['rensa']:.1f}x datasketch "
                                  "(same records, same run, faster of two alternated runs each)"]


def embed_before(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """ftx.data.curate.embed.embed as it was before length sorting and the cache (input order, pad to longest)."""
    import contextlib

    import torch

    from ftx.data.curate import embed

    tok, model = embed._load(str(embed.model_path(None)))
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if embed.use_bf16("auto") else contextlib.nullcontext()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=embed.MAX_TOKENS,
                      return_tensors="pt")
            with cast:
                hidden = model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
    return np.concatenate(out)


def embedding_rows(c: dict, n: int) -> list[str]:
    from ftx.data.curate import embed

    texts = random.Random(0).sample([r["text"] for r in c["corpus"]], n)
    embed.embed(texts[:8])  # load the model outside the timings
    embed.clear_cache()
    t0 = time.perf_counter()
    old = embed_before(texts)
    t_old = time.perf_counter() - t0
    embed.clear_cache()
    t0 = time.perf_counter()
    new = embed.embed(texts)
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    embed.embed(texts)
    t_hit = time.perf_counter() - t0
    cos = (old * new).sum(1)
    return [f"  embedding   {n} texts: before {n / t_old:,.0f} docs/s, now {n / t_new:,.0f} docs/s "
            f"({t_old / t_new:.1f}x), cached re-run {n / max(t_hit, 1e-9):,.0f} docs/s; cosine to before: "
            f"min {cos.min():.5f}, mean {cos.mean():.5f}"]


def main(argv=None) -> int:
    ap_ = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap_.add_argument("--only", action="append", choices=["syscalls", "git", "python-pkg"])
    ap_.add_argument("--rounds", type=int, default=4)
    ap_.add_argument("--per-round", type=int, default=20)
    ap_.add_argument("--embedding-docs", type=int, default=500)
    ap_.add_argument("--skip", action="append", default=[], choices=["filters", "relevance", "near_dup"])
    args = ap_.parse_args(argv)
    for name in args.only or ["syscalls", "git", "python-pkg"]:
        c = load(name)
        print(f"## {name}: {len(c['corpus'])} records, {len(c['seeds'])} seeds, {len(c['dev'])} dev "
              f"({sum(r['label'] for r in c['dev'])} relevant), {len(c['test'])} test labels", flush=True)
        for part, fn in (("filters", lambda: filters(c)), ("relevance", lambda: relevance_rows(c, args.rounds, args.per_round)),
                         ("near_dup", lambda: near_dup_rows(c))):
            if part not in args.skip:
                for line in fn():
                    print(line, flush=True)
        if args.embedding_docs:
            for line in embedding_rows(c, args.embedding_docs):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
