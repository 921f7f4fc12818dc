"""`splade encode`, `splade index`, `splade retrieve` (one stage each, files in and files out), `splade check`."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from indexing.encode import Corpus, encode_corpus
from indexing.encoder import SpladeEncoder
from pipelines.backends import build_any_index, open_index
from pipelines.commands import _flags
from pipelines.commands._checks import alpha, folder_output, positive_int, run_output
from pipelines.datasets import resolve_dataset
from pipelines.models import resolve_model
from retrieval.search import retrieve_to_file


def register(subparsers) -> None:
    p = subparsers.add_parser("encode", help="encode a corpus into sparse-vector shards (resumes where it stopped)",
                              description="Encode the corpus of --dataset with --model into numbered CSR shards and a "
                                          "manifest in --output. Killed and started again, it continues at the first "
                                          "missing shard.")
    _flags.model(p)
    _flags.dataset(p)
    _flags.output(p, "folder of the encoded shards")
    _flags.lengths(p)
    p.add_argument("--shard-size", type=positive_int, default=2000, help="documents per shard (default: %(default)s)")
    p.add_argument("--shard-id", type=int, default=None,
                   help="this worker's number, 0 .. --shard-num - 1: it encodes the shard-id-th contiguous range of "
                        "the corpus into its own part of --output (default: RANK under torchrun, else 0)")
    p.add_argument("--shard-num", type=positive_int, default=None,
                   help="workers that share the corpus (default: WORLD_SIZE under torchrun, else 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="encode again when --output holds another corpus's, model's or precision's encoding")
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
    p.add_argument("--verbose", action="store_true", help="Lucene back end: show Anserini's own log lines")
    p.set_defaults(func=index_command)

    p = subparsers.add_parser("check", help="verify an index folder: every array and its checksum",
                              description="Load a numba index with all its checks (lengths, dtypes, bounds) and "
                                          "recompute the sha256 of every array against its manifest: for an index "
                                          "copied from another machine or disk.")
    _flags.index(p)
    p.set_defaults(func=check_command)

    p = subparsers.add_parser("retrieve", help="encode queries, search an index, write a TREC run",
                              description="Encode the queries of --dataset with the index's model (or --model) and "
                                          "write the top --k documents of each to a TREC run file.")
    p.add_argument("--model", default=None, help="query encoder (default: the model the index was built with)")
    _flags.dataset(p)
    _flags.index(p)
    _flags.backend(p)
    _flags.output(p, "TREC run file to write")
    p.add_argument("--k", type=positive_int, default=1000, help="documents per query (default: %(default)s)")
    p.add_argument("--query-max-length", type=int, default=64, help="tokens kept per query (default: %(default)s)")
    _flags.precision(p)
    p.add_argument("--tag", default="splade", help="run tag, the sixth column (default: %(default)s)")
    p.add_argument("--method", choices=("auto", "pruned", "exhaustive"), default="auto",
                   help="numba index: block-max pruning, every posting, or auto: the one measured faster for this "
                        "--k (same results all three) (default: %(default)s)")
    p.add_argument("--mmap", action="store_true",
                   help="numba index: memory-map the index instead of reading it (for one larger than the memory)")
    p.add_argument("--alpha", type=alpha, default=1.0,
                   help="numba index: below 1, approximate search that scores a block only while alpha x its upper "
                        "bound reaches the k-th score (default: %(default)s, exact)")
    p.set_defaults(func=retrieve_command)


def make_encoder(model: str, args: argparse.Namespace) -> SpladeEncoder:
    """The encoder of a model name (resolved by pipelines.models) at the lengths and batch size of `args`."""
    return SpladeEncoder(
        resolve_model(model),
        query_max_length=getattr(args, "query_max_length", 64),
        doc_max_length=getattr(args, "doc_max_length", 256),
        batch_size=getattr(args, "batch_size", None),
        precision=getattr(args, "precision", "fp32"),
        token_budget=getattr(args, "token_budget", None),
        device=getattr(args, "device", None),
        verbose=getattr(args, "verbose", False),
    )


def worker(args: argparse.Namespace, environ=os.environ) -> tuple[int, int, str | None]:
    """(shard id, shard count, device) of this process: the flags, else torchrun's RANK / WORLD_SIZE (one GPU per
    LOCAL_RANK), else one worker.

    Raises:
        ValueError: a shard id outside 0 .. shard count - 1.
    """
    launched = "WORLD_SIZE" in environ and "RANK" in environ
    shard_num = args.shard_num or (int(environ["WORLD_SIZE"]) if launched else 1)
    shard_id = args.shard_id if args.shard_id is not None else (int(environ["RANK"]) if launched else 0)
    if not 0 <= shard_id < shard_num:
        raise ValueError(f"--shard-id {shard_id}: expected 0 .. {shard_num - 1} for --shard-num {shard_num}")
    device = None
    if launched and "LOCAL_RANK" in environ:
        import torch  # deferred: the CLI imports torch only for commands that run a model

        device = f"cuda:{environ['LOCAL_RANK']}" if torch.cuda.is_available() else "cpu"
    return shard_id, shard_num, device


def encode_command(args: argparse.Namespace) -> int:
    folder_output(args.output)  # a file in the way is said before the corpus is read and the model loads
    dataset = resolve_dataset(args.dataset)
    total = dataset.count_documents()
    if total == 0:
        raise ValueError(f"{dataset.corpus_path}: the corpus holds no documents")
    args.shard_id, args.shard_num, args.device = worker(args)
    encoder = make_encoder(args.model, args)
    encode_corpus(encoder, Corpus(dataset.corpus), args.output, shard_size=args.shard_size, total=total,
                  source=dataset.source(), shard_id=args.shard_id, shard_num=args.shard_num, overwrite=args.overwrite,
                  progress=not getattr(args, "quiet", False))
    return 0


def index_command(args: argparse.Namespace) -> int:
    options = {"verbose": True} if args.verbose and args.backend == "lucene" else {}
    build_any_index(args.encoded, args.output, args.backend, args.bits, args.scale, args.overwrite, **options)
    return 0


def check_command(args: argparse.Namespace) -> int:
    """Loads the index (structural checks) and compares every array's sha256 with the manifest's."""
    index = open_index(args.index, "numba", mmap=True)  # mapped: the checksums stream, the index need not fit
    verified = index.verify()
    bad = sorted(name for name, ok in verified.items() if not ok)
    if bad:
        raise ValueError(f"{index.path}: the content of {', '.join(n + '.npy' for n in bad)} differs from what the "
                         f"build wrote (checksums in manifest.json); rebuild the index or copy it again")
    print(f"{index.path}: all {len(verified)} arrays match their checksums ({index.num_docs:,} documents)")
    return 0


def index_model(index) -> str:
    """The model an index was built with, when it can be loaded on this machine.

    Raises:
        ValueError: the recorded model is a path that does not exist here (an index copied from another machine),
            or nothing is recorded; the message says to pass --model.
    """
    model = index.manifest.get("model")
    if not model:
        raise ValueError(f"{index.path}: the index records no model; pass --model (the model that built it)")
    if not Path(model).exists():  # encoders record the folder they loaded, so a model is always a path here
        raise ValueError(f"{index.path}: the index was built with the model at {model}, which is not on this "
                         f"machine; pass --model with that model (its folder here, or its name)")
    return model


def retrieve_command(args: argparse.Namespace) -> int:
    options = {}
    if args.method != "auto" or args.alpha != 1.0 or args.mmap:
        if args.backend != "numba":
            raise ValueError(f"--method, --alpha and --mmap are options of the numba index, not of --backend "
                             f"{args.backend}")
        options = {"method": args.method, "alpha": args.alpha}
    output = run_output(args.output)
    index = open_index(args.index, args.backend, **({"mmap": True} if args.mmap else {}))
    queries = resolve_dataset(args.dataset).queries()  # a bad dataset fails before the model loads
    encoder = make_encoder(args.model or index_model(index), args)
    retrieve_to_file(encoder, index, queries, output, k=args.k, tag=args.tag, **options)
    print(f"run written to {args.output}")
    return 0
