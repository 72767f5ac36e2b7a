"""`curation.engine=ray`: the curation stages as a Ray Data pipeline (docs/curation.md#ray).

    records or Parquet/JSONL shards → Ray Dataset (table rows + `_pos`, the input order)
      per-record stages   map_batches: the stage module's own `run` on each block (a `datasets` table)
      exact_dedup         map_batches (the stage's key, a partition from it) → groupby(partition).map_groups:
                          per key, first by `_pos` kept
      near_dedup          map_batches (the stage's MinHash signatures) → one row per LSH band, a partition from
                          the band key → groupby(partition).map_groups: candidate pairs by the estimate →
                          exact Jaccard (near_dedup's rule) on the driver for up to ray.driver_verify_pairs
                          pairs (texts of candidates only), else on the workers (semi-join + two joins) →
                          connected components + near_dedup.assign on the driver → map_batches marks the drops
      relevance           fitted once (seeds, labels, the first curation.ray.fit_sample texts) → map_batches
    group-bys hash into partitions (about block_rows rows each): Ray keeps a block per group, so grouping by
    the key itself costs a call and a driver-side block reference per key or bucket.
    every stage: materialised (Ray's object store, spilled to disk), drops counted by reason and kept
    for the ledger (in memory) or written as dropped/ shards (`curate_files`), the kept rows go on.

The stage logic is the stage modules' own (keys, signatures, verdicts, details); this module only
moves it onto Ray's primitives. Results equal the local engine's: same kept ids in the same order,
same drop reasons and details, same ledger counts (tests/integration/test_curate_ray.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from ftx.data.curate import exact_dedup, near_dedup, relevance
from ftx.data.curate.table import VERDICT, Context, row_to_record, texts, to_dataset
from ftx.data.ledger import Ledger
from ftx.errors import ConfigError
from ftx.runs import write_json
from ftx.spec.curation import CurationConfig, ray_missing

log = logging.getLogger(__name__)
PREFIX = "curate:"
PER_RECORD = ("normalize", "quality", "language", "pii", "blocklist")


# -- the cluster ----------------------------------------------------------------------------------

def connect(cfg: CurationConfig):
    """ray.init: the configured cluster, else a local one sized to this machine (one line on failure)."""
    missing = ray_missing()
    if missing:
        raise ConfigError(f"curation.engine: {missing}")
    import ray
    if ray.is_initialized():
        return ray
    address = cfg.ray.address
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address and address != "auto":
        _reachable(address)  # ray.init retries an unreachable address for minutes
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            import os

            ray.init(num_cpus=cfg.ray.num_cpus or os.cpu_count(), **kwargs)
    except Exception as e:  # ConnectionError, a bad address, a version mismatch with the cluster
        first = " ".join(str(e).split())[:300] or type(e).__name__
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        raise ConfigError(f"curation.ray.address: cannot connect to {where}: {first}") from None
    from ray.data import DataContext

    for name in ("ray", "ray.data"):  # Ray Data logs every execution plan at INFO: ftx logs the stages itself
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"curation.ray.address: {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"curation.ray.address: cannot connect to the Ray cluster at {address!r}: "
                          f"{e.strerror or e} (start it with `ray start --head`, or set curation.ray.address=null "
                          "for a local cluster)") from None


# -- blocks <-> the stage modules -------------------------------------------------------------------

def _plain(tbl):
    return tbl.replace_schema_metadata(None)


def _hf(tbl):
    """A Ray block (pyarrow) as the `datasets` table the stage modules take."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    return Dataset(InMemoryTable(tbl))


def _arrow(ds):
    return _plain(ds.with_format("arrow")[:])


def _per_record(tbl, name: str, cfg: CurationConfig):
    """A per-record stage module's own `run` on one block; `_pos` rides along untouched."""
    import importlib

    module = importlib.import_module(f"ftx.data.curate.{name}")
    pos = tbl.column("_pos")
    out, _ = module.run(_hf(tbl.drop_columns(["_pos"])), cfg, Context(1, cfg.batch_size))
    return _arrow(out).append_column("_pos", pos)


def _exact_keys(tbl, cfg: CurationConfig, parts: int):
    import pyarrow as pa

    c = cfg.exact_dedup
    keys = exact_dedup._keys(tbl.select(["messages", "text"]).to_pydict(), c.lowercase, c.ignore_punctuation)["_key"]
    part = [int(k[:15], 16) % parts for k in keys]  # the key is a SHA-1 hex digest: its prefix is uniform
    return tbl.append_column("_key", pa.array(keys, pa.string())).append_column("_part", pa.array(part, pa.int32()))


