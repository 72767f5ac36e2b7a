"""The data plan: per-example weights, an early leak-free split, decontamination, the mix and the
curriculum. Everything a step drops goes to the ledger with a reason.

Split → decontaminate run on records (before tokenising); mix → curriculum run on encoded
examples, so the mix can count tokens and the achieved figures are what training sees.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, defaultdict
from typing import Optional

from ftx.data.ledger import Ledger
from ftx.errors import DataError
from ftx.spec.data import DataConfig, SplitConfig
from ftx.data.sources import text_view

HELD_OUT = ("val", "test", "general_eval")


class Examples(list):
    """A list of training examples; `ordered` tells the trainer to keep this order (curriculum)."""

    ordered: bool = False


def _bucket(key: str, salt: int) -> float:
    """A stable number in [0, 1) from content: the same record always lands in the same split."""
    h = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _text(rec: dict) -> str:
    """What splitting and decontamination compare: a preference pair's rejected reply counts too."""
    text = text_view(rec.get("messages"), rec.get("text"))
    return text + "\n" + rec["rejected"] if rec.get("rejected") else text


def join_prompt_clusters(records: list[dict]) -> int:
    """Preference pairs that share a prompt (several raters, several candidate replies) join one cluster,
    together with whatever near-duplicate cluster any of them is in, so one prompt never straddles splits
    (a held-out pair whose prompt was trained on would flatter preference accuracy). Returns the pairs joined."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    pairs = [r for r in records if r.get("rejected") is not None and r.get("messages")]
    for r in pairs:
        prompt = "prompt:" + hashlib.sha256(text_view(r["messages"][:-1], None).encode()).hexdigest()[:16]
        parent[find(prompt)] = find(split_key(r))
    joined = 0
    for r in records:
        key = split_key(r)
        if key in parent and find(key) != key:
            r["cluster"], joined = find(key), joined + 1
    return joined


def split_key(rec: dict) -> str:
    # Near-duplicate clusters (set by curation) share a key, so a cluster never straddles splits.
    return str(rec.get("cluster") or hashlib.sha256(_text(rec).encode()).hexdigest())


def assign_weights(records: list[dict], cfg: DataConfig) -> None:
    """weight = the source's weight, else its role's (synthetic records: weights.synthetic), × trust."""
    for rec in records:
        base = rec.get("weight")
        if base is None:
            base = getattr(cfg.weights, "synthetic" if rec.get("synthetic") else rec["role"])
        rec["weight"] = float(base) * float(rec.get("trust", 1.0))


def _held_out_role(rec: dict) -> Optional[str]:
    """Which held-out split a record may serve: real domain data → val/test, real general → general_eval."""
    if rec.get("synthetic") or rec["role"] == "synthetic":
        return None
    return rec["role"]


def split(records: list[dict], cfg: DataConfig, ledger: Optional[Ledger] = None) -> dict[str, list[dict]]:
    """Whole clusters go to one split, decided by the hash of the cluster key.

    A cluster with real domain records → train/val/test; otherwise one with real general records →
    train/general_eval; synthetic-only → train. Members of a held-out cluster that cannot be
    evaluated there (synthetic or other-role near-duplicates) are dropped, never put in train.
    """
    s = cfg.split
    # Records whose source or own `split` field declares their split go there as given; held-out declared
    # records claim their cluster: an undeclared (or train-declared) member of it is dropped, never trained on.
    declared = [r for r in records if r.get("split") in ("train", "val", "test")]
    held_keys = {split_key(r): r["split"] for r in declared if r["split"] != "train"}
    has = {sp: any(r["split"] == sp for r in declared) for sp in ("val", "test")}
    val_frac, test_frac = (0.0 if has["val"] else s.val), (0.0 if has["test"] else s.test)
    clusters: dict[str, list[dict]] = defaultdict(list)
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": [], "general_eval": []}
    for rec in records:
        if ledger is not None and (rec.get("split") in ("val", "test") or split_key(rec) in held_keys):
            ledger.record_in("split", 1)
        if rec.get("split") in ("val", "test"):
            out[rec["split"]].append(rec)
            if ledger is not None:
                ledger.keep("split")
        elif split_key(rec) in held_keys:
            if ledger is not None:
                ledger.drop("split", "near_duplicate_of_held_out", rec,
                            detail=f"same content or cluster as a declared {held_keys[split_key(rec)]} record")
        elif rec.get("split") == "train":
            clusters[f"declared-train:{split_key(rec)}"].append(rec)
        else:
            clusters[split_key(rec)].append(rec)
    buckets = {key: _bucket(key, s.seed) for key in clusters}
    kinds = {key: {_held_out_role(r) for r in members} for key, members in clusters.items()}
    target: dict[str, str] = {}
    for key, b in buckets.items():
        if key.startswith("declared-train:"):
            target[key] = "train"
        elif "domain" in kinds[key]:
            target[key] = "val" if b < val_frac else "test" if b < val_frac + test_frac else "train"
        elif "general" in kinds[key]:
            target[key] = "general_eval" if b < cfg.general_eval_fraction else "train"
        else:
            target[key] = "train"
    domain_keys = [k for k in clusters if "domain" in kinds[k] and not k.startswith("declared-train:")]
    if domain_keys and not has["val"] and not any(target[k] == "val" for k in domain_keys):
        # Tiny data: the lowest-hash domain cluster serves as validation rather than none at all.
        train_keys = [k for k in domain_keys if target[k] == "train"]
        if len(train_keys) > 1:
            target[min(train_keys, key=buckets.get)] = "val"
    for key, members in clusters.items():
        dest = target[key]
        wanted = None if dest == "train" else ("general" if dest == "general_eval" else "domain")
        for rec in members:
            if ledger is not None:
                ledger.record_in("split", 1)
            if wanted is None or _held_out_role(rec) == wanted:
                out[dest].append(rec)
                if ledger is not None:
                    ledger.keep("split")
            elif ledger is not None:
                ledger.drop("split", "near_duplicate_of_held_out", rec, detail=f"cluster {key} is in {dest}")
    position = {id(r): i for i, r in enumerate(records)}
    for part in out.values():  # input order, not cluster order: stable, readable manifests
        part.sort(key=lambda r: position[id(r)])
    if not out["val"]:
        raise DataError(f"data.split.val={s.val}: no domain record landed in the validation split "
                        f"({len(domain_keys)} domain clusters); raise the fraction or add data")
    if not any(r["role"] == "domain" for r in out["train"]):
        raise DataError("data.split: no domain record left for training; lower data.split.val/test or add data")
    return out


_WORD = re.compile(r"\w+")


def _ngrams(text: str, n: int) -> set:
    words = _WORD.findall(text.lower())
    if len(words) < n:  # short records: the whole record is one n-gram
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _common_ngrams(reference: list[dict], checked: list[dict], n: int, share: float, grams_of) -> set:
    """Template n-grams: the wording many records of *both* sides share (a question template, boilerplate),
    found in at least `share` of the reference records and of the checked records (and in 3 of each). They
    say nothing about a leak, so they count neither as hits nor in a record's total. Requiring both sides
    keeps a real leak visible even when it was copied into the reference several times: its n-grams are
    common there, but in one checked record only. `grams_of(rec)` gives a record's n-grams (computed once)."""
    if share <= 0 or not reference or not checked:
        return set()

    def df(records: list[dict]) -> Counter:
        c: Counter = Counter()
        for rec in records:
            c.update(g for g in grams_of(rec) if len(g) == n)
        return c

    ref, chk = df(reference), df(checked)
    need_ref, need_chk = max(3, share * len(reference)), max(3, share * len(checked))
    return {g for g, k in ref.items() if k >= need_ref and chk.get(g, 0) >= need_chk}


