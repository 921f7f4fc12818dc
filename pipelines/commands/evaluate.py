"""`splade evaluate | fuse | compare | flops | table`: the figures of runs, ensembles and the results table.

Dataset names resolve to a qrels file here (pipelines/datasets.py); everything else is evaluation/.
"""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

from evaluation.fusion import METHODS, fuse
from evaluation.metrics import CONVENTIONS, evaluate_convention_detailed, format_table
from evaluation.results_table import benchmark_of, collect_rows, convention_of, mark_significance, write_table, COLUMNS
from contracts.trec import read_qrels, read_run, write_run
from contracts.atomic import write_json
from contracts.manifest import read_json


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a run against qrels as the official tools do; writes metrics.json")
    p.add_argument("--run", required=True, help="TREC run file (.gz accepted)")
    _add_qrels_flags(p)
    p.add_argument("--name", help="row name in the results table (default: --model, else the run file name)")
    p.add_argument("--model", help="the model that produced the run (recorded in metrics.json)")
    p.add_argument("--output", help="metrics.json to write (default: next to the run, <run>.metrics.json)")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("fuse", help="fuse runs into an ensemble run (and score it when qrels are given)")
    p.add_argument("--run", required=True, nargs="+", help="two or more TREC run files")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per run (normalized and wsum only)")
    p.add_argument("--method", default="normalized", choices=METHODS,
                   help="normalized: DESIGN.md's centred min-max sum; the others are ranx.fuse methods")
    p.add_argument("--depth", type=int, default=1000, help="documents kept per query (default 1000)")
    p.add_argument("--output", required=True, help="fused TREC run to write")
    p.add_argument("--name", help="row name (default: 'ensemble ' + the run names joined by '+')")
    p.add_argument("--dataset", help="dataset whose qrels score the fused run (optional)")
    p.add_argument("--qrels", help="qrels file scoring the fused run (optional)")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), help="default: from the dataset name")
    p.add_argument("--metrics-output", help="default: <output without .trec>.metrics.json")
    p.set_defaults(func=cmd_fuse)

    p = subparsers.add_parser("compare", help="paired significance tests between runs (ranx.compare)")
    p.add_argument("--run", required=True, nargs="+", help="two or more TREC run files (name=path to name them)")
    _add_qrels_flags(p)
    p.add_argument("--stat-test", default="student", choices=["student", "fisher"])
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
    p.add_argument("--output", default="outputs/eval/results", help="writes <output>.md, .csv and .png")
    p.add_argument("--no-significance", action="store_true", help="skip the paired tests between rows")
    p.add_argument("--stat-test", default="student", choices=["student", "fisher"])
    p.add_argument("--max-p", type=float, default=0.05)
    p.set_defaults(func=cmd_table)


def _add_qrels_flags(p) -> None:
    p.add_argument("--dataset", help="dataset name or local folder; its qrels are used")
    p.add_argument("--qrels", help="a TREC qrels file (instead of --dataset)")
    p.add_argument("--convention", choices=sorted(CONVENTIONS),
                   help="msmarco (MRR@10, R@1k), trec-dl (NDCG@10, R@1k rel>=2), beir (NDCG@10), default; "
                   "default: guessed from the dataset name")


def qrels_path_of(args) -> Path:
    if args.qrels:
        return Path(args.qrels)
    if not args.dataset:
        raise ValueError("give --dataset (a name or local folder) or --qrels (a TREC qrels file)")
    from pipelines.datasets import resolve_dataset

    path = resolve_dataset(args.dataset).qrels_path
    if not path.exists():
        raise FileNotFoundError(f"{path}: dataset {args.dataset!r} has no qrels.txt, so its runs cannot be scored")
    return path


def _convention(args) -> str:
    return args.convention or convention_of(args.dataset or args.qrels or "")


def _report_warnings(caught) -> None:
    for w in caught:
        if issubclass(w.category, UserWarning) and "Numba" not in w.category.__name__:
            print(f"warning: {w.message}", file=sys.stderr)


def _metrics_record(name, run_path, qrels_path, dataset, convention, evaluation, extra=None) -> dict:
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
        evaluation = evaluate_convention_detailed(qrels, run, convention, source=str(run_path))
    _report_warnings(caught)
    record = _metrics_record(name, run_path, qrels_path, dataset, convention, evaluation, extra)
    write_json(output, record)
    print(format_table({name: evaluation.means}), end="")
    counts = evaluation.summary()
    print(f"{counts['queries_evaluated']} judged queries ({counts['queries_missing_from_run_counted_0']} without "
          f"results, counted 0); {CONVENTIONS[convention].about}; written to {output}")
    return record


def _default_metrics_path(run_path: str | Path) -> Path:
    run_path = Path(run_path)
    stem = run_path.name
    for suffix in (".gz", ".trec", ".txt", ".run"):
        stem = stem.removesuffix(suffix)
    return run_path.with_name(f"{stem}.metrics.json")