def _exact_group(tbl):
    """One partition's rows (every row of a key lands in the same partition): per key, the first by input
    position is kept, the others name it (exact_dedup's verdicts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tbl = tbl.take(pc.sort_indices(tbl, [("_key", "ascending"), ("_pos", "ascending")]))
    n, ids, keys = len(tbl), tbl.column("id").to_pylist(), tbl.column("_key").to_pylist()
    drop, detail, score = [""] * n, [""] * n, [float("nan")] * n
    cluster = tbl.column("cluster").to_pylist()
    first = 0
    for i in range(n):
        if i and keys[i] == keys[first]:
            drop[i], detail[i], score[i] = "exact_duplicate", f"duplicate of {ids[first]}", 1.0
        else:
            first = i
        cluster[i] = cluster[i] or f"x{keys[i][:16]}"
    tbl = tbl.drop_columns(["_key", "_part", "cluster"])
    return _with_verdicts(tbl, drop, score, detail, [""] * n).append_column("cluster", pa.array(cluster, pa.string()))


def _with_verdicts(tbl, drop, score, detail, mod):
    import pyarrow as pa

    for name, values, typ in (("_drop", drop, pa.string()), ("_score", score, pa.float64()),
                              ("_detail", detail, pa.string()), ("_mod", mod, pa.string())):
        if name in tbl.column_names:
            tbl = tbl.drop_columns([name])
        tbl = tbl.append_column(name, pa.array(values, typ))
    return tbl


def _sign(tbl, cfg: CurationConfig):
    import pyarrow as pa

    c = cfg.near_dedup
    sigs = near_dedup.signatures(texts(tbl.select(["messages", "text"]).to_pydict()), c)
    flat = np.concatenate(sigs).astype(np.uint32) if sigs else np.zeros(0, np.uint32)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.uint32()), c.num_perm)
    return tbl.append_column("_mh", arr)


def _bands(tbl, ranges: list, keep_longest: bool, parts: int):
    """One row per (record, LSH band): the band's slice of the signature as the grouping key, and a
    partition from it (all rows of one bucket share a partition)."""
    import pyarrow as pa

    sigs = tbl.column("_mh").combine_chunks().flatten().to_numpy().reshape(len(tbl), -1)
    pos, ids = tbl.column("_pos").to_numpy(), tbl.column("id").to_pylist()
    lengths = ([len(t) for t in texts(tbl.select(["messages", "text"]).to_pydict())] if keep_longest
               else [0] * len(tbl))
    cols = {"_band": [], "_bkey": [], "_part": [], "_pos": [], "id": [], "_len": [], "_mh": []}
    for b, (lo, hi) in enumerate(ranges):
        keys = [s[lo:hi].tobytes() for s in sigs]
        # a MinHash value is uniform over uint32: the band's first one, mixed with the band, picks the partition
        part = (sigs[:, lo].astype(np.uint64) * np.uint64(2654435761) + np.uint64(b)) % np.uint64(parts)
        cols["_part"].append(part.astype(np.int32))
        cols["_band"] += [b] * len(tbl)
        cols["_bkey"] += keys
        cols["_pos"] += pos.tolist()
        cols["id"] += ids
        cols["_len"] += lengths
        cols["_mh"].append(sigs)
    mh = np.concatenate(cols.pop("_mh")) if cols["_pos"] else np.zeros((0, sigs.shape[1]), np.uint32)
    part = np.concatenate(cols.pop("_part")) if cols["_pos"] else np.zeros(0, np.int32)
    out = pa.table({"_band": pa.array(cols["_band"], pa.int32()), "_bkey": pa.array(cols["_bkey"], pa.binary()),
                    "_part": pa.array(part, pa.int32()),
                    "_pos": pa.array(cols["_pos"], pa.int64()), "id": pa.array(cols["id"], pa.string()),
                    "_len": pa.array(cols["_len"], pa.int64())})
    return out.append_column("_mh", pa.FixedSizeListArray.from_arrays(pa.array(mh.ravel(), pa.uint32()), sigs.shape[1]))


def _pairs(tbl, threshold: float):
    """The candidate pairs of one partition's LSH buckets whose estimated Jaccard reaches `threshold` (the
    stage's threshold less near_dedup.margin, as near_dedup.candidates), verified by exact Jaccard after (see
    _stage). One call per partition, not per bucket: Ray keeps a block per group, and a corpus has ~one
    bucket per record and band (the driver's memory grew with them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.int64()), "s": pa.array([], pa.float64()),
                      "a_id": pa.array([], pa.string()), "b_id": pa.array([], pa.string()),
                      "a_len": pa.array([], pa.int64()), "b_len": pa.array([], pa.int64())})
    if len(tbl) < 2:
        return empty
    tbl = tbl.take(pc.sort_indices(tbl, [("_band", "ascending"), ("_bkey", "ascending")]))
    bands, bkeys = tbl.column("_band").to_pylist(), tbl.column("_bkey").to_pylist()
    sigs = tbl.column("_mh").combine_chunks().flatten().to_numpy().reshape(len(tbl), -1)
    pos, ids, lens = tbl.column("_pos").to_numpy(), tbl.column("id").to_pylist(), tbl.column("_len").to_numpy()
    rows = {k: [] for k in empty.column_names}
    start = 0
    for end in range(1, len(tbl) + 1):
        if end < len(tbl) and bands[end] == bands[start] and bkeys[end] == bkeys[start]:
            continue
        if end - start > 1:
            _bucket_pairs(range(start, end), sigs, pos, ids, lens, threshold, rows)
        start = end
    return pa.table({k: pa.array(v, empty.schema.field(k).type) for k, v in rows.items()})