def _overlap_index(reference: list[dict], n: int, grams_of, ignore: frozenset | set = frozenset()):
    """A function rec → (n-grams of rec found in `reference`, n-grams of rec), leaving out the `ignore`d
    (template) n-grams. Records shorter than n words are one n-gram, checked as a whole phrase inside the
    reference text."""
    grams: set = set()
    for rec in reference:
        grams |= grams_of(rec)
    text = "\n".join(" " + " ".join(_WORD.findall(_text(r).lower())) + " " for r in reference)

    def found(rec: dict) -> tuple[int, int]:
        mine = grams_of(rec) - ignore
        return sum((g in grams) if len(g) == n else (f" {' '.join(g)} " in text) for g in mine), len(mine)

    return found


def decontaminate(parts: dict[str, list[dict]], cfg: SplitConfig, ledger: Optional[Ledger] = None) -> dict:
    """Drop held-out records whose word n-grams overlap the training split (fraction >= cfg.overlap).

    The exact-containment test of GPT-3-style decontamination: it catches the paraphrase-free
    leaks that slip past (or come without) curation's near-duplicate clustering. A held-out set the user
    declared (a source's or record's `split`) is kept as given; the direction turns: training records
    that overlap it are dropped (stage `decontaminate_train`, reason `overlaps_declared_<split>`).
    N-grams most records of both sides share (a question template such as "What is the MIME type of files
    with the extension …") are not evidence of a leak and are left out of the count
    (`cfg.common_ngram_share`; see _common_ngrams).
    """
    stats = {split: 0 for split in HELD_OUT}
    if not cfg.decontaminate:
        return stats
    cache: dict[int, tuple] = {}  # id(record) → (record, its n-grams): each record is tokenised once; the
    # record is held so its id cannot be reused while the cache lives

    def grams_of(rec: dict) -> set:
        if id(rec) not in cache:
            cache[id(rec)] = (rec, _ngrams(_text(rec), cfg.ngram))
        return cache[id(rec)][1]

    # A declared held-out set is evaluated as given: the training records that overlap it go instead.
    for split in ("val", "test"):
        declared = [r for r in parts[split] if r.get("split") == split]
        if not declared:
            continue
        common = _common_ngrams(declared, parts["train"], cfg.ngram, cfg.common_ngram_share, grams_of)
        found = _overlap_index(declared, cfg.ngram, grams_of, common)
        kept = []
        for rec in parts["train"]:
            hits, total = found(rec)
            if ledger is not None:
                ledger.record_in("decontaminate_train", 1)
            if total and hits / total >= cfg.overlap:
                stats[f"train_vs_declared_{split}"] = stats.get(f"train_vs_declared_{split}", 0) + 1
                if ledger is not None:
                    ledger.drop("decontaminate_train", f"overlaps_declared_{split}", rec, score=round(hits / total, 4),
                                detail=f"{hits}/{total} {cfg.ngram}-grams found in the declared {split} set")
                continue
            kept.append(rec)
            if ledger is not None:
                ledger.keep("decontaminate_train")
        parts["train"] = kept
    if not any(r["role"] == "domain" for r in parts["train"]):
        raise DataError("data.split.decontaminate: every domain training record overlaps a declared val/test "
                        "source; check that the held-out file is not a copy of the training file")
    held = [r for split in HELD_OUT for r in parts[split] if r.get("split") != split]
    found = _overlap_index(parts["train"], cfg.ngram, grams_of,
                           _common_ngrams(parts["train"], held, cfg.ngram, cfg.common_ngram_share, grams_of))
    for split in HELD_OUT:
        kept = []
        for rec in parts[split]:
            if ledger is not None:
                ledger.record_in("decontaminate", 1)
            if rec.get("split") == split:  # declared: kept as given (train was cleaned against it above)
                kept.append(rec)
                if ledger is not None:
                    ledger.keep("decontaminate")
                continue
            hits, total = found(rec)
            frac = hits / total if total else 0.0
            if total and frac >= cfg.overlap:
                stats[split] += 1
                if ledger is not None:
                    ledger.drop("decontaminate", f"overlaps_train_{split}", rec, score=round(frac, 4),
                                detail=f"{hits}/{total} {cfg.ngram}-grams found in train")
                continue
            kept.append(rec)
            if ledger is not None:
                ledger.keep("decontaminate")
        parts[split] = kept
    if not parts["val"]:
        raise DataError("data.split.decontaminate: every validation record overlaps the training split; "
                        "deduplicate the data (curation), or raise data.split.overlap / data.split.ngram")
    return stats