def cmd_evaluate(args) -> int:
    qrels_path = qrels_path_of(args)
    dataset = args.dataset or str(qrels_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = read_run(args.run)
    _report_warnings(caught)
    name = args.name or args.model or _default_metrics_path(args.run).name.removesuffix(".metrics.json")
    output = args.output or _default_metrics_path(args.run)
    _score(run, args.run, qrels_path, dataset, _convention(args), name, output, {"model": args.model})
    return 0


def _run_name(path: str) -> str:
    return _default_metrics_path(path).name.removesuffix(".metrics.json")


def cmd_fuse(args) -> int:
    if len(args.run) < 2:
        raise ValueError("--run needs at least two run files to fuse")
    runs = [read_run(p) for p in args.run]
    fused = fuse(runs, args.method, args.weights, depth=args.depth)
    write_run(args.output, {qid: list(docs.items()) for qid, docs in fused.items()}, tag=f"fused-{args.method}")
    name = args.name or "ensemble " + "+".join(_run_name(p) for p in args.run)
    print(f"fused {len(runs)} runs ({args.method}) over {len(fused)} queries into {args.output}")
    if args.dataset or args.qrels:
        qrels_path = qrels_path_of(args)
        extra = {"fused_runs": [str(Path(p).resolve()) for p in args.run], "method": args.method,
                 "weights": args.weights}
        _score(fused, args.output, qrels_path, args.dataset or str(qrels_path), _convention(args), name,
               args.metrics_output or _default_metrics_path(args.output), extra)
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
    from evaluation.significance import compare_runs

    named = _named_runs(args.run)
    qrels_path = qrels_path_of(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qrels = read_qrels(qrels_path)
        runs = {name: read_run(path) for name, path in named.items()}
        result = compare_runs(qrels, runs, _convention(args), args.stat_test, args.max_p)
    _report_warnings(caught)
    print(_comparison_table(result), end="")
    print(f"superscript letters: rows beaten at p <= {args.max_p} ({args.stat_test} paired test, ranx.compare)")
    if args.output:
        write_json(args.output, _json_safe(result))
    return 0


def _comparison_table(result: dict) -> str:
    names = list(next(iter(result.values())))
    letters = {n: chr(ord("a") + i) for i, n in enumerate(names)}
    lines = ["| # | run | " + " | ".join(result) + " |", "|---|---|" + "---:|" * len(result)]
    for n in names:
        cells = [f"{result[f][n]['mean']:.4f}{''.join(letters[o] for o in result[f][n]['better_than'])}" for f in result]
        lines.append(f"| {letters[n]} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _json_safe(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def load_index_doc_freqs(index_path: str | Path):
    """(per-term document frequencies, number of documents) of an index folder."""
    from indexing.numba_index.index import ImpactIndex

    index = ImpactIndex.load(index_path)
    return index.doc_freqs, index.num_docs


def cmd_flops(args) -> int:
    from evaluation.flops import sparsity_stats
    from indexing.encoder import SpladeEncoder
    from pipelines.datasets import resolve_dataset
    from pipelines.models import resolve_model

    doc_freqs, num_docs = load_index_doc_freqs(args.index)
    queries = resolve_dataset(args.dataset).queries()
    encoder = SpladeEncoder(resolve_model(args.model))
    encoded = encoder.encode_queries([text for _, text in queries], progress=True)
    stats = sparsity_stats(doc_freqs, num_docs, encoded)
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
            files += sorted(p for p in path.rglob("*.json") if p.name.endswith("metrics.json") or p.name == "flops.json")
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no metrics file or folder here")
    if not files:
        raise FileNotFoundError(f"no *metrics.json or flops.json under {', '.join(specs)}: run make eval-trec etc. first")
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
            mark_significance(rows, _significance(records, args.stat_test, args.max_p))
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


def _significance(records, stat_test: str, max_p: float) -> dict:
    """Paired tests between the rows of each table column whose runs are on disk and share one qrels file."""
    from evaluation.significance import compare_runs

    out: dict[str, dict] = {}
    for benchmark in ("msmarco", "trec-dl-2019", "trec-dl-2020"):
        group = [r for r in records if r.get("kind") == "metrics" and r.get("benchmark") == benchmark]
        group = [r for r in group if Path(r.get("run", "")).exists()]
        if len(group) < 2 or len({r["qrels"] for r in group}) != 1:
            continue
        qrels = read_qrels(group[0]["qrels"])
        runs = {r["name"]: read_run(r["run"]) for r in group}
        result = compare_runs(qrels, runs, group[0]["convention"], stat_test, max_p)
        for title, column_benchmark, figure in COLUMNS:
            if column_benchmark == benchmark and figure in result:
                out[title] = result[figure]
    return out
