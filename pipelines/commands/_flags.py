"""The flags every command spells the same way."""
from __future__ import annotations

import argparse


def model(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--model", default=None if required else "splade-tiny", required=required,
                        help="local model folder, packaged name (splade-tiny, minilm-l6) or Hugging Face id "
                             "(default: %(default)s)")


def dataset(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument("--dataset", default=default, required=default is None,
                        help="dataset folder (corpus.jsonl, queries.tsv, qrels.txt), 'demo', or an ir_datasets id "
                             "such as msmarco-passage/trec-dl-2019/judged or beir/scifact")


def index(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--index", required=required, default=None, help="index folder")


def output(parser: argparse.ArgumentParser, what: str, required: bool = True) -> None:
    parser.add_argument("--output", required=required, default=None, help=what)


def backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("numba", "lucene"), default="numba",
                        help="numba: this project's impact index; lucene: a Pyserini/Anserini impact index "
                             "(default: %(default)s)")


def lengths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query-max-length", type=int, default=64, help="tokens kept per query (default: %(default)s)")
    parser.add_argument("--doc-max-length", type=int, default=256, help="tokens kept per document (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts encoded at once (default: %(default)s)")