def _pools(examples: list[dict], cfg: DataConfig) -> tuple[dict, dict]:
    """Mix pools and their target shares of the final mix."""
    m = cfg.mix
    r = m.domain_ratio
    if m.synthetic_ratio is None:
        pools = {"domain": [e for e in examples if e["role"] != "general"],
                 "general": [e for e in examples if e["role"] == "general"]}
        return pools, {"domain": r, "general": 1.0 - r}
    s = m.synthetic_ratio
    pools = {role: [e for e in examples if e["role"] == role] for role in ("domain", "synthetic", "general")}
    return pools, {"domain": r - s, "synthetic": s, "general": 1.0 - r}


def _units(ex: dict, unit: str) -> int:
    return 1 if unit == "examples" else len(ex["input_ids"])


def _select(pool: list[dict], target: float, unit: str, repeat: bool, rng: random.Random) -> tuple[list, list]:
    """Examples summing to `target` units, to within half an example: (chosen, left out).

    Every pass adds, in a fresh random order, each example that brings the total closer to the
    target; with `repeat` (upsampling) passes continue, so every record appears before any repeats.
    """
    if not repeat and target >= sum(_units(e, unit) for e in pool) - 1e-6:
        return list(pool), []
    chosen, got, rep = [], 0, 0
    smallest = min((_units(e, unit) for e in pool), default=1)
    while True:
        order = list(pool)
        rng.shuffle(order)
        for e in order:
            u = _units(e, unit)
            if got + u / 2 <= target:
                chosen.append(e if rep == 0 else dict(e, id=f"{e['id']}#rep{rep}"))
                got += u
        rep += 1
        if not (repeat and got + smallest / 2 <= target):
            break
    taken = {id(e) for e in chosen}
    return chosen, [e for e in pool if id(e) not in taken]


