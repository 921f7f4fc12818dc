"""The quality-vs-FLOPS trade-off in miniature: one model fine-tuned on a dataset folder for several lambdas.

    python -m benchmarks.train_sweep --dataset ../shared/data/beir-scifact --output outputs/train-sweep
    (that is `make train-sweep`)

The training rows are prepared once (mining, teacher scores) and every lambda trains on the same rows from the same
base, so the runs differ only by lambda. Each model is then evaluated as `splade train --evaluate` does (documents
at 256 tokens, queries at 64, the numba index, BEIR's NDCG@10), the base model too (lambda "zero-shot"). Writes
sweep.json, sweep.md (a table in the results table's layout, with the preset-like setting of each row) and
sweep.png (NDCG@10 against FLOPS, as the reference table's trade-off: higher lambda, sparser, eventually worse).
A rerun keeps every lambda that finished (its sweep-row.json) and trains only the others.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from contracts.atomic import atomic_path, write_json, write_text
from contracts.manifest import read_json
from evaluation.tables import markdown_table
from pipelines.commands.train import model_figures, resolve_config
from pipelines.datasets import resolve_dataset
from pipelines.layout import mining_dir
from pipelines.models import resolve_model
from pipelines.training_data import rows_builder
from training.trainer import train

logger = logging.getLogger("benchmarks.train_sweep")

# lambda_q of the sweep; lambda_d is 3/4 of it, the ratio of the reference rows (0.008/0.006, 0.0008/0.0006, ...)
LAMBDAS = (1e-4, 1e-3, 8e-3, 3e-2, 1e-1)
# the reference rows whose lambdas a sweep value matches
PRESET_LIKE = {8e-5: "max-distilbert-8e-5", 8e-4: "A/B (max-*-8e-4)", 8e-3: "max-distilbert-8e-3",
               1e-3: "D (distil 1e-3)", 1e-2: "C/E/F (distil 1e-2)", 1e-1: "distil-*-1e-1"}


def preset_like(lambda_q: float) -> str:
    """The reference row with the nearest lambda_q (within a factor 1.5), else '-'."""
    near = min(PRESET_LIKE, key=lambda v: abs(v - lambda_q) / v)
    return PRESET_LIKE[near] if max(near, lambda_q) / min(near, lambda_q) <= 1.5 else "-"


def evaluate(model: Path, dataset, folder: Path, encoded_folder: Path | None = None, convention: str = "beir") -> dict:
    """NDCG@10, MRR@10, R@100 (BEIR convention by default), FLOPS, non-zeros and index size of `model` on the
    dataset's test queries, documents at 256 tokens and queries at 64 (the lengths the models are used with), as
    `splade train --evaluate` measures them."""
    figures = model_figures(model, dataset, folder, encoded_folder, convention=convention)
    return {"metrics": {"NDCG@10": figures["ndcg@10"], "MRR@10": figures["mrr@10"], "R@100": figures["r@100"]},
            "flops": figures["flops"], "query_nnz": figures["query_nnz"], "doc_nnz": figures["doc_nnz"],
            "index_mb": figures["index_mib"]}


def plot(rows: list[dict], path: Path) -> None:
    """NDCG@10 against FLOPS, one labelled point per lambda."""
    import matplotlib  # heavy: only for the plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    trained = [r for r in rows if r["lambda_q"] is not None]
    ax.plot([r["flops"] for r in trained], [r["metrics"]["NDCG@10"] for r in trained], "o-", label="fine-tuned")
    for r in rows:
        label = "zero-shot" if r["lambda_q"] is None else f"λq={r['lambda_q']:g}"
        ax.annotate(label, (r["flops"], r["metrics"]["NDCG@10"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    base = [r for r in rows if r["lambda_q"] is None]
    if base:
        ax.plot([base[0]["flops"]], [base[0]["metrics"]["NDCG@10"]], "s", color="tab:gray", label="zero-shot")
    ax.set_xscale("log")
    ax.set_xlabel("FLOPS (Σ p_q·p_d, test queries × corpus)")
    ax.set_ylabel("NDCG@10")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True,
                        help="a folder with train-queries.tsv, train-qrels.txt, corpus.jsonl, "
                                                         "queries.tsv and qrels.txt")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--output", default="outputs/train-sweep")
    parser.add_argument("--lambdas", default=",".join(f"{v:g}" for v in LAMBDAS),
                        help="comma-separated lambda_q values; lambda_d = 0.75 lambda_q (default: %(default)s)")
    parser.add_argument("train_args", nargs="*", help="`splade train` settings for every run, after --")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from pipelines.cli import build_parser  # the train command's own flags, so the settings parse as `splade train`

    train_ns = build_parser().parse_args(["train", "--model", args.model, "--dataset", args.dataset, *args.train_args])
    base_config = resolve_config(train_ns)
    out = Path(args.output)
    dataset = resolve_dataset(args.dataset)
    base = resolve_model(base_config.model)
    rows_path = rows_builder(base_config, out / "data")()
    mined = mining_dir(out / "data", base_config.miner)
    reuse = base_config.miner == base_config.model and base_config.effective_max_length == 256

    results = [{"run": "zero-shot", "lambda_q": None, "lambda_d": None, "setting": "base model",
                **evaluate(base, dataset, out / "zero-shot", mined if reuse else None)}]
    for value in (float(v) for v in args.lambdas.split(",")):
        config = base_config.replace(lambda_q=value, lambda_d=0.75 * value)
        name = f"lq-{value:g}"
        done = out / name / "sweep-row.json"  # a rerun resumes: every finished lambda is kept, not trained again
        if done.exists():
            logger.info("%s: finished before, reusing %s", name, done)
            results.append(read_json(done, "sweep row"))
            continue
        summary = train(config, base, lambda: rows_path, out / name)
        figures = evaluate(Path(summary["model"]), dataset, out / name / "evaluation")
        results.append({"run": name, "lambda_q": value, "lambda_d": 0.75 * value, "setting": preset_like(value),
                        "steps": summary["steps"], **figures})
        write_json(done, results[-1])
        write_json(out / "sweep.json", {"config": base_config.to_dict(), "runs": results})

    header = ["run", "preset-like", "λq", "λd", f"{dataset.name} NDCG@10", "MRR@10", "R@100", "FLOPS", "q nnz", "d nnz",
              "index MB"]
    table = markdown_table(header, [
        [r["run"], r["setting"], "-" if r["lambda_q"] is None else f"{r['lambda_q']:g}",
         "-" if r["lambda_d"] is None else f"{r['lambda_d']:g}", f"{r['metrics']['NDCG@10']:.4f}",
         f"{r['metrics'].get('MRR@10', float('nan')):.4f}", f"{r['metrics'].get('R@100', float('nan')):.4f}",
         f"{r['flops']:.2f}", f"{r['query_nnz']:.1f}", f"{r['doc_nnz']:.1f}", f"{r['index_mb']:.1f}"]
        for r in results], right=[False, False] + [True] * 9)
    write_text(out / "sweep.md", table + "\n")
    plot(results, out / "sweep.png")
    logger.info("%s\n-> %s, %s", table, out / "sweep.md", out / "sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
