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
from evaluation.tables import format_table
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
    _flags.output(p, "run folder: checkpoints/, model/ (final SparseEncoder), training-log.csv/.png, data/", required=False)
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
    """NDCG@10 (BEIR convention) and FLOPS of the base and the trained model on the dataset's test split.

    Documents are cut at the training length for both models, so the two figures differ only by the training; the
    base model's encoded corpus and index are those of mining when the miner is the base model.
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
        results[label] = {"model": str(model), "doc_max_length": length,
                          **_evaluate_model(model, dataset, work, length, folders)}
    write_json(output / "evaluation.json", results)
    shown = ("ndcg@10", "flops", "query_nnz", "doc_nnz")
    print(format_table({f"{k} ({Path(v['model']).name})": {m: v[m] for m in shown} for k, v in results.items()},
                       label="model"))
    return results


def _evaluate_model(model: Path, dataset: Dataset, work: Path, doc_max_length: int, folders: Path) -> dict:
    """One model through the evaluation workflow: corpus and index in `folders`, the run in `work`."""
    encoder = SpladeEncoder(model, doc_max_length=doc_max_length)
    result = evaluate_model(encoder, dataset, folders / "encoded", folders / "index", work / "run.trec",
                            convention="beir", k=100, tag=model.name)
    stats = result.sparsity
    return {"ndcg@10": round(result.metrics["NDCG@10"], 4), "flops": round(stats.flops, 4),
            "query_nnz": round(stats.mean_query_terms, 1), "doc_nnz": round(stats.mean_doc_terms, 1)}