def _bucket_pairs(members: range, sigs, pos, ids, lens, threshold: float, rows: dict) -> None:
    for x in members:
        others = np.arange(x + 1, members.stop)
        jac = (sigs[others] == sigs[x]).mean(axis=1)
        for y, s in zip(others[jac >= threshold], jac[jac >= threshold]):
            a, b = (x, int(y)) if pos[x] < pos[y] else (int(y), x)
            for k, v in (("a", int(pos[a])), ("b", int(pos[b])), ("s", float(s)), ("a_id", ids[a]), ("b_id", ids[b]),
                         ("a_len", int(lens[a])), ("b_len", int(lens[b]))):
                rows[k].append(v)


def _near_plan(verified: list, ids: dict, lens: dict, cfg: CurationConfig) -> dict:
    """The local stage's decisions on the verified pairs (driver side: O(pairs), not O(records)): connected
    components share one cluster id, named after the member first in preference order; near_dedup.assign
    picks who is dropped for whom. → per member position: (cluster id, representative id or None, jaccard)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not verified:
        return {}
    a = np.array([i for i, _, _ in verified], np.int64)
    b = np.array([j for _, j, _ in verified], np.int64)
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    graph = coo_matrix((np.ones(len(a)), (inv[:len(a)], inv[len(a):])), shape=(len(nodes), len(nodes)))
    labels = connected_components(graph, directed=False)[1]
    order = sorted(nodes.tolist(), key=(lambda p: (-lens[p], p)) if cfg.near_dedup.keep == "longest" else None)
    rank = {p: r for r, p in enumerate(order)}
    groups: dict[int, list[int]] = {}
    for node, lab in zip(nodes.tolist(), labels.tolist()):
        groups.setdefault(lab, []).append(node)
    dropped_to = near_dedup.assign(len(nodes), verified, order)
    plan = {}
    for group in groups.values():
        first = min(group, key=rank.__getitem__)
        cid = "n" + hashlib.sha1(ids[first].encode("utf-8")).hexdigest()[:16]
        for p in group:
            rep, sim = dropped_to.get(p, (None, None))
            plan[p] = (cid, None if rep is None else ids[rep], sim)
    return plan


def _near_mark(tbl, plan: dict, cfg: CurationConfig):
    import pyarrow as pa

    n = len(tbl)
    drop, score, detail = [""] * n, [float("nan")] * n, [""] * n
    cluster = tbl.column("cluster").to_pylist()
    for i, p in enumerate(tbl.column("_pos").to_pylist()):
        if p not in plan:
            continue
        cid, rep_id, sim = plan[p]
        cluster[i] = cid
        if rep_id is not None and cfg.near_dedup.action == "drop":
            drop[i], score[i] = "near_duplicate", sim
            detail[i] = f"near-duplicate of {rep_id} (cluster {cid}, jaccard {sim:.2f})"
    tbl = tbl.drop_columns(["_mh", "cluster"])
    return _with_verdicts(tbl, drop, score, detail, [""] * n).append_column("cluster", pa.array(cluster, pa.string()))


def _relevance_batch(tbl, scorer, threshold: float, cfg: CurationConfig):
    """The fitted scorer on one block; verdicts and details as the relevance stage writes them."""
    import pyarrow as pa

    import ray

    r = cfg.relevance
    scorer = ray.get(scorer) if isinstance(scorer, ray.ObjectRef) else scorer
    scores = np.asarray(scorer(texts(tbl.select(["messages", "text"]).to_pydict())), dtype=float)
    applies = np.array([role in r.roles for role in tbl.column("role").to_pylist()], dtype=bool)
    n = len(tbl)
    drop, score, detail = [""] * n, [float("nan")] * n, [""] * n
    for i in np.flatnonzero(applies & (scores < threshold)):
        drop[i], score[i] = "off_domain", float(scores[i])
        detail[i] = relevance.off_domain(float(scores[i]), threshold, r)
    if "s_relevance" in tbl.column_names:
        tbl = tbl.drop_columns(["s_relevance"])
    tbl = tbl.append_column("s_relevance", pa.array(scores.tolist(), pa.float64()))
    return _with_verdicts(tbl, drop, score, detail, [""] * n)


# -- the stages ----------------------------------------------------------------------------------

def _mapped(ds, fn, cfg: CurationConfig, **kw):
    return ds.map_batches(fn, batch_format="pyarrow", batch_size=cfg.ray.block_rows, zero_copy_batch=True, **kw)


def _parts(rows: int, cfg: CurationConfig) -> int:
    """How many partitions a group-by stage hashes its keys into: about a block's worth of rows each, at
    least two per CPU of the cluster."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(2 * cpus, -(-rows // cfg.ray.block_rows))


