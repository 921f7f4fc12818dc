"""`splade lucene-compare`: build both back ends from one encoded corpus, check they agree, measure them.

It is the reproduction command behind the README's back-end table: index size, build time, query latency for the
numba and the Lucene index, and the parity check (same documents, same scores, same order for every query).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipelines.commands import _flags


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lucene-compare", help="build the numba and the Lucene index, check they return the same runs, time both",
        description="Encode --dataset with --model (or take --encoded), build both back ends under --output, check "
                    "that every query gets the same top-k documents with the same scores from each, and write index "
                    "size (whole folder), build time and per-query latency (one query at a time, one thread) to "
                    "--output/figures.json. Exits 1 when any query differs.",
    )
    _flags.model(p)
    _flags.dataset(p)
    _flags.output(p, "folder for the encoded corpus (unless --encoded), both indexes, runs and figures.json")
    p.add_argument("--encoded", default=None, help="an encoded corpus to use instead of encoding --dataset")
    p.add_argument("--k", type=int, nargs="+", default=[1000, 10], help="depths to check and time (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="Lucene indexing and batch-search threads (default: %(default)s)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bits per impact (default: %(default)s)")
    p.set_defaults(func=compare_command)


def compare_command(args: argparse.Namespace) -> int:
    import numpy as np

    from contracts.trec import write_run
    from contracts.atomic import write_json
    from indexing.numba_index.build import build_index
    from indexing.lucene_index.build import build_lucene_index
    from indexing.lucene_index.index import directory_size
    from indexing.encode import encode_corpus
    from pipelines.commands.stages import make_encoder
    from pipelines.datasets import resolve_dataset

    out = Path(args.output)
    dataset = resolve_dataset(args.dataset)
    encoder = make_encoder(args.model, args)
    encoded = Path(args.encoded) if args.encoded else out / "encoded"
    if not args.encoded:
        encode_corpus(encoder, dataset.corpus(), encoded, total=dataset.count_documents(), source=dataset.source())

    figures: dict = {"dataset": args.dataset, "model": args.model, "bits": args.bits, "threads": args.threads}
    started = time.perf_counter()
    numba = build_index(encoded, out / "numba", bits=args.bits, overwrite=True)
    figures["numba"] = {"build_s": round(time.perf_counter() - started, 2), "size_mib": round(directory_size(numba.path) / 2**20, 2)}
    started = time.perf_counter()
    lucene = build_lucene_index(encoded, out / "lucene", bits=args.bits, overwrite=True, threads=args.threads)
    figures["lucene"] = {"build_s": round(time.perf_counter() - started, 2), "size_mib": round(directory_size(lucene.path) / 2**20, 2),
                         "lucene_files_mib": round(lucene.size_bytes() / 2**20, 2)}

    queries = dataset.queries()
    qids = [qid for qid, _ in queries]
    lucene.check_vocabulary(encoder.vocab_hash, encoder.vocab_size)
    vectors = encoder.encode_queries([text for _, text in queries])
    all_equal = True
    for k in args.k:
        lucene_hits = lucene.search(vectors, k=k, threads=args.threads)
        numba_hits = numba.search(vectors, k=k)
        same = sum(a == b for a, b in zip(lucene_hits, numba_hits))
        all_equal &= same == len(qids)
        figures[f"parity@{k}"] = {"queries": len(qids), "identical": same}
        if same != len(qids):
            row = next(i for i, (a, b) in enumerate(zip(lucene_hits, numba_hits)) if a != b)
            print(f"k={k}: query {qids[row]} differs: lucene {lucene_hits[row][:5]} numba {numba_hits[row][:5]}")
        write_run(out / "runs" / f"lucene-k{k}.trec", dict(zip(qids, lucene_hits)), tag="lucene")
        write_run(out / "runs" / f"numba-k{k}.trec", dict(zip(qids, numba_hits)), tag="numba")
        for name, index, kwargs in (("numba", numba, {}), ("lucene", lucene, {"threads": 1})):
            index.search(vectors[:5], k=k, **kwargs)  # warm up: numba compiles, the JVM loads classes
            ms = []
            for row in range(vectors.shape[0]):
                t = time.perf_counter()
                index.search(vectors[row], k=k, **kwargs)
                ms.append(1000 * (time.perf_counter() - t))
            figures[name][f"latency_ms@{k}"] = {"median": round(float(np.median(ms)), 3), "p99": round(float(np.percentile(ms, 99)), 3)}
    write_json(out / "figures.json", figures)
    print(json.dumps(figures, indent=2))
    print("parity: " + ("every query identical at every k" if all_equal else "DIFFERENCES (see above)"))
    return 0 if all_equal else 1
