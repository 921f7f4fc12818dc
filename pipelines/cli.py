"""`splade <command>`: one subcommand per stage, the same flags everywhere.

Each module in `pipelines/commands/` registers its subcommands through `register(subparsers)`, so the CLI grows
by adding a file (modules whose name starts with `_` are helpers, not commands).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from pipelines import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splade",
        description="Train SPLADE models, encode and index corpora, retrieve and evaluate. "
        "Every command takes the same flags: --model, --dataset, --index, --run, --output.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue  # shared helpers of the command modules
        module = importlib.import_module(f"pipelines.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, KeyError) as e:
        if os.environ.get("SPLADE_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"splade {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
