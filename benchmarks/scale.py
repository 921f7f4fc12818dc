"""MS MARCO at full size on one machine: synthetic encoded folders of 1M, 3M and 8,841,823 passages, the index
built from each (peak memory and time), searched with the real MS MARCO dev queries and synthetic ones.

    python -m benchmarks.scale generate --docs 8841823     the encoded folder, shard by shard (resumable)
    python -m benchmarks.scale build --docs 1000000        `splade index` on it, under /usr/bin/time
    python -m benchmarks.scale compare --docs 1000000      build time against PISA's, same vectors, back to back
    python -m benchmarks.scale search --docs 1000000       latencies of the built index (and the peers that fit)
    python -m benchmarks.scale crossover --docs 1000000    pruned against exhaustive, query by query, by postings
    python -m benchmarks.scale slices --docs 8841823       exhaustive search's accumulator whole or in slices
    python -m benchmarks.scale table                       benchmarks/results/scale/scale.md + scale.png

WHY a pool of chunks: chunk c of benchmarks/synthetic.py's collection is the same matrix whatever the
collection's size, so the 1M and 3M folders hard-link the first shards of the 8.84M one (one copy on disk).
The folders are in the encoded-folder contract (contracts.encoded's save_shard and start_or_resume), with
splade-tiny's vocabulary and hash, so that `splade retrieve` / `make eval-msmarco` accept the real queries.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks import synthetic
from benchmarks.systems import Ours, SplitQueries
from contracts.atomic import atomic_path, write_json, write_text
from contracts.encoded import iter_shards, save_shard, start_or_resume
from indexing.numba_index.layout import quantize_rows

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache" / "scale"
RESULTS = ROOT / "benchmarks" / "results" / "scale"
DATA = ROOT.parent / "shared" / "data"
MSMARCO_PASSAGES = 8_841_823
SIZES = (1_000_000, 3_000_000, MSMARCO_PASSAGES)
SPEC = synthetic.SyntheticSpec(num_docs=MSMARCO_PASSAGES, num_queries=1000, doc_nnz=128.0, seed=42)
MODEL = "splade-tiny"


def encoded_dir(docs: int) -> Path:
    return CACHE / f"encoded-{docs}"


def index_dir(docs: int) -> Path:
    return CACHE / f"index-{docs}"


def _encoder_info() -> tuple[dict, list[str]]:
    """splade-tiny's manifest keys and vocabulary (the model is loaded once, only for these)."""
    from indexing.encoder import SpladeEncoder  # torch: deferred, only `generate` needs it
    from pipelines.models import resolve_model

    encoder = SpladeEncoder(resolve_model(MODEL))
    return encoder.describe(), list(encoder.vocab)


