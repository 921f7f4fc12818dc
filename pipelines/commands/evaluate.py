"""`splade evaluate | fuse | compare | flops | table`: the figures of runs, ensembles and the results table.

Dataset names resolve to a qrels file here (pipelines/datasets.py); everything else is evaluation/. These functions
parse, call and print.
"""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

from contracts.atomic import write_json
from contracts.manifest import read_json
from contracts.trec import read_qrels, read_run, write_run
from evaluation.flops import sparsity_stats
from evaluation.fusion import METHODS, check_fusion, fuse
from evaluation.metrics import CONVENTIONS, Evaluation, evaluate
from evaluation.significance import STAT_TESTS, compare_runs, significance_by_column
from evaluation.tables import (
    benchmark_of,
    collect_rows,
    comparison_table,
    convention_of,
    format_table,
    mark_significance,
    write_table,
)
from indexing.numba_index.index import ImpactIndex
from pipelines.commands._checks import positive_int
from pipelines.models import resolve_model

EVAL_DIR = Path("outputs") / "eval"  # where metrics.json goes unless --output says otherwise


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate",
                              help="score a run against qrels as the official tools do; writes metrics.json")
    p.add_argument("--run", required=True, help="TREC run file (.gz accepted)")
    _add_qrels_flags(p)
    p.add_argument("--name", help="row name in the results table (default: --model, else the run file name)")
    p.add_argument("--model", help="the model that produced the run (recorded in metrics.json)")
    p.add_argument("--output", help=f"metrics.json to write (default: {EVAL_DIR}/<run name>.metrics.json; never "
                                    "beside the run unless given so)")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("fuse", help="fuse runs into an ensemble run (and score it when qrels are given)")
    p.add_argument("--run", required=True, nargs="+", help="two or more TREC run files")
    p.add_argument("--weights", type=float, nargs="+",
                   help="one finite weight per run (normalized and wsum only; a negative one is warned about)")
    p.add_argument("--method", default="normalized", choices=METHODS,
                   help="normalized: DESIGN.md's centred min-max sum; the others are ranx.fuse methods")
    p.add_argument("--depth", type=positive_int, default=1000, help="documents kept per query (default 1000)")
    p.add_argument("--output", required=True, help="fused TREC run to write")
    p.add_argument("--name", help="row name (default: 'ensemble ' + the run names joined by '+')")
    p.add_argument("--dataset", help="dataset whose qrels score the fused run (optional)")
    p.add_argument("--qrels", help="qrels file scoring the fused run (optional; wins over --dataset's qrels)")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), help="default: from the dataset name")
    p.add_argument("--metrics-output", help="default: <output without .trec>.metrics.json")
    p.set_defaults(func=cmd_fuse)

    p = subparsers.add_parser("compare", help="paired significance tests between runs (ranx.compare)")
    p.add_argument("--run", required=True, nargs="+", help="two or more TREC run files (name=path to name them)")
    _add_qrels_flags(p)
    p.add_argument("--stat-test", default="student", choices=STAT_TESTS)
    p.add_argument("--max-p", type=float, default=0.05)
    p.add_argument("--output", help="comparison JSON to write (optional)")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("flops", help="FLOPS and mean non-zeros of a model's queries against an index")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True, help="the queries (MS MARCO dev for the reference table)")
    p.add_argument("--index", required=True, help="index folder built from the same model")
    p.add_argument("--name", help="row name (default: --model)")
    p.add_argument("--output", required=True, help="flops.json to write")
    p.set_defaults(func=cmd_flops)

    p = subparsers.add_parser("table", help="collect metrics.json / flops.json files into the results table")
    p.add_argument("--metrics", required=True, nargs="+",
                   help="metrics.json / flops.json files, or folders searched for *metrics.json and flops.json")
    p.add_argument("--output", default=str(EVAL_DIR / "results"), help="writes <output>.md, .csv and .png")
    p.add_argument("--no-significance", action="store_true", help="skip the paired tests between rows")
    p.add_argument("--stat-test", default="student", choices=STAT_TESTS)
    p.add_argument("--max-p", type=float, default=0.05)
    p.set_defaults(func=cmd_table)