def _stage(ds, name: str, cfg: CurationConfig, n: int):
    """The stage on a Ray Dataset of its `n` rows → (rows with verdict columns, artifacts)."""
    if name in PER_RECORD:
        return _mapped(ds, _per_record, cfg, fn_kwargs={"name": name, "cfg": cfg}), {}
    if name == "exact_dedup":
        keyed = _mapped(ds, _exact_keys, cfg, fn_kwargs={"cfg": cfg, "parts": _parts(n, cfg)})
        return keyed.groupby("_part").map_groups(_exact_group, batch_format="pyarrow"), {}
    if name == "near_dedup":
        from datasketch import MinHashLSH

        c = cfg.near_dedup
        signed = _mapped(ds, _sign, cfg, fn_kwargs={"cfg": cfg}).materialize()
        ranges = MinHashLSH(threshold=c.threshold, num_perm=c.num_perm).hashranges
        banded = _mapped(signed, _bands, cfg, fn_kwargs={"ranges": ranges, "keep_longest": c.keep == "longest",
                                                         "parts": _parts(n * len(ranges), cfg)})
        found = banded.groupby("_part").map_groups(
            _pairs, batch_format="pyarrow", fn_kwargs={"threshold": c.threshold - near_dedup.margin(c)})
        found = found.materialize()  # a pair is proposed once per LSH band its records share
        n_found = found.count()
        on_driver = n_found <= cfg.ray.driver_verify_pairs
        pairs = found if on_driver else _verified(_distinct_pairs(found, cfg).materialize(), signed, cfg)
        verified, ids, lens = [], {}, {}
        for batch in (pairs.iter_batches(batch_format="pyarrow", batch_size=100_000) if n_found else ()):
            cols = batch.to_pydict()
            for k in range(len(cols["a"])):
                a, b = cols["a"][k], cols["b"][k]
                verified.append((a, b, cols["s"][k]))
                ids[a], ids[b], lens[a], lens[b] = cols["a_id"][k], cols["b_id"][k], cols["a_len"][k], cols["b_len"][k]
        if on_driver and verified:  # few pairs: exact Jaccard here, on the texts of just the records they name
            text_of = {}
            wanted = np.fromiter(ids, np.int64, len(ids))
            for batch in _mapped(signed, _rows_at, cfg, fn_kwargs={"wanted": wanted}).iter_batches(batch_format="pyarrow"):
                text_of.update(zip(batch.column("_pos").to_pylist(), texts(batch.select(["messages", "text"]).to_pydict())))
            verified = near_dedup.verify(sorted({(a, b) for a, b, _ in verified}), text_of, c)
        verified = sorted(verified)  # the local stage's order: by (a, b)
        plan = _near_plan(verified, ids, lens, cfg)
        n_clusters = len({cid for cid, *_ in plan.values()})
        marked = _mapped(signed, _near_mark, cfg, fn_kwargs={"plan": plan, "cfg": cfg})
        return marked, {"clusters": n_clusters, "in_clusters": len(plan), "verified_pairs": len(verified),
                        "candidate_pairs_by_band": n_found, "verified_on": "driver" if on_driver else "workers"}
    if name == "relevance":
        return _relevance(ds, cfg)
    raise ConfigError(f"curation.stages: stage {name!r} does not run on curation.engine=ray")


