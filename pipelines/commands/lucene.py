"""`splade lucene-compare`: build both back ends from one encoded corpus, check they agree, measure them.

It is the reproduction command behind the README's back-end table: index size, build time, query latency for the
numba and the Lucene index, and the parity check (same documents, same scores, same order for every query).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.commands import _flags
from pipelines.commands._checks import folder_output, positive_int
from pipelines.commands.stages import make_encoder
from pipelines.datasets import resolve_dataset
from pipelines.workflows import compare_backends, encode_dataset


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
    p.add_argument("--k", type=positive_int, nargs="+", default=[1000, 10],
                   help="depths to check and time (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=2,
                   help="Lucene indexing and batch-search threads (default: %(default)s)")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bits per impact (default: %(default)s)")
    p.set_defaults(func=compare_command)


def compare_command(args: argparse.Namespace) -> int:
    """Build both back ends from one encoded corpus, compare their runs query by query, time them."""
    out = folder_output(args.output)
    dataset = resolve_dataset(args.dataset)
    queries = dataset.queries()
    encoder = make_encoder(args.model, args)
    encoded = Path(args.encoded) if args.encoded else out / "encoded"
    if not args.encoded:
        encode_dataset(encoder, dataset, encoded)

    comparison = compare_backends(encoder, queries, encoded, out, args.k, bits=args.bits, threads=args.threads,
                                  labels={"dataset": args.dataset, "model": args.model})
    for k, difference in comparison.differences.items():
        print(f"k={k}: {difference}")
    print(json.dumps(comparison.figures, indent=2))
    print("parity: " + ("every query identical at every k" if comparison.identical else "DIFFERENCES (see above)"))
    return 0 if comparison.identical else 1