def _add_qrels_flags(p) -> None:
    p.add_argument("--dataset", help="dataset name or local folder; its qrels are used")
    p.add_argument("--qrels", help="a TREC qrels file; given with --dataset, this file is scored against and the "
                                   "dataset name only picks the convention and the table column")
    p.add_argument("--convention", choices=sorted(CONVENTIONS),
                   help="msmarco (MRR@10, R@1k), trec-dl (NDCG@10, R@1k rel>=2), beir (NDCG@10), default; "
                   "default: guessed from the dataset name")


def qrels_path_of(args) -> Path:
    """The qrels file to score against: --qrels if given (saying so when --dataset is given too), else the dataset's."""
    if args.qrels:
        if args.dataset:
            print(f"note: --qrels {args.qrels} is used, not the qrels of --dataset {args.dataset} (whose name still "
                  "picks the convention and the results-table column)", file=sys.stderr)
        return Path(args.qrels)
    if not args.dataset:
        raise ValueError("give --dataset (a name or local folder) or --qrels (a TREC qrels file)")
    path = _resolve_dataset(args.dataset).qrels_path
    if not path.exists():
        raise FileNotFoundError(f"{path}: dataset {args.dataset!r} has no qrels.txt, so its runs cannot be scored")
    return path


def _resolve_dataset(name: str):
    from pipelines.datasets import resolve_dataset  # deferred: it imports the encoder, and so torch (seconds)

    return resolve_dataset(name)


def _convention(args) -> str:
    return args.convention or convention_of(args.dataset or args.qrels or "")


def _report_warnings(caught) -> None:
    for w in caught:
        if issubclass(w.category, UserWarning) and "Numba" not in w.category.__name__:
            print(f"warning: {w.message}", file=sys.stderr)


def _metrics_record(name, run_path, qrels_path, dataset, convention, evaluation: Evaluation, extra=None) -> dict:
    return {
        "kind": "metrics",
        "name": name,
        "dataset": dataset,
        "benchmark": benchmark_of(dataset),
        "convention": convention,
        "about": CONVENTIONS[convention].about,
        "metrics": evaluation.means,
        "counts": evaluation.summary(),
        "run": str(Path(run_path).resolve()),
        "qrels": str(Path(qrels_path).resolve()),
        **(extra or {}),
        "per_query": evaluation.per_query,
    }


def _score(run, run_path, qrels_path, dataset, convention, name, output, extra=None) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qrels = read_qrels(qrels_path)
        evaluation = evaluate(qrels, run, convention, source=str(run_path))
    _report_warnings(caught)
    record = _metrics_record(name, run_path, qrels_path, dataset, convention, evaluation, extra)
    write_json(output, record)
    print(format_table({name: evaluation.means}), end="")
    if CONVENTIONS[convention].drop_self_hits:
        print(f"{evaluation.self_hits_removed} retrieved documents whose id equals their query's id were removed "
              f"(BEIR's convention), {evaluation.self_hits_relevant} of them judged relevant")
    counts = evaluation.summary()
    print(f"{counts['queries_evaluated']} judged queries ({counts['queries_missing_from_run_counted_0']} without "
          f"results, counted 0); {CONVENTIONS[convention].about}; written to {output}")
    return record


def _run_name(run_path: str | Path) -> str:
    """The run file's name without its run suffixes: `dl19.trec.gz` -> `dl19`."""
    stem = Path(run_path).name
    for suffix in (".gz", ".trec", ".txt", ".run"):
        stem = stem.removesuffix(suffix)
    return stem


