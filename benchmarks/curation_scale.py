"""Curation at scale: docs/s and the driver's peak memory, `curation.engine=local` vs `ray`.

    python benchmarks/curation_scale.py                    # N = 100k and 1M
    python benchmarks/curation_scale.py --docs 20000 100000 --shards 8 --num-cpus 2

For each N the corpus of benchmarks/curation.py (domain prose, planted exact and near duplicates,
off-domain and foreign text, PII, boilerplate) is written as JSONL shards, then each engine runs in its
own process with every stage Ray runs (normalize … near_dedup, relevance calibrated; cache off):

  - local: the shards read into memory (as `ftx curate` does) and `pipeline.run` (datasets, num_proc);
  - ray:   `ray_engine.curate_files` on the shard paths: Ray reads, curates and writes kept/ and
           dropped/ shards; the driver holds counts, the LSH pair list and the relevance fit sample.

Peak memory is the ru_maxrss of that process (the driver; Ray's workers are not counted: they are the
cluster's). One table: N, engine, seconds, docs/s, driver peak MiB, kept.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import curation as bench  # noqa: E402


def write_shards(n: int, shards: int, root: Path) -> list[str]:
    records, _ = bench.corpus(n)
    root.mkdir(parents=True, exist_ok=True)
    size = -(-n // shards)
    paths = []
    for k in range(shards):
        part = records[k * size:(k + 1) * size]
        if part:
            paths.append(bench.write_jsonl(root / f"part-{k:05d}.jsonl", part))
    return paths


def one(engine: str, shards: list[str], tmp: Path, num_proc: int, num_cpus: int, block_rows: int) -> dict:
    cfg = bench.make_cfg(tmp, num_proc)
    t0 = time.perf_counter()
    if engine == "local":
        from ftx.data.curate.pipeline import run
        from ftx.data.ledger import Ledger
        from ftx.runs import read_jsonl

        records = [r for p in shards for _, r in read_jsonl(Path(p))]
        kept = len(run(records, cfg, Ledger()).kept)
    else:
        from ftx.data.curate.ray_engine import curate_files

        cfg.engine, cfg.ray.num_cpus, cfg.ray.block_rows = "ray", num_cpus, block_rows
        summary = curate_files(shards, tmp / "out", cfg)
        kept = summary["ledger"][-1]["kept"]
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "kept": kept, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--engines", nargs="+", default=["local", "ray"])
    ap.add_argument("--num-proc", type=int, default=2, help="local engine: datasets.map processes")
    ap.add_argument("--num-cpus", type=int, default=2, help="ray engine: CPUs of the local cluster")
    ap.add_argument("--block-rows", type=int, default=10_000)
    ap.add_argument("--one", nargs=3, metavar=("ENGINE", "SHARD_DIR", "TMP"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        engine, shard_dir, tmp = a.one
        shards = sorted(str(p) for p in Path(shard_dir).glob("part-*.jsonl"))
        print("RESULT " + json.dumps(one(engine, shards, Path(tmp), a.num_proc, a.num_cpus, a.block_rows)))
        return
    rows = []
    print(f"{'N':>9} {'engine':<6} {'seconds':>9} {'docs/s':>8} {'driver peak MiB':>16} {'kept':>8}", flush=True)
    for n in a.docs:
        with tempfile.TemporaryDirectory(prefix="ftx-scale-") as tmp:
            shard_dir = Path(tmp) / "in"
            write_shards(n, a.shards, shard_dir)
            for engine in a.engines:
                work = Path(tmp) / engine
                work.mkdir()
                r = subprocess.run([sys.executable, __file__, "--one", engine, str(shard_dir), str(work),
                                    "--num-proc", str(a.num_proc), "--num-cpus", str(a.num_cpus),
                                    "--block-rows", str(a.block_rows)], capture_output=True, text=True)
                line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
                if r.returncode or not line:
                    print(f"{n:>9} {engine:<6} failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}", flush=True)
                    continue
                res = json.loads(line[0][7:])
                rows.append({"n": n, "engine": engine, **res})
                print(f"{n:>9} {engine:<6} {res['seconds']:>9.1f} {n / res['seconds']:>8.0f} {res['peak_mib']:>16.0f} "
                      f"{res['kept']:>8}", flush=True)


if __name__ == "__main__":
    main()
