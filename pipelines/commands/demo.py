"""`splade demo`: every stage once, end to end, and a check of the index against brute-force scoring."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipelines.commands import _flags


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="fetch a model, encode, index, retrieve and evaluate in one go",
        description="Run the whole pipeline on --dataset with --model and print the metrics. The default dataset is "
                    "the small collection embedded in the project (offline); online, try --dataset beir/scifact.")
    _flags.model(p)
    _flags.dataset(p, default="demo")
    _flags.output(p, "working folder (encoded/, index/, run.trec, metrics.json; default outputs/<model>/<dataset>)", required=False)
    _flags.lengths(p)
    p.add_argument("--k", type=int, default=1000, help="documents retrieved per query (default: %(default)s)")
    p.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    from evaluation.metrics import evaluate_convention, format_table
    from contracts.trec import read_qrels, write_run
    from contracts.atomic import write_json
    from indexing.numba_index.build import build_index
    from contracts.encoded import read_encoded
    from indexing.encode import encode_corpus
    from pipelines.commands.stages import make_encoder
    from pipelines.datasets import resolve_dataset
    from pipelines.layout import work_dir
    from retrieval.brute_force import brute_force_search
    from retrieval.search import retrieve

    started = time.perf_counter()
    out = Path(args.output) if args.output else work_dir(args.model, args.dataset)
    dataset = resolve_dataset(args.dataset)
    encoder = make_encoder(args.model, args)
    print(f"model {args.model} ({encoder.model_path}), dataset {dataset.name} ({dataset.folder}), output {out}")

    encode_corpus(encoder, dataset.corpus(), out / "encoded", total=dataset.count_documents(), source=dataset.source())
    index = build_index(out / "encoded", out / "index", overwrite=True)
    queries = dataset.queries()
    query_vectors = encoder.encode_queries([text for _, text in queries], progress=True)
    run = retrieve(encoder, index, queries, k=args.k, vectors=query_vectors)
    write_run(out / "run.trec", run, tag=f"splade-{Path(str(args.model)).name}")

    # The check: the same quantised vectors scored exhaustively with scipy, and the unquantised float scores.
    doc_ids, docs = read_encoded(out / "encoded")
    exact = brute_force_search(query_vectors, docs, doc_ids, k=args.k, scale=index.scale, bits=index.manifest["bits"])
    floats = brute_force_search(query_vectors, docs, doc_ids, k=args.k)
    qids = [qid for qid, _ in queries]
    qrels = read_qrels(dataset.qrels_path)
    runs = {
        "impact index (numba)": [run[q] for q in qids],
        "brute force, same integers": exact,
        "brute force, float weights": floats,
    }
    rows = {name: evaluate_convention(qrels, {q: dict(h) for q, h in zip(qids, hits)}, "default")
            for name, hits in runs.items()}
    identical = all(run[q] == hits for q, hits in zip(qids, exact))
    write_json(out / "metrics.json", {"model": str(args.model), "dataset": dataset.name, "metrics": rows,
                                      "index_equals_brute_force": identical})
    print()
    print(format_table(rows, label="scoring"))
    print()
    print(f"index top-{args.k} identical to brute-force scoring of the same integers: {'yes' if identical else 'NO'}")
    print(f"{index.num_docs:,} documents, {len(queries):,} queries, {time.perf_counter() - started:.1f} s in all; "
          f"files in {out}")
    return 0 if identical else 1
