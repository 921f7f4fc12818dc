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

from pipelines.commands import _flags
from training.config import TrainingConfig, field_types, parse_value

# fields with a flag of their own (the CLI-wide spelling) rather than a generated one
OWN_FLAGS = ("model", "dataset", "extra")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a SPLADE model (preset A-F or any model and training data)",
        description="Train a SPLADE model with sentence-transformers' SparseEncoder trainer: SPLADE-max (in-batch + "
                    "hard negatives) or DistilSPLADE (MarginMSE on teacher margins), FLOPS-regularised. A --preset "
                    "fills every setting; each setting below overrides it. Under `torchrun --nproc_per_node N -m "
                    "pipelines train ...` the same command trains data-parallel.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    defaults = TrainingConfig()
    for name, (kind, _optional) in field_types().items():
        if name in OWN_FLAGS:
            continue
        shown = ",".join(getattr(defaults, name)) if kind is list and getattr(defaults, name) else getattr(defaults, name)
        g.add_argument(f"--{name.replace('_', '-')}", dest=f"set_{name}", default=None, metavar=kind.__name__.upper(),
                       help=f"(default: {shown})")
    p.set_defaults(func=train_command)


def resolve_config(args: argparse.Namespace) -> TrainingConfig:
    """Preset (or defaults), then every flag given on the command line."""
    if args.preset:
        from pipelines.presets import load_preset

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
    from pipelines.datasets import slugify

    name = args.preset or f"{slugify(config.model)}-{config.recipe}-{slugify(Path(config.dataset).name)}"
    return Path("outputs") / f"train-{slugify(name)}"


def train_command(args: argparse.Namespace) -> int:
    if args.list_presets:
        from pipelines.presets import load_preset, preset_names

        for name in preset_names():
            print(f"{name:32s} {load_preset(name).extra.get('description', '')}")
        return 0
    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from pipelines.models import resolve_model
    from pipelines.training_data import MsMarcoFiles, rows_builder
    from training.trainer import train

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
    base model's corpus vectors are those mining already encoded when the miner is the base model.
    """
    from evaluation.metrics import format_table
    from contracts.atomic import write_json
    from pipelines.datasets import resolve_dataset, slugify
    from pipelines.models import resolve_model

    dataset = resolve_dataset(config.dataset)
    length = config.effective_max_length
    mined = output / "data" / f"mining-{slugify(config.miner)}" / "encoded"
    reuse = config.miner != "bm25" and resolve_model(config.miner) == base and mined.exists()
    if (output / "evaluation" / "after").exists():
        shutil.rmtree(output / "evaluation" / "after")  # encoded by an earlier model saved at the same path
    results = {}
    for label, model, encoded in (("before", base, mined if reuse else None), ("after", trained, None)):
        work = output / "evaluation" / label
        results[label] = {"model": str(model), "doc_max_length": length,
                          **_evaluate_model(model, dataset, work, length, encoded or work / "encoded")}
    write_json(output / "evaluation.json", results)
    print(format_table({f"{k} ({Path(v['model']).name})": {m: v[m] for m in ("ndcg@10", "flops", "query_nnz", "doc_nnz")}
                        for k, v in results.items()}, label="model"))
    return results


def _evaluate_model(model: Path, dataset, work: Path, doc_max_length: int, encoded: Path) -> dict:
    from evaluation.flops import sparsity_stats_from_matrices
    from evaluation.metrics import evaluate_convention
    from contracts.trec import read_qrels, write_run
    from indexing.encoder import SpladeEncoder
    from indexing.numba_index.build import build_index
    from contracts.encoded import read_encoded
    from indexing.encode import encode_corpus
    from retrieval.search import retrieve

    encoder = SpladeEncoder(model, doc_max_length=doc_max_length)
    encode_corpus(encoder, dataset.corpus(), encoded, total=dataset.count_documents(), source=dataset.source())
    index = build_index(encoded, work / "index", overwrite=True)
    queries = dataset.queries()
    results = retrieve(encoder, index, queries, k=100)
    write_run(work / "run.trec", results, tag=model.name)
    run = {qid: dict(hits) for qid, hits in results.items()}
    ndcg = evaluate_convention(read_qrels(dataset.qrels_path), run, "beir")["NDCG@10"]
    query_vectors = encoder.encode_queries([text for _, text in queries])
    _, doc_vectors = read_encoded(encoded)
    stats = sparsity_stats_from_matrices(doc_vectors, query_vectors)
    return {"ndcg@10": round(float(ndcg), 4), "flops": round(stats.flops, 4),
            "query_nnz": round(stats.mean_query_terms, 1), "doc_nnz": round(stats.mean_doc_terms, 1)}
