"""`splade encode`, `splade index`, `splade retrieve`: one stage each, files in and files out."""
from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.commands import _flags


def register(subparsers) -> None:
    p = subparsers.add_parser("encode", help="encode a corpus into sparse-vector shards (resumes where it stopped)",
                              description="Encode the corpus of --dataset with --model into numbered CSR shards and a "
                                          "manifest in --output. Killed and started again, it continues at the first "
                                          "missing shard.")
    _flags.model(p)
    _flags.dataset(p)
    _flags.output(p, "folder of the encoded shards")
    _flags.lengths(p)
    p.add_argument("--shard-size", type=int, default=2000, help="documents per shard (default: %(default)s)")
    p.set_defaults(func=encode_command)

    p = subparsers.add_parser("index", help="build an impact index from encoded shards",
                              description="Quantise encoded shards (round(w * scale) into unsigned integers) and build "
                                          "an impact inverted index: this project's numba index, or a Lucene index.")
    p.add_argument("--encoded", required=True, help="folder written by `splade encode`")
    _flags.output(p, "index folder to create")
    _flags.backend(p)
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bits per impact (default: %(default)s)")
    p.add_argument("--scale", type=float, default=None,
                   help="quantisation scale (default: the largest that keeps every weight within --bits)")
    p.add_argument("--overwrite", action="store_true", help="replace an index already in --output")
    p.set_defaults(func=index_command)

    p = subparsers.add_parser("retrieve", help="encode queries, search an index, write a TREC run",
                              description="Encode the queries of --dataset with the index's model (or --model) and "
                                          "write the top --k documents of each to a TREC run file.")
    p.add_argument("--model", default=None, help="query encoder (default: the model the index was built with)")
    _flags.dataset(p)
    _flags.index(p)
    _flags.backend(p)
    _flags.output(p, "TREC run file to write")
    p.add_argument("--k", type=int, default=1000, help="documents per query (default: %(default)s)")
    p.add_argument("--query-max-length", type=int, default=64, help="tokens kept per query (default: %(default)s)")
    p.add_argument("--tag", default="splade", help="run tag, the sixth column (default: %(default)s)")
    p.add_argument("--method", choices=("pruned", "exhaustive"), default="pruned",
                   help="numba index: block-max pruning, or every posting (faster for k of 1000 and more; same "
                        "results) (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="numba index: below 1, approximate search that scores a block only while alpha x its upper "
                        "bound reaches the k-th score (default: %(default)s, exact)")
    p.set_defaults(func=retrieve_command)


def make_encoder(model: str, args: argparse.Namespace):
    from indexing.encoder import SpladeEncoder
    from pipelines.models import resolve_model

    return SpladeEncoder(
        resolve_model(model),
        query_max_length=getattr(args, "query_max_length", 64),
        doc_max_length=getattr(args, "doc_max_length", 256),
        batch_size=getattr(args, "batch_size", 32),
    )


def encode_command(args: argparse.Namespace) -> int:
    from indexing.encode import encode_corpus
    from pipelines.datasets import resolve_dataset

    dataset = resolve_dataset(args.dataset)
    encoder = make_encoder(args.model, args)
    encode_corpus(encoder, dataset.corpus(), args.output, shard_size=args.shard_size, total=dataset.count_documents(),
                  source=dataset.source())
    return 0


def build_any_index(encoded: str | Path, output: str | Path, backend: str = "numba", bits: int = 8,
                    scale: float | None = None, overwrite: bool = False):
    if backend == "lucene":
        from indexing.lucene_index.build import build_lucene_index

        return build_lucene_index(encoded, output, scale=scale, bits=bits, overwrite=overwrite)
    from indexing.numba_index.build import build_index

    return build_index(encoded, output, bits=bits, scale=scale, overwrite=overwrite)


def open_index(path: str | Path, backend: str = "numba"):
    if backend == "lucene":
        from indexing.lucene_index.index import LuceneImpactIndex

        return LuceneImpactIndex.load(path)
    from indexing.numba_index.index import ImpactIndex

    return ImpactIndex.load(path)


def index_command(args: argparse.Namespace) -> int:
    build_any_index(args.encoded, args.output, args.backend, args.bits, args.scale, args.overwrite)
    return 0


def retrieve_command(args: argparse.Namespace) -> int:
    from pipelines.datasets import resolve_dataset
    from retrieval.search import retrieve_to_file

    options = {}
    if args.method != "pruned" or args.alpha != 1.0:
        if args.backend != "numba":
            raise ValueError(f"--method and --alpha are options of the numba index, not of --backend {args.backend}")
        options = {"method": args.method, "alpha": args.alpha}
    index = open_index(args.index, args.backend)
    model = args.model or index.manifest["model"]
    encoder = make_encoder(model, args)
    queries = resolve_dataset(args.dataset).queries()
    retrieve_to_file(encoder, index, queries, args.output, k=args.k, tag=args.tag, **options)
    print(f"run written to {args.output}")
    return 0