def _pair_part(tbl, parts: int):
    import pyarrow as pa

    return tbl.append_column("_part", pa.array(tbl.column("a").to_numpy() % parts, pa.int32()))


def _first_of_each_pair(tbl):
    import pyarrow.compute as pc

    tbl = tbl.take(pc.sort_indices(tbl, [("a", "ascending"), ("b", "ascending")]))
    a, b = tbl.column("a").to_numpy(), tbl.column("b").to_numpy()
    new = np.ones(len(tbl), dtype=bool)
    new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return tbl.filter(new).drop_columns(["_part"])


def _distinct_pairs(found, cfg: CurationConfig):
    """One row per candidate pair (a pair is proposed once per LSH band it shares), partitioned by `a`."""
    keyed = _mapped(found, _pair_part, cfg, fn_kwargs={"parts": _parts(found.count(), cfg)})
    return keyed.groupby("_part").map_groups(_first_of_each_pair, batch_format="pyarrow")


def _rows_at(tbl, wanted: np.ndarray):
    """The rows at the `wanted` input positions, just their position and text columns."""
    keep = np.isin(tbl.column("_pos").to_numpy(), wanted)
    return tbl.select(["_pos", "messages", "text"]).filter(keep)


def _verified(found, signed, cfg: CurationConfig):
    """The candidate pairs whose exact shingle Jaccard reaches the threshold (near_dedup.verify's rule), on the
    workers: the records the pairs name (a semi-join) get their shingle hashes, which two joins attach to each
    pair (its `a`, then its `b`); only the verified pairs reach the driver, as numbers."""
    parts = _parts(found.count(), cfg)  # distinct pairs
    ends = found.select_columns(["a"]).rename_columns({"a": "_pos"}).union(
        found.select_columns(["b"]).rename_columns({"b": "_pos"}))
    held = signed.select_columns(["_pos", "messages", "text"]).join(ends, "left_semi", num_partitions=parts,
                                                                    on=("_pos",))
    shingled = _mapped(held, _shingled, cfg, fn_kwargs={"cfg": cfg}).materialize()
    with_a = found.join(shingled.rename_columns({"_pos": "a", "_sh": "sh_a"}), "inner", num_partitions=parts, on=("a",))
    both = with_a.join(shingled.rename_columns({"_pos": "b", "_sh": "sh_b"}), "inner", num_partitions=parts, on=("b",))
    return _mapped(both, _exact_jaccard, cfg, fn_kwargs={"cfg": cfg})


def _shingled(tbl, cfg: CurationConfig):
    import pyarrow as pa

    sh = [near_dedup.shingle_hashes(t, cfg.near_dedup) for t in texts(tbl.select(["messages", "text"]).to_pydict())]
    return pa.table({"_pos": tbl.column("_pos"), "_sh": pa.array([x.tolist() for x in sh], pa.list_(pa.uint32()))})


def _exact_jaccard(tbl, cfg: CurationConfig):
    import pyarrow as pa

    sa = [np.asarray(x, np.uint32) for x in tbl.column("sh_a").to_pylist()]
    sb = [np.asarray(x, np.uint32) for x in tbl.column("sh_b").to_pylist()]
    jac = np.array([near_dedup.jaccard(x, y) for x, y in zip(sa, sb)], dtype=float)
    keep = jac >= cfg.near_dedup.threshold
    out = tbl.select(["a", "b", "a_id", "b_id", "a_len", "b_len"]).filter(pa.array(keep))
    return out.append_column("s", pa.array(jac[keep], pa.float64()))


