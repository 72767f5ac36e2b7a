"""`curation.engine=ray` gives the local engine's answers: the same records through both engines, compared
record by record (kept ids in order, every kept record's fields, cluster ids and scores), drop by drop
(stage, id, reason, score, detail) and in the ledger counts. Plus its bad input, one line each."""

from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import pytest

from ftx.data.curate.pipeline import run
from ftx.data.ledger import Ledger
from ftx.errors import ConfigError
from tests.helpers import ROOT, run_ftx, write_jsonl

sys.path.insert(0, str(ROOT / "benchmarks"))
import curation as bench  # noqa: E402  (the benchmark's corpus: planted duplicates, off-domain, PII, boilerplate)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _ray_down_after():
    """The engine keeps its local cluster for the process (reused by later curations); the suite's process
    goes on to other tests, so the cluster and its idle workers end with this module."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def both(records: list[dict], cfg, driver_verify_pairs: int = 100_000):
    out = []
    for engine in ("local", "ray"):
        c = copy.deepcopy(cfg)
        c.engine, c.ray.num_cpus, c.ray.block_rows = engine, 2, 500
        c.ray.driver_verify_pairs = driver_verify_pairs
        ledger = Ledger()
        out.append((run(copy.deepcopy(records), c, ledger), ledger))
    return out


def drops(ledger: Ledger) -> list[tuple]:
    return [(d["stage"], d["id"], d["reason"], d.get("score"), d.get("detail"), d["record"])
            for d in ledger.dropped_records]


def test_local_and_ray_engines_give_identical_results(tmp_path):
    records, groups = bench.corpus(2500, seed=3)
    cfg = bench.make_cfg(tmp_path, 1)  # every stage ray runs: normalize … near_dedup, relevance (calibrated)
    (local, l_ledger), (ray, r_ledger) = both(records, cfg)
    assert [r["id"] for r in ray.kept] == [r["id"] for r in local.kept]
    assert ray.kept == local.kept  # text after normalize/pii, cluster ids, every stage's score
    assert drops(r_ledger) == drops(l_ledger)
    assert r_ledger.summary() == l_ledger.summary()
    by_reason = {k for s in l_ledger.summary() for k in s["dropped_by_reason"]}
    # the corpus exercises every kind of drop (else equality would prove little)
    assert {"exact_duplicate", "near_duplicate", "off_domain", "language", "boilerplate"} <= by_reason, by_reason
    assert any(s["modified_by_reason"].get("pii_email") for s in l_ledger.summary())
    near = {s.stage: s.artifacts for s in ray.stages}["near_dedup"]
    assert near["clusters"] == {s.stage: s.artifacts for s in local.stages}["near_dedup"]["clusters"] > 10
    assert near["verified_on"] == "driver" and near["candidate_pairs_by_band"] >= near["verified_pairs"] > 0


def test_near_duplicates_verified_on_the_workers_match_the_local_engine(tmp_path):
    """Above curation.ray.driver_verify_pairs candidate pairs, exact Jaccard runs on the workers (a semi-join
    of the records the pairs name, two joins attaching their shingles): the same clusters and drops."""
    records, _ = bench.corpus(1000, seed=6)
    cfg = bench.make_cfg(tmp_path, 1)
    cfg.stages, cfg.near_dedup.keep = ["normalize", "near_dedup"], "longest"
    (local, l_ledger), (ray, r_ledger) = both(records, cfg, driver_verify_pairs=0)
    assert ray.kept == local.kept and drops(r_ledger) == drops(l_ledger)
    near = {s.stage: s.artifacts for s in ray.stages}["near_dedup"]
    assert near["verified_on"] == "workers"
    assert near["verified_pairs"] == {s.stage: s.artifacts for s in local.stages}["near_dedup"]["verified_pairs"] > 10
    assert near["candidate_pairs_by_band"] > near["verified_pairs"]  # a pair is proposed once per band it shares


def test_near_duplicate_representative_ties_resolve_alike(tmp_path):
    """keep=longest with near-duplicates of equal length: the tie goes to the first in input order on both
    engines (the representative is a function of (length, position), so it never depends on block order)."""
    rng = random.Random(5)
    base = [bench.document(rng, bench.HTTP) for _ in range(30)]
    records = []
    for k, text in enumerate(base):
        words = text.split()
        for v in range(3):  # three same-length variants: one word swapped for another of its length
            w = list(words)
            i = (7 * v + 3) % len(w)
            w[i] = w[i][::-1]
            records.append({"id": f"t{k}-{v}", "source": "s", "role": "domain", "synthetic": False, "weight": 1.0,
                            "messages": None, "text": " ".join(w)})
    rng.shuffle(records)
    cfg = bench.make_cfg(tmp_path, 1)
    cfg.stages, cfg.near_dedup.keep = ["near_dedup"], "longest"
    (local, l_ledger), (ray, r_ledger) = both(records, cfg)
    assert ray.kept == local.kept and drops(r_ledger) == drops(l_ledger)
    pos = {r["id"]: i for i, r in enumerate(records)}
    for r in local.kept:  # each kept representative is the first of its group in input order
        group = [d for d in l_ledger.dropped_records if d["detail"].startswith(f"near-duplicate of {r['id']} ")]
        assert all(pos[d["id"]] > pos[r["id"]] for d in group)
    assert len(l_ledger.dropped_records) > 30


def test_unreachable_ray_address_is_one_line(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "prompt": "What is HTTP 200?", "response": "OK."}])
    r = run_ftx(["curate", "model=tiny_llama", "curation=default", "curation.engine=ray",
                 "curation.stages=[normalize]", "curation.ray.address=127.0.0.1:9",
                 f"data.sources.http.path={tmp_path / 'd.jsonl'}", f"data.sources.general.path={tmp_path / 'd.jsonl'}",
                 "--out", str(tmp_path / "out")], tmp_path, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ftx: config error: curation.ray.address: cannot connect to the Ray cluster at "
                           "'127.0.0.1:9': Connection refused"), last
    assert not (tmp_path / "out").exists()


def test_ray_settings_are_checked_before_anything_runs(monkeypatch):
    from ftx.spec.curation import CurationConfig

    cfg = CurationConfig(enabled=True, stages=["normalize", "agreement"], engine="ray")
    with pytest.raises(ConfigError, match="stage 'agreement' does not run on curation.engine=ray yet"):
        cfg.check()
    cfg = CurationConfig(enabled=True, stages=["relevance"], engine="ray")
    cfg.relevance.threshold.mode = "top_k"
    with pytest.raises(ConfigError, match="top_k needs every score at once"):
        cfg.check()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        CurationConfig(enabled=True, stages=["normalize"], engine="ray").check()
    assert str(err.value) == ("curation.engine: is ray but Ray is not installed (pip install 'ftx[ray]'), "
                              "or use curation.engine=local")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "polars" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        CurationConfig(enabled=True, stages=["normalize"], engine="ray").check()
    assert str(err.value) == ("curation.engine: is ray but polars, which Ray Data's joins need, is not installed "
                              "(pip install 'ftx[ray]'), or use curation.engine=local")
    from ftx.data.curate import ray_engine

    with pytest.raises(ConfigError) as at_connect:  # the engine, reached without the spec check, says the same
        ray_engine.connect(CurationConfig(enabled=True, stages=["normalize"], engine="ray"))
    assert str(at_connect.value) == str(err.value)


def test_sharded_files_in_and_out_match_the_local_engine(tmp_path):
    """curate_files: JSONL shards in, kept/ and dropped/ shards out, the ledger equal to a local run's."""
    import json

    from ftx.data.curate.ray_engine import curate_files

    records, _ = bench.corpus(1200, seed=4)
    for k in range(3):
        write_jsonl(tmp_path / "in" / f"part-{k}.jsonl", records[k * 400:(k + 1) * 400])
    cfg = bench.make_cfg(tmp_path, 1)
    (local, l_ledger), _ = [both(records, cfg)[0], None]
    c = copy.deepcopy(cfg)
    c.engine, c.ray.num_cpus, c.ray.block_rows = "ray", 2, 400
    out = curate_files(sorted(str(p) for p in (tmp_path / "in").glob("*.jsonl")), tmp_path / "out", c)
    assert out["ledger"] == l_ledger.summary()
    kept = [json.loads(line) for p in sorted((tmp_path / "out" / "kept").glob("*.json*"))
            for line in p.read_text().splitlines()]
    assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in local.kept)
    dropped = [json.loads(line) for p in (tmp_path / "out" / "dropped").rglob("*.json*")
               for line in p.read_text().splitlines()]
    assert sorted((d["stage"], d["id"], d["reason"]) for d in dropped) == \
        sorted((d["stage"], d["id"], d["reason"]) for d in l_ledger.dropped_records)
