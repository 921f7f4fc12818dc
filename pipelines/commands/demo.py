"""`splade demo`: every stage once, end to end, and a check of the index against brute-force scoring."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from contracts.atomic import write_json
from evaluation.tables import format_table
from pipelines.commands import _flags
from pipelines.commands._checks import folder_output, positive_int
from pipelines.commands.stages import make_encoder
from pipelines.datasets import resolve_dataset
from pipelines.layout import work_dir
from pipelines.workflows import brute_force_check, evaluate_model


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="fetch a model, encode, index, retrieve and evaluate in one go",
        description="Run the whole pipeline on --dataset with --model and print the metrics. The default dataset is "
                    "the small collection embedded in the project (offline); online, try --dataset beir/scifact.")
    _flags.model(p)
    _flags.dataset(p, default="demo")
    _flags.output(p, "working folder (encoded/, index/, run.trec, metrics.json; default outputs/<model>/<dataset>)",
                  required=False)
    _flags.lengths(p)
    p.add_argument("--k", type=positive_int, default=1000, help="documents retrieved per query (default: %(default)s)")
    p.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    """Evaluate --model on --dataset through the workflow, then score the same vectors by brute force."""
    started = time.perf_counter()
    out = folder_output(args.output) if args.output else work_dir(args.model, args.dataset)
    dataset = resolve_dataset(args.dataset)
    encoder = make_encoder(args.model, args)
    print(f"model {args.model} ({encoder.model_path}), dataset {dataset.name} ({dataset.folder}), output {out}")

    result = evaluate_model(encoder, dataset, out / "encoded", out / "index", out / "run.trec", k=args.k,
                            convention="default", tag=f"splade-{Path(str(args.model)).name}")

    # The check: the same quantised vectors scored exhaustively with scipy, and the unquantised float scores.
    check = brute_force_check(result, dataset.qrels_path)
    rows = {"impact index (numba)": result.metrics, **check.metrics}
    write_json(out / "metrics.json", {"model": str(args.model), "dataset": dataset.name, "metrics": rows,
                                      "index_equals_brute_force": check.identical})
    print()
    print(format_table(rows, label="scoring"))
    print()
    print(f"index top-{args.k} identical to brute-force scoring of the same integers: "
          f"{'yes' if check.identical else 'NO'}")
    seconds = time.perf_counter() - started
    print(f"{result.num_docs:,} documents, {len(result.results.qids):,} queries, {seconds:.1f} s in all; "
          f"files in {out}")
    return 0 if check.identical else 1
