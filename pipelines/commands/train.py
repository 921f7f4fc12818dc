"""`splade train`: a preset (A-F, the other reference rows) or any model on any training data, any field overridable.

    splade train --preset F                                   # DistilSPLADE, co-condenser-marco, MS MARCO
    splade train --model splade-tiny --dataset ../shared/data/beir-scifact --max-steps 300 --evaluate
    torchrun --nproc_per_node 4 -m pipelines train --preset F # data-parallel, same command
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from contracts.atomic import write_json
from contracts.trec import read_qrels
from evaluation.metrics import evaluate
from evaluation.tables import format_table
from indexing.base import directory_size
from indexing.encoder import SpladeEncoder
from pipelines.commands import _flags
from pipelines.datasets import Dataset, resolve_dataset, slugify
from pipelines.layout import mining_dir
from pipelines.models import resolve_model
from pipelines.presets import load_preset, preset_names
from pipelines.training_data import MsMarcoFiles, rows_builder
from pipelines.workflows import evaluate_model
from training.config import TrainingConfig, field_help, field_types, parse_value
from training.trainer import train

# fields with a flag of their own (the CLI-wide spelling) rather than a generated one
OWN_FLAGS = ("model", "dataset", "extra")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a SPLADE model (preset A-F or any model and training data)",
        description="Train a SPLADE model with sentence-transformers' SparseEncoder trainer: SPLADE-max (in-batch + "
                    "hard negatives) or DistilSPLADE (MarginMSE on teacher margins), FLOPS-regularised. A --preset "
                    "fills every setting; each setting below overrides it. Under `torchrun --nproc_per_node N -m "
                    "pipelines train ...` the same command trains data-parallel.",
    )
    p.add_argument("--preset", default=None, help="preset name (A..F, or see --list-presets) or a preset JSON file")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    p.add_argument("--model", default=None, help="base network or checkpoint: HF id, local folder or packaged name")
    p.add_argument("--dataset", default=None, help="msmarco-passage/train, or a folder with train-queries.tsv, "
                                                   "train-qrels.txt and corpus.jsonl")
    _flags.output(p, "run folder: checkpoints/, model/ (final SparseEncoder), training-log.csv/.png, data/",
                  required=False)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")
    p.add_argument("--evaluate", action="store_true",
                   help="after training, compare the base and trained models on the dataset folder's test split "
                        "(queries.tsv, qrels.txt): NDCG@10 and FLOPS -> OUTPUT/evaluation.json")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    g = p.add_argument_group("MS MARCO inputs (default: downloaded; local files work offline)")
    g.add_argument("--hard-negatives", default=None, help="msmarco-hard-negatives.jsonl.gz")
    g.add_argument("--teacher-scores", default=None, help="cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz")
    g.add_argument("--collection", default=None, help="collection.tsv (pid<TAB>passage)")
    g.add_argument("--train-queries", default=None, help="queries.train.tsv (qid<TAB>query)")
    g = p.add_argument_group("training settings (override the preset; 'none' clears an optional one)")
    defaults, helps = TrainingConfig(), field_help()
    for name, (kind, _optional) in field_types().items():
        if name in OWN_FLAGS:
            continue
        g.add_argument(f"--{name.replace('_', '-')}", dest=f"set_{name}", default=None, metavar=kind.__name__.upper(),
                       help=f"{helps[name]} (default: {shown_default(getattr(defaults, name))})")
    p.set_defaults(func=train_command)


def shown_default(value) -> str:
    """A default as it is typed on the command line: lists comma-separated, None as none, 1/3 as 0.333."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def resolve_config(args: argparse.Namespace) -> TrainingConfig:
    """Preset (or defaults), then every flag given on the command line."""
    if args.preset:
        config = load_preset(args.preset)
    else:
        config = TrainingConfig()
    overrides = {}
    for name in field_types():
        value = getattr(args, f"set_{name}", None)
        if value is not None:
            overrides[name] = parse_value(name, value)
    if args.model:
        overrides["model"] = args.model
    if args.dataset:
        overrides["dataset"] = args.dataset
    return config.replace(**overrides)


def default_output(args: argparse.Namespace, config: TrainingConfig) -> Path:
    name = args.preset or f"{slugify(config.model)}-{config.recipe}-{slugify(Path(config.dataset).name)}"
    return Path("outputs") / f"train-{slugify(name)}"


