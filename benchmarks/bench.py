"""`make bench`: every system on identical vectors in one run, then the table and the speed-versus-accuracy plot.

  python -m benchmarks.bench --docs 1000000            # synthetic (seeded) + real vectors, all systems
  python -m benchmarks.bench --docs 100000 --skip seismic,bmp --no-real

Collections: the seeded synthetic one (benchmarks/synthetic.py; light and heavy query sets) and, unless --no-real,
the TREC DL 2019 pool encoded with splade-tiny with MS MARCO dev queries (benchmarks/real_vectors.py). All
systems get the same quantised integers. Each system runs in its own process (benchmarks/run_system.py).
Accuracy is the overlap of a system's top 10 with the exact top 10 of the reference exhaustive scorer.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
REFERENCE = "numba"  # the independent exhaustive scorer every other system is checked against
DEFAULT_SYSTEMS = ("numba,ours:1/0.95/0.9/0.85/0.8/0.7,ours-exhaustive,scipy,pisa-maxscore,pisa-bmw,lucene,"
                   "bmp:1/0.8,seismic:0.6/0.7/0.8/0.9/1,kannolo")


# ------------------------------------------------------------------------------------------------ data
def write_data(folder: Path, docs: sp.csr_matrix, queries: dict[str, sp.csr_matrix], vocab: list[str],
               model: str) -> None:
    """docs.npz, queries-<set>.npz and encoded/ (the shard layout our index and the Lucene export read)."""
    from contracts.atomic import atomic_path
    from contracts.encoded import write_encoded
    from indexing.encoder import vocabulary_hash

    info = {"model": model, "vocab_hash": vocabulary_hash(vocab), "query_max_length": None, "doc_max_length": None}
    write_encoded(folder / "encoded", [str(i) for i in range(docs.shape[0])], docs, vocab, info, shard_size=200_000)
    for set_name, q in queries.items():
        with atomic_path(folder / f"queries-{set_name}.npz") as tmp, open(tmp, "wb") as f:
            sp.save_npz(f, sp.csr_matrix(q, dtype=np.float32))
    with atomic_path(folder / "docs.npz") as tmp, open(tmp, "wb") as f:  # last: its presence marks the folder done
        sp.save_npz(f, sp.csr_matrix(docs, dtype=np.float32), compressed=False)


def synthetic_data(cache: Path, num_docs: int, num_queries: int, seed: int) -> Path:
    from benchmarks import synthetic

    folder = cache / f"synthetic-{num_docs}-q{num_queries}-seed{seed}"
    if (folder / "docs.npz").exists():
        return folder
    started = time.perf_counter()
    spec = synthetic.SyntheticSpec(num_docs=num_docs, num_queries=num_queries, seed=seed)
    docs, light, heavy = synthetic.collection(spec)
    write_data(folder, docs, {"light": light, "heavy": heavy}, [f"t{i}" for i in range(spec.vocab)], "synthetic")
    print(f"synthetic collection: {num_docs:,} docs, {docs.nnz / num_docs:.1f} non-zeros per doc, queries "
          f"{light.nnz / light.shape[0]:.1f} / {heavy.nnz / heavy.shape[0]:.1f} non-zeros, "
          f"in {time.perf_counter() - started:.0f} s",
          flush=True)
    return folder


def real_data(cache: Path, num_queries: int, allow_partial: bool) -> Path:
    """The TREC DL 2019 pool and MS MARCO dev queries, quantised once with the numba index's default scale."""
    from benchmarks import real_vectors
    from indexing.base import default_scale, quantize

    folder = cache / f"real-trec-dl-2019-splade-tiny-q{num_queries}"
    if (folder / "docs.npz").exists():
        return folder
    docs, queries, encoded = real_vectors.encode_real(cache=cache, max_queries=num_queries, allow_partial=allow_partial)
    scale = default_scale(float(docs.data.max()), 8)
    qd = quantize(docs, scale, 8).astype(np.float32)
    qq = quantize(queries, scale, None).astype(np.float32)
    qq = qq[np.diff(qq.indptr) > 0]
    vocab = json.loads((encoded / "vocab.json").read_text())
    write_data(folder, qd, {"msmarco-dev": qq}, vocab, "splade-tiny")
    print(f"real vectors: {qd.shape[0]:,} docs, {qd.nnz / qd.shape[0]:.1f} non-zeros per doc, {qq.shape[0]:,} queries, "
          f"{qq.nnz / qq.shape[0]:.1f} non-zeros per query (scale {scale:.2f})", flush=True)
    return folder