def _relevance(ds, cfg: CurationConfig):
    sample, ids = [], []
    for batch in ds.select_columns(["id", "messages", "text"]).iter_batches(batch_format="pyarrow",
                                                                            batch_size=cfg.ray.block_rows):
        take = batch.slice(0, cfg.ray.fit_sample - len(sample))
        sample += texts(take.select(["messages", "text"]).to_pydict())
        ids += take.column("id").to_pylist()
        if len(sample) >= cfg.ray.fit_sample:
            break
    whole = len(sample) < cfg.ray.fit_sample or ds.count() == len(sample)
    scorer, dev_s, dev_y, art, threshold = relevance.fit(cfg, ids, sample, check_ids=whole)
    art["fitted_on"] = {"corpus_texts": len(sample), "whole_corpus": bool(whole)}
    art["threshold"] = threshold
    relevance.dev_artifacts(art, dev_s, dev_y, threshold)
    import ray

    fitted = ray.put(scorer)  # shipped to the workers once
    return _mapped(ds, _relevance_batch, cfg, fn_kwargs={"scorer": fitted, "threshold": threshold, "cfg": cfg}), art


# -- the pipeline --------------------------------------------------------------------------------

def _counts(tbl):
    """Per block: (n, drops by reason, modified reasons of kept rows)."""
    import pyarrow as pa

    drops = tbl.column("_drop").to_pylist()
    mods = Counter(r for d, m in zip(drops, tbl.column("_mod").to_pylist()) if not d and m for r in m.split(","))
    return pa.table({"n": [len(tbl)], "dropped": [json.dumps(Counter(d for d in drops if d))],
                     "modified": [json.dumps(mods)]})


def _is_kept(tbl):
    import pyarrow.compute as pc

    return _plain(tbl.filter(pc.equal(tbl.column("_drop"), "")).drop_columns(list(VERDICT)))


def _is_dropped(tbl):
    import pyarrow.compute as pc

    return _plain(tbl.filter(pc.not_equal(tbl.column("_drop"), "")))


def pipeline(ds, cfg: CurationConfig, ledger: Ledger, on_drops):
    """Every configured stage over a Ray Dataset of rows with `_pos`; `on_drops(stage, ray dataset of the
    dropped rows, counts by reason)` receives each stage's drops. Returns (kept rows, stage reports as dicts)."""
    reports = []
    n = ds.count()
    for name in cfg.stages:
        if n == 0:
            break
        t0 = time.perf_counter()
        out, art = _stage(ds, name, cfg, n)
        out = out.materialize()
        counts = out.map_batches(_counts, batch_format="pyarrow").take_all()
        dropped, modified = Counter(), Counter()
        for c in counts:
            dropped.update(json.loads(c["dropped"]))
            modified.update(json.loads(c["modified"]))
        n_in = sum(c["n"] for c in counts)
        assert n_in == n, f"curation on ray: stage {name} saw {n_in} rows, expected {n}"
        stage = PREFIX + name
        ledger.record_in(stage, n_in)
        kept = n_in - sum(dropped.values())
        ledger.keep(stage, kept)
        for reason, k in modified.items():
            ledger.modify(stage, reason, k)
        if sum(dropped.values()):
            on_drops(stage, _mapped(out, _is_dropped, cfg), dropped)
        ds = _mapped(out, _is_kept, cfg).materialize()
        if name == "exact_dedup":  # the local stage's artifacts
            art.update(duplicates=n_in - kept, distinct=kept)
        elif name == "near_dedup":
            art["dropped"] = n_in - kept
        reports.append({"stage": name, "n_in": n_in, "kept": kept, "dropped_by_reason": dict(dropped),
                        "modified_by_reason": dict(modified), "seconds": time.perf_counter() - t0,
                        "driver_peak_mib": _peak_mib(),
                        "artifacts": {k: v for k, v in art.items() if v is not None}})
        log.info("curate %-12s in=%d kept=%d dropped=%d [ray] (%.2fs, driver peak %.0f MiB)", name, n_in, kept,
                 n_in - kept, reports[-1]["seconds"], reports[-1]["driver_peak_mib"])
        n = kept
    return ds, reports