def train_command(args: argparse.Namespace) -> int:
    if args.list_presets:
        for name in preset_names():
            print(f"{name:32s} {load_preset(name).extra.get('description', '')}")
        return 0
    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0

    output = Path(args.output) if args.output else default_output(args, config)
    files = MsMarcoFiles(args.hard_negatives, args.teacher_scores, args.collection, args.train_queries)
    prepare_rows = rows_builder(config, output / "data", files)
    base = resolve_model(config.model)
    started = time.perf_counter()
    summary = train(config, base, prepare_rows, output, resume=args.resume)
    print(f"wall time (data + training): {time.perf_counter() - started:.0f} s")
    if args.evaluate and os.environ.get("RANK", "0") == "0":  # once, on the main process of a torchrun launch
        evaluate_before_after(config, base, Path(summary["model"]), output)
    return 0


def evaluate_before_after(config: TrainingConfig, base: Path, trained: Path, output: Path) -> dict:
    """NDCG@10, MRR@10, R@100 (BEIR convention), FLOPS, non-zeros and index size of the base and the trained model
    on the dataset's test split.

    Documents are cut at the training length for both models (make train-scifact trains at 256, the length the
    models are used with) and queries at 64, so the two figures differ only by the training; the base model's
    encoded corpus and index are those of mining when the miner is the base model.
    """
    dataset = resolve_dataset(config.dataset)
    length = config.effective_max_length
    mined = mining_dir(output / "data", config.miner)
    reuse = config.miner != "bm25" and resolve_model(config.miner) == base and (mined / "encoded").exists()
    if (output / "evaluation" / "after").exists():
        shutil.rmtree(output / "evaluation" / "after")  # encoded by an earlier model saved at the same path
    results = {}
    for label, model in (("before", base), ("after", trained)):
        work = output / "evaluation" / label
        folders = mined if label == "before" and reuse else work
        results[label] = {"model": str(model), "doc_max_length": length, "query_max_length": EVAL_QUERY_LENGTH,
                          **model_figures(model, dataset, work, folders, convention="beir", doc_max_length=length)}
    write_json(output / "evaluation.json", results)
    print(figures_table({f"{k} ({Path(v['model']).name})": v for k, v in results.items()}, dataset.name))
    return results


# the lengths every model is used with (the defaults of splade encode / retrieve)
EVAL_DOC_LENGTH, EVAL_QUERY_LENGTH = 256, 64


def model_figures(model: Path, dataset: Dataset, work: Path, folders: Path | None = None,
                  convention: str = "beir", doc_max_length: int = EVAL_DOC_LENGTH) -> dict:
    """One model through the evaluation workflow: NDCG@10, MRR@10, R@100, FLOPS, non-zeros, index size.

    Args:
        model: the model folder.
        dataset: a dataset with a corpus, queries and qrels.
        work: where the run goes (and the encoded corpus and index, unless `folders` is given).
        folders: where the encoded corpus and index are (reused when complete and of this model).
        convention: how the run is scored ("beir" drops documents whose id is the query id; "default" for
            collections whose query and document ids share one numbering, as Cranfield's do).
        doc_max_length: tokens kept per document (queries: 64).

    Returns:
        {"ndcg@10", "mrr@10", "r@100", "flops", "query_nnz", "doc_nnz", "index_mib"}.
    """
    folders = folders or work
    encoder = SpladeEncoder(model, doc_max_length=doc_max_length, query_max_length=EVAL_QUERY_LENGTH)
    result = evaluate_model(encoder, dataset, folders / "encoded", folders / "index", work / "run.trec",
                            convention=convention, k=100, tag=model.name)
    scored = evaluate(read_qrels(dataset.qrels_path), result.results.run(), convention,
                      measures=["NDCG@10", "mrr@10", "R@100"], warn=False).means
    stats = result.sparsity
    return {"ndcg@10": round(scored["NDCG@10"], 4), "mrr@10": round(scored["mrr@10"], 4),
            "r@100": round(scored["R@100"], 4), "flops": round(stats.flops, 4),
            "query_nnz": round(stats.mean_query_terms, 1), "doc_nnz": round(stats.mean_doc_terms, 1),
            "index_mib": round(directory_size(result.index) / 2**20, 2)}


FIGURES = ("ndcg@10", "mrr@10", "r@100", "flops", "query_nnz", "doc_nnz", "index_mib")


def figures_table(rows: dict[str, dict], dataset: str) -> str:
    """The before/after figures as a plain-text table, one row per model."""
    return format_table({name: {m: row[m] for m in FIGURES} for name, row in rows.items()},
                        label=f"model ({dataset})")
