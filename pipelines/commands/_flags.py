"""The flags every command spells the same way."""
from __future__ import annotations

import argparse
import logging

from pipelines.commands._checks import positive_int


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
    parser.add_argument("--doc-max-length", type=int, default=256,
                        help="tokens kept per document (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="texts encoded at once at most (default: as many as --token-budget allows)")
    precision(parser)


def precision(parser: argparse.ArgumentParser) -> None:
    """How a command that encodes runs the model (indexing.encoder.SpladeEncoder)."""
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8", "auto"), default="fp32",
                        help="fp32: exact, the same weights in any batch (on a CPU with AMX or AVX512-BF16 screened "
                             "in bf16, as fast as bf16); bf16: bf16 matrix products (fp16 on a GPU without bf16), "
                             "for GPUs; int8: dynamically quantised linear layers, CPU only; bf16 and int8 weights "
                             "change slightly with the batch; auto: bf16 on a GPU, else fp32 (default: %(default)s)")
    parser.add_argument("--token-budget", type=positive_int, default=None,
                        help="padded tokens per batch (default: 8192 on a CPU, sized to the free memory on a GPU)")


def verbosity(parser: argparse.ArgumentParser, after_command: bool = False) -> None:
    """-v/--verbose and -q/--quiet, on the main parser and (`after_command`) again on every command's parser.

    A command's copy has no default (SUPPRESS), so that `splade -v encode ...` is not undone by the command's
    parser; a command that defines its own `--verbose` keeps it (and its value counts here too).
    """
    default = argparse.SUPPRESS if after_command else False
    for short, long, help_text in (("-v", "--verbose", "also show debugging messages"),
                                   ("-q", "--quiet", "show warnings and errors only")):
        if long in parser._option_string_actions:
            continue
        names = [long] if short in parser._option_string_actions else [short, long]
        parser.add_argument(*names, action="store_true", default=default, help=help_text)


def log_level(args: argparse.Namespace) -> int:
    """The console's logging level that -v / -q ask for (INFO when neither is given)."""
    if getattr(args, "verbose", False):
        return logging.DEBUG
    if getattr(args, "quiet", False):
        return logging.WARNING
    return logging.INFO