def mix(examples: list[dict], cfg: DataConfig, ledger: Optional[Ledger] = None) -> tuple[list[dict], dict]:
    """Apply data.mix (ratios counted in data.mix.unit) to the encoded training examples."""
    m = cfg.mix
    rng = random.Random(m.seed)
    out: list[dict] = list(examples)
    target_shares = None
    if m.domain_ratio is not None:
        pools, shares = _pools(examples, cfg)
        target_shares = shares
        avail = {k: sum(_units(e, m.unit) for e in p) for k, p in pools.items()}
        live = {k: p for k, p in shares.items() if p > 0}
        for k in live:
            if not pools[k]:
                cause = ledger.cause(role=k) if ledger is not None else ""
                raise DataError(f"data.mix: the training split has no {k} example left for a {live[k]:g} share "
                                f"of the mix (check the {k} sources, or data.mix.domain_ratio)"
                                + (f"; earlier, {cause}" if cause else ""))
        if m.on_short == "downsample":
            total = min(avail[k] / p for k, p in live.items())
        else:  # anchor on the domain side; others are cut or (upsample) repeated to fit it
            anchor = next(k for k in ("domain", "synthetic", "general") if k in live)
            total = avail[anchor] / live[anchor]
            short = {k: (avail[k], p * total) for k, p in live.items() if avail[k] < p * total - 0.5}
            if short and m.on_short == "error":
                k, (have, need) = next(iter(short.items()))
                raise DataError(f"data.mix.domain_ratio={m.domain_ratio}: needs {need:.0f} {k} {m.unit}, only "
                                f"{have} available (set data.mix.on_short=downsample|upsample)")
        out = []
        for k, pool in pools.items():
            chosen, left = _select(pool, shares[k] * total, m.unit, m.on_short == "upsample", rng)
            out.extend(chosen)
            if ledger is not None:
                ledger.record_in("mix", len(pool))
                ledger.keep("mix", len(pool) - len(left))
                for e in left:
                    ledger.drop("mix", f"downsampled_{k}", {"id": e["id"], "source": e["source"]},
                                detail=f"{m.unit} ratio")
    rng.shuffle(out)
    return out, achieved_mix(out, m.unit, m.domain_ratio, target_shares)