def _peak_mib() -> float:
    """The driver's peak resident memory so far (ru_maxrss; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _drop_entry(row: dict) -> tuple:
    score = row["_score"]
    return (row["_drop"], None if score is None or score != score else score, row["_detail"] or None,
            row_to_record({k: v for k, v in row.items() if k not in VERDICT and k != "_pos"}))


def run(records: list[dict], cfg: CurationConfig, ledger: Ledger):
    """The in-memory API on Ray (ftx.data.curate.pipeline.run dispatches here): (kept records in input
    order, stage reports as dicts); every drop goes into the ledger in input order, as on the local engine."""
    import pyarrow as pa

    ray = connect(cfg)
    tbl = _plain(to_dataset(records).data.table)
    tbl = tbl.append_column("_pos", pa.array(np.arange(len(tbl), dtype=np.int64)))
    blocks = max(1, -(-len(tbl) // cfg.ray.block_rows))
    ds = ray.data.from_arrow([tbl.slice(i * cfg.ray.block_rows, cfg.ray.block_rows) for i in range(blocks)])

    def on_drops(stage, dropped, _counts):
        for row in sorted(dropped.take_all(), key=lambda r: r["_pos"]):
            reason, score, detail, rec = _drop_entry(row)
            ledger.drop(stage, reason, rec, score, detail)

    kept_ds, reports = pipeline(ds, cfg, ledger, on_drops)
    rows = sorted(kept_ds.take_all(), key=lambda r: r["_pos"])
    return [row_to_record({k: v for k, v in r.items() if k != "_pos"}) for r in rows], reports


def curate_files(inputs: list[str], out_dir: Path, cfg: CurationConfig, fmt: Optional[str] = None) -> dict:
    """Sharded canonical records (Parquet or JSONL: id, text | messages, role, source, …) → `out_dir/kept/`
    and `out_dir/dropped/<stage>/` shards (same format), `ledger.json` and `report.json`; nothing passes
    through the driver but counts, the LSH pair list and the relevance fit sample."""
    import pyarrow as pa

    ray = connect(cfg)
    fmt = fmt or ("parquet" if str(inputs[0]).endswith(".parquet") else "json")
    read = ray.data.read_parquet if fmt == "parquet" else ray.data.read_json
    raw = read(inputs)

    def canonical(tbl):
        recs = tbl.to_pylist()
        return _plain(to_dataset(recs).data.table)

    ds = _mapped(raw, canonical, cfg)
    ds = _with_positions(ds)
    ledger = Ledger()
    out_dir = Path(out_dir)
    writer = (lambda d, p: d.write_parquet(str(p))) if fmt == "parquet" else (lambda d, p: d.write_json(str(p)))

    def on_drops(stage, dropped, counts):
        for reason, n in counts.items():
            ledger.count_dropped(stage, reason, n)

        def entries(tbl):
            rows = []
            for row in tbl.to_pylist():
                reason, score, detail, rec = _drop_entry(row)
                rows.append({"stage": stage, "reason": reason, "score": score, "detail": detail, "id": rec["id"],
                             "source": rec["source"], "record": json.dumps(rec, ensure_ascii=False)})
            return pa.Table.from_pylist(rows)

        writer(_mapped(dropped, entries, cfg), out_dir / "dropped" / stage.split(":", 1)[1])

    kept, reports = pipeline(ds, cfg, ledger, on_drops)

    def records(tbl):
        return pa.Table.from_pylist([{**row_to_record({k: v for k, v in r.items() if k != "_pos"}),
                                      "scores": json.dumps(row_to_record(r)["scores"])} for r in tbl.to_pylist()])

    writer(_mapped(kept, records, cfg), out_dir / "kept")
    ledger.check()
    write_json(out_dir / "ledger.json", ledger.summary())
    write_json(out_dir / "report.json", {"engine": "ray", "stages": reports})
    return {"ledger": ledger.summary(), "stages": reports}


def _with_positions(ds):
    """A global `_pos` column in input order: the blocks (in order) are counted, then numbered from their offsets."""
    import pyarrow as pa
    import ray

    refs = ds.materialize().to_arrow_refs()

    @ray.remote
    def rows(tbl):
        return len(tbl)

    @ray.remote
    def number(tbl, start):
        return tbl.append_column("_pos", pa.array(np.arange(start, start + len(tbl), dtype=np.int64)))

    sizes = ray.get([rows.remote(r) for r in refs])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    return ray.data.from_arrow_refs([number.remote(r, o) for r, o in zip(refs, offsets)])