def generate(docs: int, progress: bool = True) -> Path:
    """The encoded folder of the first `docs` synthetic passages (ids "0", "1", ... as MS MARCO's pids)."""
    out = encoded_dir(docs)
    pool = CACHE / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    info, vocab = _encoder_info()
    info = {**info, "source": f"synthetic:{SPEC.seed}:{SPEC.doc_nnz:g}"}
    out.mkdir(parents=True, exist_ok=True)
    manifest = start_or_resume(out, info, synthetic.CHUNK)
    if manifest["complete"]:
        return out
    write_text(out / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    model = None  # drawn only when a pool shard is missing (seconds)
    started = time.perf_counter()
    for number, start in enumerate(range(0, docs, synthetic.CHUNK)):
        if number < len(manifest["shards"]):
            continue  # resumed: written by an earlier run
        rows = min(synthetic.CHUNK, docs - start)
        name = f"shard-{number:05d}.npz"
        source = pool / (name if rows == synthetic.CHUNK else f"shard-{number:05d}-{rows}.npz")
        if not source.exists():
            model = model or synthetic._model(SPEC)
            matrix = synthetic.document_chunk(SPEC, number, rows, model)
            save_shard(source, [str(i) for i in range(start, start + rows)], matrix)
            nnz = matrix.nnz
            del matrix
        else:
            with np.load(source) as z:
                nnz = int(z["data"].shape[0])
        if (out / name).exists():
            (out / name).unlink()
        os.link(source, out / name)
        manifest["shards"].append({"file": name, "num_docs": rows, "nnz": int(nnz)})
        write_json(out / "manifest.json", manifest)
        if progress:
            print(f"  {start + rows:,} / {docs:,} passages, {time.perf_counter() - started:.0f} s", flush=True)
    manifest["complete"] = True
    manifest["num_docs"] = docs
    write_json(out / "manifest.json", manifest)
    return out


def fill_pool(docs: int, part: int, parts: int) -> None:
    """Draws the pool shards number part, part + parts, ... (several processes fill the pool side by side)."""
    pool = CACHE / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    model = synthetic._model(SPEC)
    for number, start in list(enumerate(range(0, docs, synthetic.CHUNK)))[part::parts]:
        rows = min(synthetic.CHUNK, docs - start)
        source = pool / (f"shard-{number:05d}.npz" if rows == synthetic.CHUNK else f"shard-{number:05d}-{rows}.npz")
        if not source.exists():
            save_shard(source, [str(i) for i in range(start, start + rows)],
                       synthetic.document_chunk(SPEC, number, rows, model))
            print(f"  pool {source.name}", flush=True)


def timed(command: list[str], log: Path) -> dict:
    """Runs a command under /usr/bin/time -v: wall seconds and peak resident memory (its VmHWM)."""
    stats = log.with_suffix(".time")
    started = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.call(["/usr/bin/time", "-v", "-o", str(stats), *command], stdout=out, stderr=subprocess.STDOUT,
                             cwd=ROOT)
    wall = time.perf_counter() - started
    fields = {}
    for line in stats.read_text().splitlines():
        key, _, value = line.strip().rpartition(": ")
        fields[key] = value
    # CPU seconds too: on a shared machine the wall time says as much about the neighbours as about the build.
    return {"rc": rc, "wall_s": round(wall, 1), "cpu_s": round(float(fields.get("User time (seconds)", 0))
                                                               + float(fields.get("System time (seconds)", 0)), 1),
            "peak_rss_mib": round(int(fields.get("Maximum resident set size (kbytes)", 0)) / 1024, 1),
            "command": " ".join(command)}


def build(docs: int) -> dict:
    """`splade index` on the encoded folder, as a user runs it, with its time and peak memory."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    encoded, index = encoded_dir(docs), index_dir(docs)
    result = timed([sys.executable, "-m", "pipelines", "index", "--encoded", str(encoded), "--output", str(index),
                    "--overwrite"], RESULTS / f"build-{docs}.log")
    if result["rc"] == 0:
        result["index_mib"] = round(sum(p.stat().st_size for p in index.iterdir()) / 2**20, 1)
        manifest = json.loads((index / "manifest.json").read_text())
        result["num_postings"] = manifest["num_postings"]
        result["postings_mib"] = round(sum(p.stat().st_size for p in index.glob("*.npy")) / 2**20, 1)
    result["encoded_gib"] = round(sum(p.stat().st_size for p in encoded.glob("*.npz")) / 2**30, 2)
    result["docs"] = docs
    write_json(RESULTS / f"build-{docs}.json", result)
    print(json.dumps(result), flush=True)
    return result


def query_sets() -> dict[str, sp.csr_matrix]:
    """The 6,980 MS MARCO dev queries encoded with splade-tiny (the project's encoder) and 1,000 light and 1,000
    heavy synthetic ones; float weights, cached under benchmarks/cache/scale/."""
    sets = {}
    for name in ("dev", "light", "heavy"):
        path = CACHE / f"queries-{name}.npz"
        if not path.exists():
            if name == "dev":
                from indexing.encoder import SpladeEncoder  # torch: deferred
                from pipelines.datasets import resolve_dataset
                from pipelines.models import resolve_model

                queries = resolve_dataset(DATA / "msmarco-passage-dev-small").queries()
                matrix = SpladeEncoder(resolve_model(MODEL)).encode_queries([t for _, t in queries], progress=True)
            else:
                matrix = synthetic.queries(SPEC, name == "heavy")
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                sp.save_npz(f, sp.csr_matrix(matrix, dtype=np.float32))
        sets[name] = sp.load_npz(path).tocsr()
    return sets


class _Built(Ours):
    """benchmarks.systems.Ours over the index `splade index` built (no second build), exact, with float queries
    quantised by the index."""

    def __init__(self, path: Path, method: str, mmap: bool):
        from indexing.numba_index.index import ARRAYS, ImpactIndex

        # WHY not ImpactIndex.load: its bound checks (indexing/numba_index/index.py, _check_bounds) cast bm_counts
        # to int64 whole for np.add.reduceat, 8 bytes an entry: 5.9 GiB more at 8.84M, which got this process
        # killed. The index here is the one `splade index` just wrote; its checks are tested elsewhere.
        manifest = json.loads((path / "manifest.json").read_text())
        arrays = {n: np.load(path / f"{n}.npy", mmap_mode="r" if mmap else None) for n in ARRAYS}
        doc_ids = (path / "doc_ids.txt").read_text(encoding="utf-8").split("\n")[:-1]
        self.index = ImpactIndex(path=path, manifest=manifest, doc_ids=doc_ids, **arrays)
        self.alphas, self.alpha, self.exact, self.method = (1.0,), 1.0, True, method
        self.name = f"ours, {method}" + (", memory-mapped" if mmap else "")
        self.stats = np.zeros(3, dtype=np.int64)

    def prepare(self, q, k):
        return SplitQueries.of(self.index.quantize_queries(q))


def search(docs: int, methods=("pruned", "exhaustive", "auto"), mmap: bool = False, timing_queries: int = 200) -> dict:
    """k=10 and k=1000 latencies (one thread) and queries/s (all cores) of the built index, per query set."""
    from benchmarks.run_system import time_queries

    sets = query_sets()
    out = {"docs": docs, "mmap": mmap, "runs": []}
    for method in methods:
        started = time.perf_counter()
        system = _Built(index_dir(docs), method, mmap)
        out.setdefault("load_s", round(time.perf_counter() - started, 1))
        results = {}
        for name, q in sets.items():
            for k in (10, 1000):
                out["runs"].append({"name": system.name, **time_queries(system, q, name, k, timing_queries, results)})
        del system
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    path = RESULTS / f"search-{docs}{'-mmap' if mmap else ''}.json"
    if path.exists():  # a method measured again replaces its own rows only (--methods auto after a rule changed)
        measured = {run["name"] for run in out["runs"]}
        kept = [run for run in json.loads(path.read_text())["runs"] if run["name"] not in measured]
        out["runs"] = kept + out["runs"]
    write_json(path, out)
    return out


def crossover(docs: int, per_set: int = 60, seed: int = 0, ks=(10, 1000)) -> dict:
    """Pruned against exhaustive search, query by query and paired (best of 3, one thread), by the query's postings
    per document, at each k of `ks`: the measurement behind AUTO_POSTINGS_BAND and the k cut of "auto" in
    indexing/numba_index/index.py. Light and dev queries as they are, heavy ones cut to a random prefix of their
    terms (the ratios in between)."""
    from indexing.numba_index import kernels

    index = _Built(index_dir(docs), "auto", False).index
    arrays = index._kernel_arrays()
    rng = np.random.default_rng(seed)
    rows = []
    for name, q in query_sets().items():
        q = index.quantize_queries(q)
        for i in rng.choice(q.shape[0], min(per_set, q.shape[0]), replace=False):
            one = q[int(i)]
            if name == "heavy":
                keep = int(rng.integers(2, max(3, one.nnz)))
                one = sp.csr_matrix((one.data[:keep], one.indices[:keep], [0, keep]), shape=one.shape)
            row = {"set": name, "postings_per_doc": kernels._postings_of(arrays, one.indices.astype(np.int32)) / docs}
            for k in ks:
                for method in ("pruned", "exhaustive"):
                    times = []
                    for _ in range(4):  # the first warms up
                        started = time.perf_counter()
                        index.search_arrays(one, k, quantized=True, threads=1, method=method)
                        times.append(time.perf_counter() - started)
                    row[f"{method}_{k}_ms"] = min(times[1:]) * 1000
            rows.append(row)
    edges = (0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 100)
    lines = [f"| postings / documents | queries | k={ks[0]} pruned ms | k={ks[0]} exhaustive ms | "
             + " | ".join(f"exhaustive / pruned, k={k}" for k in ks) + " |", "|---|---|---|---|" + "---|" * len(ks)]
    for lo, hi in zip(edges, edges[1:]):
        group = [r for r in rows if lo <= r["postings_per_doc"] < hi]
        if group:
            pruned, exhaustive = (float(np.median([r[f"{m}_{ks[0]}_ms"] for r in group]))
                                  for m in ("pruned", "exhaustive"))
            ratio = [float(np.median([r[f"exhaustive_{k}_ms"] / r[f"pruned_{k}_ms"] for r in group])) for k in ks]
            lines.append(f"| [{lo:g}, {hi:g}) | {len(group)} | {pruned:.2f} | {exhaustive:.2f} | "
                         + " | ".join(f"{x:.2f}" for x in ratio) + " |")
    out = {"docs": docs, "ks": list(ks), "rows": rows, "table": "\n".join(lines)}
    suffix = "" if tuple(ks) == (10, 1000) else "-k" + "-".join(str(k) for k in ks)
    write_json(RESULTS / f"crossover-{docs}{suffix}.json", out)
    print(out["table"])
    return out


def slices(docs: int, per_set: int = 60, sizes=(0, 2**16, 2**18, 2**20, 2**22), k: int = 1000, seed: int = 0) -> dict:
    """Exhaustive search with the full-drain accumulator scored and drained whole (size 0) or a slice at a time
    (kernels._score_and_drain_by_slice), query by query and paired (best of 3 after a warm-up, one thread): the
    measurement behind kernels.SLICE_SLOTS and ImpactIndex.search_arrays's cache rule. Every size must give the
    same top k."""
    from indexing.numba_index import kernels

    index = _Built(index_dir(docs), "exhaustive", False).index
    arrays = index._kernel_arrays()
    scratch = kernels.new_scratch(1, index.num_docs, index.block_size, np.int32)
    acc = scratch.acc[0]
    base = np.int64(index.num_docs + 1)
    top = np.empty(2 * k + 16, dtype=np.int64)
    out_docs, out_scores = np.zeros(k, np.int32), np.zeros(k, np.int64)

    def run(size, terms, weights):
        if size == 0:
            kernels._score_all(arrays, terms, weights, acc)
            n, theta = kernels._drain_block(acc, 0, acc.shape[0], arrays.doc_order, arrays.num_docs, base, k, top, 0,
                                            np.int64(-1))
        else:
            n, theta = kernels._score_and_drain_by_slice(arrays, terms, weights, acc, base, k, top, size)
        n = kernels._write_top(top, n, k, base, arrays.num_docs, out_docs, out_scores)
        return out_docs[:n].copy(), out_scores[:n].copy()

    rng = np.random.default_rng(seed)
    rows = []
    for name, q in query_sets().items():
        q = index.quantize_queries(q)
        for i in rng.choice(q.shape[0], min(per_set, q.shape[0]), replace=False):
            terms, weights = q[int(i)].indices.astype(np.int32), q[int(i)].data.astype(np.int64)
            row = {"set": name, "postings_per_doc": kernels._postings_of(arrays, terms) / docs}
            reference = None
            for size in sizes:
                times = []
                for _ in range(4):  # the first warms up
                    started = time.perf_counter()
                    got = run(size, terms, weights)
                    times.append(time.perf_counter() - started)
                if reference is None:
                    reference = got
                elif not (np.array_equal(got[0], reference[0]) and np.array_equal(got[1], reference[1])):
                    raise AssertionError(f"slices of {size}: another top {k} for {name} query {i}")
                row[f"ms_{size}"] = min(times[1:]) * 1000
            rows.append(row)
    lines = ["| query set | queries | postings / documents | whole ms | " +
             " | ".join(f"slices of {s:,}" for s in sizes[1:]) + " |", "|---|---|---|---|" + "---|" * (len(sizes) - 1)]
    for name in ("dev", "light", "heavy"):
        group = [r for r in rows if r["set"] == name]
        whole = float(np.median([r["ms_0"] for r in group]))
        ratios = [float(np.median([r["ms_0"] / r[f"ms_{s}"] for r in group])) for s in sizes[1:]]
        lines.append(f"| {name} | {len(group)} | {np.median([r['postings_per_doc'] for r in group]):.2f} | "
                     f"{whole:.2f} | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |")
    out = {"docs": docs, "k": k, "rows": rows, "table": "\n".join(lines)}
    write_json(RESULTS / f"slices-{docs}.json", out)
    print(out["table"])
    return out


PEERS = ("numba", "scipy", "pisa-maxscore")


def peer_data(docs: int) -> Path:
    """benchmarks.run_system's data folder (docs.npz, queries-*.npz, encoded/) for the peers that take the corpus
    in memory; queries quantised with the index's scale, as every system gets the same integers."""
    from benchmarks.bench import write_data
    from indexing.base import quantize

    folder = CACHE / f"peers-{docs}"
    if (folder / "docs.npz").exists():
        return folder
    scale = json.loads((index_dir(docs) / "manifest.json").read_text())["scale"]
    matrix = quantised_corpus(docs)
    queries = {name: quantize(q, scale, None).astype(np.float32) for name, q in query_sets().items()}
    write_data(folder, matrix, queries, json.loads((encoded_dir(docs) / "vocab.json").read_text()), MODEL)
    return folder


def peers(docs: int, systems=PEERS, timing_queries: int = 200) -> list[dict]:
    """Each peer in a process of its own (benchmarks/run_system.py), under /usr/bin/time."""
    data = peer_data(docs)
    out = []
    for system in systems:
        prefix = RESULTS / f"peer-{docs}-{system}"
        result = timed([sys.executable, "-m", "benchmarks.run_system", "--system", system, "--data", str(data),
                        "--workdir", str(CACHE / f"work-{docs}-{system}"), "--output", str(prefix),
                        "--timing-queries", str(timing_queries)], prefix.with_suffix(".log"))
        summary = json.loads(prefix.with_suffix(".json").read_text()) if prefix.with_suffix(".json").exists() else {}
        summary["process"] = result
        write_json(prefix.with_suffix(".json"), summary)
        out.append(summary)
        print(f"{system}: {result}", flush=True)
    return out


def _usage() -> tuple[float, float]:
    """(wall, CPU) seconds so far, CPU of every thread of this process."""
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> dict:
    wall, cpu = _usage()
    return {"wall_s": round(wall - start[0], 1), "cpu_s": round(cpu - start[1], 1)}


def _peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ours_build(docs: int) -> dict:
    """`build_index` in this process, from the encoded shards on disk to the index folder (reading the shards
    included): wall and CPU seconds, per pass too, and peak memory. The same call `splade index` makes, without
    the command line's start (Python, its imports), which `build` measures."""
    from indexing.numba_index import build as build_module

    timings = []

    class _Passes(logging.Handler):
        def emit(self, record):
            if hasattr(record, "timing"):
                step, wall, cpu = record.timing
                timings.append({"step": step, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})

    handler = _Passes(logging.DEBUG)
    build_module.logger.addHandler(handler)
    build_module.logger.setLevel(logging.DEBUG)
    start = _usage()
    index = build_module.build_index(encoded_dir(docs), index_dir(docs), overwrite=True, progress=False)
    result = {"docs": docs, "system": "ours", "timed": "build_index: reading the shards, quantising, the index "
              "written", **_since(start), "peak_rss_mib": _peak_mib(),
              "index_mib": round(sum(p.stat().st_size for p in index_dir(docs).iterdir()) / 2**20, 1),
              "passes": timings}
    del index
    write_json(RESULTS / f"ours-build-{docs}.json", result)
    print(json.dumps(result), flush=True)
    return result


def quantised_corpus(docs: int) -> sp.csr_matrix:
    """The peers' input read from the same encoded shards our build reads, streamed: each shard quantised with the
    index's scale (the integers our index stores, as float32) as it is read, then stacked. The peers take the
    corpus in memory (5 bytes a posting here); the float shards are never held whole (9+ GiB at 8.84M)."""
    scale = json.loads((index_dir(docs) / "manifest.json").read_text())["scale"]
    parts = []
    for _, matrix in iter_shards(encoded_dir(docs)):
        matrix.sort_indices()
        q = quantize_rows(matrix, scale, 8, np.uint8)
        parts.append(sp.csr_matrix((q.data.astype(np.float32), q.indices, q.indptr), shape=q.shape))
        del matrix
    return sp.vstack(parts, format="csr")


def pisa_build(docs: int) -> dict:
    """PISA's build (benchmarks.systems.Pisa: its binary collection, compression, block maxima) on the same integers,
    timed in two parts: reading the encoded shards into its input (the corpus in memory, quantised), then its
    build alone. Our figure includes reading the shards, so "PISA incl. reading" is the like-for-like one."""
    import shutil

    from benchmarks.systems import Data, Pisa

    start = _usage()
    matrix = quantised_corpus(docs)
    reading = {**_since(start), "peak_rss_mib": _peak_mib()}
    data = Data(docs=matrix, queries={}, folder=CACHE)
    work = CACHE / f"work-{docs}-pisa-build"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    start = _usage()
    system = Pisa("maxscore")
    system.build(data, work)
    building = _since(start)
    result = {"docs": docs, "system": "PISA MaxScore", "reading_shards": reading, **building,
              "with_reading": {"wall_s": round(building["wall_s"] + reading["wall_s"], 1),
                               "cpu_s": round(building["cpu_s"] + reading["cpu_s"], 1)},
              "peak_rss_mib": _peak_mib(), "index_mib": round(system.size_bytes() / 2**20, 1),
              "corpus_in_memory_mib": round((matrix.data.nbytes + matrix.indices.nbytes) / 2**20, 1)}
    write_json(RESULTS / f"pisa-build-{docs}.json", result)
    print(json.dumps(result), flush=True)
    return result


def compare(docs: int) -> dict:
    """Our build and PISA's on the same vectors, back to back, each in a fresh process (one run: on a shared
    machine only figures taken together compare), then the `splade index` command as a user runs it."""
    out = {"docs": docs}
    for step in ("ours-build", "pisa-build"):
        code = subprocess.call([sys.executable, "-m", "benchmarks.scale", step, "--docs", str(docs)], cwd=ROOT)
        if code:
            raise RuntimeError(f"benchmarks.scale {step} --docs {docs} failed (exit {code})")
    out["ours"] = json.loads((RESULTS / f"ours-build-{docs}.json").read_text())
    out["pisa"] = json.loads((RESULTS / f"pisa-build-{docs}.json").read_text())
    out["cli"] = build(docs)
    ours, pisa = out["ours"]["cpu_s"], out["pisa"]
    out["ratio_cpu_to_pisa_build_only"] = round(ours / pisa["cpu_s"], 2)
    out["ratio_cpu_to_pisa_with_reading"] = round(ours / pisa["with_reading"]["cpu_s"], 2)
    write_json(RESULTS / f"compare-{docs}.json", out)
    print(json.dumps({k: v for k, v in out.items() if k.startswith("ratio")}), flush=True)
    return out


def _compare_table() -> list[str]:
    """The build-time comparison of `compare`, per size: CPU seconds are the figure (the wall clock of a shared
    machine measures the neighbours too)."""
    lines = []
    for path in sorted(RESULTS.glob("compare-*.json")):
        c = json.loads(path.read_text())
        ours, pisa, cli = c["ours"], c["pisa"], c["cli"]
        if not lines:
            lines = ["", "Build time on the same vectors, one run, back to back (`python -m benchmarks.scale compare "
                     "--docs N`):", "", "| passages | system, what is timed | CPU s | wall s | peak RSS MiB | "
                     "ours / this (CPU) |", "|---|---|---|---|---|---|"]
        rows = [("ours: `build_index`, reading the shards included", ours["cpu_s"], ours["wall_s"],
                 ours["peak_rss_mib"]),
                ("ours: `splade index` command (with Python's start and imports)", cli["cpu_s"], cli["wall_s"],
                 cli["peak_rss_mib"]),
                ("PISA MaxScore: build only (input already in memory)", pisa["cpu_s"], pisa["wall_s"],
                 pisa["peak_rss_mib"]),
                ("PISA MaxScore: reading the same shards into its input, then the build",
                 pisa["with_reading"]["cpu_s"], pisa["with_reading"]["wall_s"], pisa["peak_rss_mib"])]
        for name, cpu, wall, peak in rows:
            ratio = "" if name.startswith("ours") else f"{ours['cpu_s'] / cpu:.2f}x"
            lines.append(f"| {c['docs']:,} | {name} | {cpu:,.1f} | {wall:,.1f} | {peak:,.0f} | {ratio} |")
        passes = ", ".join(f"{p['step']} {p['cpu_s']:.1f}" for p in ours.get("passes", []))
        lines.append(f"| {c['docs']:,} | ours per step, CPU s: {passes} | | | | |")
    return lines


def _rows() -> list[dict]:
    """One row per (passages, system, query set) from the results folder."""
    rows = []
    for path in sorted(RESULTS.glob("build-*.json")):
        b = json.loads(path.read_text())
        docs = b["docs"]
        for search_path in sorted(RESULTS.glob(f"search-{docs}*.json")):
            runs = json.loads(search_path.read_text())["runs"]
            for name in dict.fromkeys(r["name"] for r in runs):
                for qset in dict.fromkeys(r["set"] for r in runs):
                    peak = b.get("peak_rss_mib")
                    if b.get("build_phase_vmhwm_mib"):
                        peak = f"{peak:,.0f} (build phase {b['build_phase_vmhwm_mib']:,.0f})"
                    rows.append({"docs": docs, "system": name, "set": qset, "build_peak_mib": peak,
                                 "build_s": b.get("wall_s"), "build_cpu_s": b.get("cpu_s"),
                                 "index_mib": b.get("index_mib"),
                                 **_latencies([r for r in runs if r["name"] == name and r["set"] == qset])})
        pisa = RESULTS / f"pisa-build-{docs}.json"
        if pisa.exists():
            p = json.loads(pisa.read_text())
            rows.append({"docs": docs, "system": "PISA MaxScore, build only (corpus already in memory)", "set": "-",
                         "build_peak_mib": p["peak_rss_mib"], "build_s": p["wall_s"], "build_cpu_s": p["cpu_s"],
                         "index_mib": p["index_mib"]})
            if "with_reading" in p:
                rows.append({"docs": docs, "system": "PISA MaxScore, reading the shards + build", "set": "-",
                             "build_peak_mib": p["peak_rss_mib"], "build_s": p["with_reading"]["wall_s"],
                             "build_cpu_s": p["with_reading"]["cpu_s"], "index_mib": p["index_mib"]})
        for peer_path in sorted(RESULTS.glob(f"peer-{docs}-*.json")):
            p = json.loads(peer_path.read_text())
            if not p.get("ok"):
                rows.append({"docs": docs, "system": p.get("system", peer_path.stem), "set": "-",
                             "note": (p.get("error") or "did not run")[:120]})
                continue
            for qset in dict.fromkeys(r["set"] for r in p["runs"]):
                rows.append({"docs": docs, "system": p["name"], "set": qset, "build_peak_mib": p["build_peak_mib"],
                             "build_s": p["build_s"], "index_mib": p["size_mib"],
                             **_latencies([r for r in p["runs"] if r["set"] == qset])})
    return rows + _peers_not_run(rows)


# A process past this is killed on the 24 GiB machine (no swap), so a peer projected beyond it is not started.
USABLE_MIB = 22 * 1024


def _peers_not_run(rows: list[dict]) -> list[dict]:
    """For every size with an index but no run of a peer measured at a smaller size: a row saying what the peer
    would need there, its whole-process peak at the smaller size scaled by the passages (the peers hold the whole
    corpus in memory, so their peak grows with it; the 1M peaks are 2.4 GiB scipy, 2.8 numba, 4.2 PISA)."""
    measured = {}  # system -> (docs, peak MiB, name) at the largest size it ran
    for path in sorted(RESULTS.glob("peer-*-*.json")):
        p = json.loads(path.read_text())
        peak = p.get("process", {}).get("peak_rss_mib")
        if p.get("ok") and peak:
            system = p.get("system", path.stem.split("-", 2)[-1])
            docs = int(path.stem.split("-")[1])
            if docs > measured.get(system, (0,))[0]:
                measured[system] = (docs, peak, p["name"])
    ran = {(r["docs"], r["system"]) for r in rows}
    out = []
    for docs in sorted({r["docs"] for r in rows}):
        for at, peak, name in measured.values():
            if docs <= at or (docs, name) in ran:
                continue
            need = peak * docs / at
            verdict = ("does not fit in 24 GiB" if need > USABLE_MIB
                       else "fits: run it with `python -m benchmarks.scale peers --docs " + str(docs) + "`")
            out.append({"docs": docs, "system": name, "set": "-",
                        "note": f"not run; would need about {need / 1024:,.1f} GiB ({peak / 1024:,.1f} GiB at "
                                f"{at:,} passages, scaled): {verdict}"})
    return out


def _latencies(runs: list[dict]) -> dict:
    out = {}
    for r in runs:
        out[f"k{r['k']}"] = f"{r['median_ms']:.1f} / {r['p99_ms']:.1f}"
        out[f"qps{r['k']}"] = f"{r['qps_all_cores']:.0f}"
    return out


def table() -> str:
    """benchmarks/results/scale/scale.md (the table) and scale.png (cost against size)."""
    rows = _rows()
    head = ("| passages | system | queries | build peak MiB | build wall s | build CPU s | index MiB | "
            "k=10 median / p99 ms | k=1000 median / p99 ms | q/s k=10 (2 cores) | q/s k=1000 |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        if "note" in r:
            note = r["note"] if r["note"].startswith("not run") else f"did not fit or failed: {r['note']}"
            lines.append(f"| {r['docs']:,} | {r['system']} | - | {note} |||||||| ")
            continue
        cpu = "-" if r.get("build_cpu_s") is None else f"{r['build_cpu_s']:,.0f}"
        peak = r["build_peak_mib"] if isinstance(r["build_peak_mib"], str) else f"{r['build_peak_mib']:,.0f}"
        lines.append(f"| {r['docs']:,} | {r['system']} | {r['set']} | {peak} | "
                     f"{r['build_s']:,.0f} | {cpu} | {r['index_mib']:,.0f} | {r.get('k10', '-')} | "
                     f"{r.get('k1000', '-')} | {r.get('qps10', '-')} | {r.get('qps1000', '-')} |")
    text = "\n".join(lines + _compare_table()) + "\n"
    write_text(RESULTS / "scale.md", text)
    _plot(rows)
    print(text)
    return text


def _plot(rows: list[dict]) -> None:
    import matplotlib  # deferred: only the table step draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    builds = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("build-*.json"))]
    builds = [b for b in builds if b.get("rc") == 0]
    x = [b["docs"] / 1e6 for b in builds]
    axes[0].plot(x, [b["peak_rss_mib"] / 1024 for b in builds], "o-", label="peak, with the final load")
    axes[0].plot(x, [b.get("build_phase_vmhwm_mib", b["peak_rss_mib"]) / 1024 for b in builds], "^-",
                 label="peak of the build phase")
    axes[0].plot(x, [b["index_mib"] / 1024 for b in builds], "s--", label="index on disk")
    axes[0].plot(x, [b["index_mib"] / 1024 + 1.5 for b in builds], ":", label="limit: index + 1.5 GiB")
    axes[0].set(xlabel="passages (millions)", ylabel="GiB", title="index build memory")
    axes[1].plot(x, [b["wall_s"] for b in builds], "o-", label="ours (splade index)")
    axes[1].set(xlabel="passages (millions)", ylabel="seconds", title="build time")
    pisa = sorted((r["docs"] / 1e6, r["build_s"]) for r in rows
                  if r.get("system", "").startswith("PISA") and "build_s" in r and r["set"] == "dev")
    if pisa:
        axes[1].plot(*zip(*pisa), "x", color="k", label="PISA MaxScore build (corpus already in memory)")
    for system in dict.fromkeys(r["system"] for r in rows if r.get("set") == "dev"):
        pts = sorted((r["docs"] / 1e6, float(r["k1000"].split("/")[0])) for r in rows
                     if r["system"] == system and r.get("set") == "dev" and "k1000" in r)
        if pts:
            axes[2].plot(*zip(*pts), "o-", label=system)
    axes[2].set(xlabel="passages (millions)", ylabel="median ms (one thread)", title="k=1000, MS MARCO dev queries")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(RESULTS / "scale.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("generate", "build", "ours-build", "pisa-build", "compare", "search",
                                         "crossover", "slices", "peers", "table"))
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--part", default=None,
                        help="I/N: only draw every N-th pool shard from the I-th (for N processes)")
    parser.add_argument("--systems", default=",".join(PEERS), help="peers for the peers step")
    parser.add_argument("--methods", default="pruned,exhaustive,auto", help="search methods of the search step")
    parser.add_argument("--timing-queries", type=int, default=200, help="queries timed one by one per set and k")
    parser.add_argument("--mmap", action="store_true", help="search the index memory-mapped")
    parser.add_argument("--ks", default="10,1000", help="the k values of the crossover step")
    parser.add_argument("--slice-sizes", default="16384,65536,262144,1048576",
                        help="accumulator slices (slots) of the slices step, against the whole accumulator")
    args = parser.parse_args(argv)
    if args.step == "generate" and args.part:
        fill_pool(args.docs, *(int(x) for x in args.part.split("/")))
    elif args.step == "generate":
        generate(args.docs)
    elif args.step == "build":
        build(args.docs)
    elif args.step == "pisa-build":
        pisa_build(args.docs)
    elif args.step == "ours-build":
        ours_build(args.docs)
    elif args.step == "compare":
        compare(args.docs)
    elif args.step == "table":
        table()
    elif args.step == "crossover":
        crossover(args.docs, ks=tuple(int(k) for k in args.ks.split(",")))
    elif args.step == "slices":
        slices(args.docs, sizes=(0, *(int(x) for x in args.slice_sizes.split(","))))
    elif args.step == "peers":
        peers(args.docs, args.systems.split(","))
    elif args.step == "search":
        search(args.docs, methods=tuple(args.methods.split(",")), mmap=args.mmap, timing_queries=args.timing_queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