def cmd_evaluate(args) -> int:
    qrels_path = qrels_path_of(args)
    dataset = args.dataset or str(qrels_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = read_run(args.run)
    _report_warnings(caught)
    name = args.name or args.model or _run_name(args.run)
    output = Path(args.output) if args.output else EVAL_DIR / f"{_run_name(args.run)}.metrics.json"
    _score(run, args.run, qrels_path, dataset, _convention(args), name, output, {"model": args.model})
    return 0


def cmd_fuse(args) -> int:
    if len(args.run) < 2:
        raise ValueError("--run needs at least two run files to fuse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_fusion(len(args.run), args.weights, args.depth, args.run, warn=False)  # before reading any run
        runs = [read_run(p) for p in args.run]
        fused = fuse(runs, args.method, args.weights, depth=args.depth, names=args.run)
    _report_warnings(caught)
    write_run(args.output, {qid: list(docs.items()) for qid, docs in fused.items()}, tag=f"fused-{args.method}")
    name = args.name or "ensemble " + "+".join(_run_name(p) for p in args.run)
    print(f"fused {len(runs)} runs ({args.method}) over {len(fused)} queries into {args.output}")
    if args.dataset or args.qrels:
        qrels_path = qrels_path_of(args)
        extra = {"fused_runs": [str(Path(p).resolve()) for p in args.run], "method": args.method,
                 "weights": args.weights}
        metrics_output = args.metrics_output or Path(args.output).with_name(f"{_run_name(args.output)}.metrics.json")
        _score(fused, args.output, qrels_path, args.dataset or str(qrels_path), _convention(args), name,
               metrics_output, extra)
    return 0


def _named_runs(specs: list[str]) -> dict[str, str]:
    named = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = (name, path) if sep else (_run_name(spec), spec)
        if name in named:
            raise ValueError(f"two runs are named {name!r}: name them with name=path")
        named[name] = path
    return named


def cmd_compare(args) -> int:
    named = _named_runs(args.run)
    qrels_path = qrels_path_of(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qrels = read_qrels(qrels_path)
        runs = {name: read_run(path) for name, path in named.items()}
        result = compare_runs(qrels, runs, _convention(args), args.stat_test, args.max_p)
    _report_warnings(caught)
    print(comparison_table(result), end="")
    print(f"superscript letters: rows beaten at p <= {args.max_p} ({args.stat_test} paired test, ranx.compare)")
    if args.output:
        write_json(args.output, _json_safe(result))
    return 0


def _json_safe(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def cmd_flops(args) -> int:
    from indexing.encoder import SpladeEncoder  # deferred: torch (seconds)

    index = ImpactIndex.load(args.index)
    queries = _resolve_dataset(args.dataset).queries()
    encoder = SpladeEncoder(resolve_model(args.model))
    encoded = encoder.encode_queries([text for _, text in queries], progress=True)
    stats = sparsity_stats(index.doc_freqs, index.num_docs, encoded)
    record = {"kind": "flops", "name": args.name or args.model, "model": args.model, "dataset": args.dataset,
              "index": str(Path(args.index).resolve()), **stats.to_dict()}
    write_json(args.output, record)
    print(f"FLOPS {stats.flops:.4f}; {stats.mean_query_terms:.1f} terms per query, {stats.mean_doc_terms:.1f} per "
          f"document ({stats.num_queries} queries, {stats.num_docs} documents); written to {args.output}")
    return 0


def _metric_files(specs: list[str]) -> list[Path]:
    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json")
                            if p.name.endswith("metrics.json") or p.name == "flops.json")
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no metrics file or folder here")
    if not files:
        raise FileNotFoundError(f"no *metrics.json or flops.json under {', '.join(specs)}: "
                                "run make eval-trec etc. first")
    return files


def cmd_table(args) -> int:
    records = []
    for path in _metric_files(args.metrics):
        rec = read_json(path, what="metrics file")
        if rec.get("kind") not in ("metrics", "flops") or "name" not in rec:
            raise ValueError(f"{path}: not a metrics.json or flops.json written by `splade evaluate`/`splade flops`")
        rec["path"] = str(path)
        records.append(rec)
    rows = collect_rows(records)
    notes = _dataset_notes(records)
    if not args.no_significance:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mark_significance(rows, significance_by_column(records, args.stat_test, args.max_p))
        _report_warnings(caught)
    written = write_table(rows, args.output, notes)
    print(Path(written["markdown"]).read_text(encoding="utf-8"), end="")
    print("written: " + ", ".join(written.values()))
    return 0


def _dataset_notes(records) -> list[str]:
    by_benchmark: dict[str, set] = {}
    for rec in records:
        if rec.get("kind") == "metrics":
            by_benchmark.setdefault(rec.get("benchmark") or benchmark_of(rec["dataset"]), set()).add(rec["dataset"])
    notes = [f"Datasets of {b}: {', '.join(sorted(ds))}" for b, ds in sorted(by_benchmark.items()) if b != "beir"]
    local = sorted({d for ds in by_benchmark.values() for d in ds if Path(d).exists()})
    if local:
        notes.append(f"Local folders ({', '.join(local)}) may be subsets (see their SOURCE.md): compare their figures "
                     "with published ones only where they hold the full collection.")
    return notes