# ------------------------------------------------------------------------------------------------ running
def run_all(data: Path, systems: list[str], out: Path, ks: str, timing_queries: int, timeout: int,
            reuse: bool = False) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for spec in systems:
        prefix = out / spec.split(":")[0]
        done = Path(str(prefix) + ".json")
        if reuse and done.exists() and json.loads(done.read_text()).get("system") == spec:
            print(f"--- {spec} on {data.name}: results of an earlier run reused", flush=True)
            summaries.append(json.loads(done.read_text()))
            continue
        cmd = [sys.executable, "-m", "benchmarks.run_system", "--system", spec, "--data", str(data),
               "--workdir", str(out / "indexes" / spec.split(":")[0]), "--output", str(prefix), "--ks", ks,
               "--timing-queries", str(timing_queries)]
        print(f"--- {spec} on {data.name}", flush=True)
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=HERE.parent, timeout=timeout, stderr=subprocess.PIPE, text=True)
            err = proc.stderr
        except subprocess.TimeoutExpired as e:
            err = (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            err += f"\nTimeoutExpired: more than {timeout} s"
        sys.stderr.write(err[-2000:])
        summary_path = Path(str(prefix) + ".json")
        if summary_path.exists() and summary_path.stat().st_mtime >= time.time() - (time.perf_counter() - started) - 5:
            summary = json.loads(summary_path.read_text())
        else:
            summary = {"system": spec, "name": spec, "ok": False,
                       "error": (err.strip().splitlines() or ["no output"])[-1][:500]}
        summaries.append(summary)
    return summaries


def accuracy(out: Path, summaries: list[dict]) -> None:
    """Top-10 overlap with the reference and whether every rank's score equals the reference's."""
    ref_path = out / f"{REFERENCE}.npz"
    if not ref_path.exists():
        return
    ref = np.load(ref_path)
    ref_name = next((s["runs"][0]["name"] for s in summaries if s.get("system") == REFERENCE and s.get("ok")), None)
    for s in summaries:
        if not s.get("ok"):
            continue
        res = np.load(out / f"{s['system'].split(':')[0]}.npz")
        for run in s["runs"]:
            key = f"{run['name']}|{run['set']}|{run['k']}"
            rkey = f"{ref_name}|{run['set']}|{run['k']}"
            if key + "|docs" not in res or rkey + "|docs" not in ref:
                continue
            docs, scores = res[key + "|docs"], res[key + "|scores"]
            rdocs, rscores = ref[rkey + "|docs"][: docs.shape[0]], ref[rkey + "|scores"][: docs.shape[0]]
            run["queries_checked"] = int(docs.shape[0])
            overlap = [len(set(docs[i, :10][docs[i, :10] >= 0]) & set(rdocs[i, :10][rdocs[i, :10] >= 0]))
                       / max(1, min(10, int((rdocs[i, :10] >= 0).sum()))) for i in range(docs.shape[0])]
            run["top10_overlap"] = float(np.mean(overlap))
            run["same_scores"] = bool(np.array_equal(np.rint(scores), rscores))
            run["same_docs"] = bool(np.array_equal(docs, rdocs))


# ------------------------------------------------------------------------------------------------ report
def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def table(summaries: list[dict], title: str) -> str:
    lines = [f"### {title}", "",
             "| system | set | k | median ms | p99 ms | CPU median ms | q/s all cores | top-10 overlap | exact scores "
             "| index MiB | build s | build peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        if not s.get("ok"):
            error = s.get("error", "?").replace("|", "/")
            lines.append(f"| {s.get('name', s['system'])} | | | failed: {error} | | | | | | | | |")
            continue
        first = True
        for run in s["runs"]:
            extra = (f"{s['size_mib']:,.0f} | {s['build_s']:.1f} | {s['build_peak_mib']:,.0f}" if first else " | | ")
            first = False
            same = run.get("same_scores")
            few = "" if run["queries_timed"] >= 100 else f" ({run['queries_timed']} q)"
            lines.append(
                f"| {run['name']} | {run['set']} | {run['k']} | {run['median_ms']:.2f} | {run['p99_ms']:.2f} | "
                f"{run.get('cpu_median_ms', float('nan')):.2f}{few} | "
                f"{run['qps_all_cores']:,.0f} | {run.get('top10_overlap', float('nan')):.3f} | "
                f"{'yes' if same else ('no' if same is not None else '?')} | {extra} |")
    return "\n".join(lines)


def where_time_goes(summaries: list[dict], bandwidth_gbs: float) -> str:
    """Postings our exact search touches against the exhaustive count and the memory-bandwidth floor."""
    out = []
    ours = next((s for s in summaries if s.get("system", "").startswith("ours") and s.get("ok")
                 and s.get("family") == "ours" and s["name"] == "ours"), None)  # pruned search, not auto
    if not ours:
        return ""
    out.append(f"Memory-bandwidth floor at {bandwidth_gbs:.1f} GB/s (measured copy bandwidth), 2 bytes per posting "
               f"(uint8 slot + uint8 impact) and 3 per block maximum read (uint16 block + uint8 maximum):")
    out.append("")
    out.append("| search | set | k | blocks scored | postings scored | block maxima read | floor ms | median ms "
               "| x floor |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for run in ours["runs"]:
        if "postings_per_query" not in run:
            continue
        floor = (run["postings_per_query"] * 2 + run["maxima_per_query"] * 3) / (bandwidth_gbs * 1e9) * 1000
        out.append(f"| {run['name']} | {run['set']} | {run['k']} | {run['blocks_per_query']:,.0f} | "
                   f"{run['postings_per_query']:,.0f} | {run['maxima_per_query']:,.0f} | {floor:.3f} | "
                   f"{run['median_ms']:.2f} | {run['median_ms'] / max(floor, 1e-9):.0f} |")
    return "\n".join(out)


def copy_bandwidth() -> float:
    a = np.ones(64 * 2**20 // 8)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best / 1e9  # read + write


def plot(all_summaries: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, set_name, k) for name, summaries in all_summaries.items()
              for set_name in sorted({r["set"] for s in summaries if s.get("ok") for r in s["runs"]})
              for k in (10, 1000)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (name, set_name, k) in zip(axes[0], panels):
        for s in all_summaries[name]:
            if not s.get("ok"):
                continue
            pts = [(r["median_ms"], r.get("top10_overlap", np.nan), r["name"]) for r in s["runs"]
                   if r["set"] == set_name and r["k"] == k]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, marker="o", label=s["name"] if len(pts) > 1 else pts[0][2])
        ax.set_xscale("log")
        ax.set_xlabel("median ms per query, one thread (log)")
        ax.set_ylabel("top-10 overlap with exact")
        ax.set_title(f"{name}: {set_name}, k={k}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000, help="synthetic collection size (1000000 or 100000)")
    parser.add_argument("--queries", type=int, default=500, help="queries per synthetic set (all used for q/s)")
    parser.add_argument("--real-queries", type=int, default=2000, help="MS MARCO dev queries")
    parser.add_argument("--timing-queries", type=int, default=200, help="queries timed one at a time per set and k")
    parser.add_argument("--ks", default="10,1000")
    parser.add_argument("--systems", default=DEFAULT_SYSTEMS, help=f"comma-separated (default {DEFAULT_SYSTEMS})")
    parser.add_argument("--skip", default="", help="systems to leave out (by name before the colon), e.g. seismic,bmp")
    parser.add_argument("--no-real", action="store_true", help="synthetic collection only")
    parser.add_argument("--no-synthetic", action="store_true", help="real vectors only")
    parser.add_argument("--partial-real", action="store_true",
                        help="use the encoded shards done so far if encoding is unfinished")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reuse-results", action="store_true",
                        help="keep the results of systems already measured with the same settings (delete a system's "
                             "json under <cache>/runs/ to measure it again)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per system before it is reported as failed")
    parser.add_argument("--cache", type=Path, default=HERE / "cache")
    parser.add_argument("--output", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    systems = [s for s in args.systems.split(",") if s and s.split(":")[0] not in skip]
    if REFERENCE not in [s.split(":")[0] for s in systems]:
        systems.insert(0, REFERENCE)
    collections = []
    if not args.no_synthetic:
        collections.append((f"synthetic {args.docs:,} docs",
                            synthetic_data(args.cache, args.docs, args.queries, args.seed)))
    if not args.no_real:
        collections.append(("TREC DL 2019 pool, splade-tiny",
                            real_data(args.cache, args.real_queries, args.partial_real)))
    bandwidth = copy_bandwidth()
    report = [f"Machine: {machine()}; measured copy bandwidth {bandwidth:.1f} GB/s.", ""]
    all_summaries = {}
    for title, folder in collections:
        out = args.cache / "runs" / folder.name  # indexes and result arrays: large, git-ignored
        summaries = run_all(folder, systems, out, args.ks, args.timing_queries, args.timeout, args.reuse_results)
        accuracy(out, summaries)
        args.output.mkdir(parents=True, exist_ok=True)
        for s in summaries:
            s.pop("traceback", None)
        (args.output / f"{folder.name}.json").write_text(json.dumps(summaries, indent=2))
        all_summaries[title] = summaries
        report += [table(summaries, title), "", where_time_goes(summaries, bandwidth), ""]
    text = "\n".join(report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.md").write_text(text + "\n")
    plot(all_summaries, args.output / "speed-accuracy.png")
    print(text)
    print(f"\nwritten: {args.output / 'results.md'}, {args.output / 'speed-accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
