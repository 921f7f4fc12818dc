"""Builds and times one system in a process of its own (its peak memory is its own, and a crash stays its own).

Writes a JSON summary and an .npz of the top-k results of every query; `benchmarks.bench` starts one of these
per system and puts the numbers side by side.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def load_data(folder: Path):
    """The collection a system runs on: the documents and query sets `benchmarks.bench.write_data` saved.

    Args:
        folder: a collection folder (docs.npz, queries-<set>.npz, encoded/).

    Returns:
        A `benchmarks.systems.Data`.
    """
    from benchmarks.systems import Data

    docs = sp.load_npz(folder / "docs.npz").tocsr()
    queries = {p.stem.removeprefix("queries-"): sp.load_npz(p).tocsr() for p in sorted(folder.glob("queries-*.npz"))}
    return Data(docs=docs, queries=queries, folder=folder)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


TIME_BUDGET_S = 45  # per system, query set and k: single-query timing stops after this


def time_queries(system, q, set_name: str, k: int, timing_queries: int, results: dict) -> dict:
    """Median / p99 ms of one query at a time on one thread, then queries per second of the whole set on all
    cores; the top-k of every query goes into `results` for the accuracy check."""
    prepared = system.prepare(q, k)
    n = system.num_queries(prepared)
    timed = min(n, timing_queries)
    for i in range(min(3, n)):  # warm up: compiled code, page cache, JIT
        system.search_one(prepared, i, k)
    if hasattr(system, "stats"):
        system.stats[:] = 0
    times, cpu = np.empty(timed), np.empty(timed)
    budget_end = time.perf_counter() + TIME_BUDGET_S
    for i in range(timed):
        t, c = time.perf_counter(), time.thread_time()
        system.search_one(prepared, i, k)
        times[i], cpu[i] = (time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000
        if i >= 20 and time.perf_counter() > budget_end:  # a slow system: fewer queries, said in the table
            timed = i + 1
            times, cpu = times[:timed], cpu[:timed]
            break
    run = {"set": set_name, "k": k, "queries_timed": timed, "median_ms": float(np.median(times)),
           "p99_ms": float(np.percentile(times, 99)), "mean_ms": float(times.mean()),
           "cpu_median_ms": float(np.median(cpu)), "cpu_p99_ms": float(np.percentile(cpu, 99))}
    if run["mean_ms"] * n / 1000 / (os.cpu_count() or 1) > TIME_BUDGET_S:
        n = timed  # the batch too would take too long: run it over the timed queries only
        prepared = system.prepare(q[:n], k)
    if hasattr(system, "stats"):
        run["blocks_per_query"] = float(system.stats[0] / timed)
        run["postings_per_query"] = float(system.stats[1] / timed)
        run["maxima_per_query"] = float(system.stats[2] / timed)
    system.search_all(system.prepare(q[: min(4, q.shape[0])], k), k)  # warm up the batch path (compiles, threads)
    t = time.perf_counter()
    hits = system.search_all(prepared, k)
    run["qps_all_cores"] = n / (time.perf_counter() - t)
    docs = np.full((n, k), -1, dtype=np.int64)
    scores = np.zeros((n, k), dtype=np.float64)
    for i, (d, s) in enumerate(hits):
        m = min(k, len(d))
        docs[i, :m], scores[i, :m] = d[:m], s[:m]
    key = f"{system.name}|{set_name}|{k}"
    results[key + "|docs"] = docs
    results[key + "|scores"] = scores
    print(f"{system.name}: {set_name} k={k}: median {run['median_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, "
          f"{run['qps_all_cores']:.0f} q/s on all cores", file=sys.stderr, flush=True)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="prefix of the .json and .npz written")
    parser.add_argument("--ks", default="10,1000")
    parser.add_argument("--timing-queries", type=int, default=200, help="queries timed one by one per set")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an index already in --workdir (build time then unmeasured)")
    args = parser.parse_args(argv)

    from benchmarks.systems import make

    data = load_data(args.data)
    system = make(args.system)
    summary = {"system": args.system, "name": system.name, "family": system.family, "exact": system.exact}
    ks = [int(k) for k in args.ks.split(",")]
    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if not args.reuse:
            for p in args.workdir.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        gc.collect()
        before = rss_mib()
        started = time.perf_counter()
        system.build(data, args.workdir)
        summary["build_s"] = time.perf_counter() - started
        summary["build_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
        summary["size_mib"] = system.size_bytes() / 2**20
        summary["describe"] = system.describe()
        results = {}
        summary["runs"] = []
        for variant in system.variants():
            for attr, value in variant.items():
                setattr(system, attr, value)
            for set_name, q in data.queries.items():
                for k in ks:
                    run = time_queries(system, q, set_name, k, args.timing_queries, results)
                    summary["runs"].append({"name": system.name, "exact": system.exact, **run})
        np.savez_compressed(str(args.output) + ".npz", **results)
        summary["ok"] = True
    except BaseException as e:  # noqa: BLE001 (a peer's failure is a result: it goes into the table)
        summary["ok"] = False
        summary["error"] = f"{type(e).__name__}: {e}".strip()[:500]
        summary["traceback"] = traceback.format_exc()[-3000:]
        print(summary["traceback"], file=sys.stderr)
    Path(str(args.output) + ".json").write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