def achieved_mix(examples: list[dict], unit: str, ratio: Optional[float], shares: Optional[dict]) -> dict:
    by_source: dict = defaultdict(lambda: {"examples": 0, "tokens": 0, "repeats": 0})
    by_role: dict = defaultdict(lambda: {"examples": 0, "tokens": 0})
    for e in examples:
        n = len(e["input_ids"])
        for row in (by_source[e["source"]], by_role[e["role"]]):
            row["examples"] += 1
            row["tokens"] += n
        by_source[e["source"]]["repeats"] += "#rep" in str(e["id"])
    n_ex, n_tok = len(examples), sum(len(e["input_ids"]) for e in examples)
    dom_ex = sum(v["examples"] for k, v in by_role.items() if k != "general")
    dom_tok = sum(v["tokens"] for k, v in by_role.items() if k != "general")
    out = {"unit": unit, "target_domain_ratio": ratio, "target_shares": shares,
           "examples": n_ex, "tokens": n_tok,
           "domain_ratio_examples": round(dom_ex / max(n_ex, 1), 4),
           "domain_ratio_tokens": round(dom_tok / max(n_tok, 1), 4),
           "by_role": dict(by_role), "by_source": dict(by_source)}
    if ratio is not None:
        # How far the domain side is from its target, in examples (tokens: in mean examples).
        got, tot = (dom_ex, n_ex) if unit == "examples" else (dom_tok, n_tok)
        per_ex = 1 if unit == "examples" else n_tok / max(n_ex, 1)
        out["off_target_examples"] = round(abs(got - ratio * tot) / per_ex, 3)
    return out


def _score(ex: dict, name: str) -> Optional[float]:
    if name == "length":
        return float(len(ex["input_ids"]))
    v = (ex.get("scores") or {}).get(name)
    return float(v) if isinstance(v, (int, float)) else None


def curriculum(examples: list[dict], cfg: DataConfig) -> tuple[Examples, dict]:
    """Order the training examples (off: shuffled by the trainer every epoch)."""
    c = cfg.curriculum
    out = Examples(examples)
    if c.strategy == "none":
        return out, {"strategy": "none"}
    scores = [_score(e, c.score) for e in examples]
    missing = [i for i, s in enumerate(scores) if s is None]
    if len(missing) == len(examples):
        raise DataError(f"data.curriculum.score={c.score!r}: no training example has this score (curation's "
                        "scoring stages set `scores`, e.g. relevance; or use score=length)")
    sign = -1.0 if c.descending else 1.0
    ranked = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: (sign * scores[i], i))
    rng = random.Random(cfg.mix.seed)
    if c.strategy == "score":
        order, bands = ranked, [len(ranked)]
    else:  # stages: bands cut at score quantiles, highest first; shuffled within a band
        cuts = [0] + [round(q * len(ranked)) for q in c.stages] + [len(ranked)]
        order, bands = [], []
        for lo, hi in zip(cuts, cuts[1:]):
            band = ranked[lo:hi]
            rng.shuffle(band)
            order += band
            bands.append(len(band))
    if missing:  # e.g. general data that curation did not score: a last, shuffled stage
        rng.shuffle(missing)
        order += missing
        bands.append(len(missing))
    out = Examples(examples[i] for i in order)
    out.ordered = True
    return out, {"strategy": c.strategy, "score": c.score, "descending": c.descending, "stage_sizes": bands,
                 "unscored_last": len(missing), "first_scores": [scores[i] for i in order[:5]]}
