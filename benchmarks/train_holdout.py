"""The holdout check of a fine-tune: the base and the trained model on collections the training never saw.

    python -m benchmarks.train_holdout --base splade-tiny --trained outputs/train-scifact/model \
        --datasets ../shared/data/cranfield,../shared/data/cisi,../shared/data/vaswani   (make train-holdout)

Each model is evaluated as `splade train --evaluate` does (documents at 256 tokens, queries at 64, the numba
index, top 100), scored as trec_eval does (Cranfield's and CISI's query ids are also document ids, so BEIR's
rule of dropping a document whose id is the query id would drop real hits). The base model's figures are kept in
OUTPUT/holdout.json and reused (its folders too); the trained model's are measured again each time, because a new
training writes its model to the same path. Writes holdout.json and holdout.md.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from contracts.atomic import write_json, write_text
from contracts.manifest import read_json
from evaluation.tables import markdown_table
from pipelines.commands.train import model_figures
from pipelines.datasets import resolve_dataset
from pipelines.layout import slugify
from pipelines.models import resolve_model

logger = logging.getLogger("benchmarks.train_holdout")

HOLDOUT = ("../shared/data/cranfield", "../shared/data/cisi", "../shared/data/vaswani")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="splade-tiny", help="the model before training (name or folder)")
    parser.add_argument("--trained", required=True, help="the trained model folder (OUTPUT/model of splade train)")
    parser.add_argument("--datasets", default=",".join(HOLDOUT), help="comma-separated dataset folders")
    parser.add_argument("--output", required=True, help="folder for the encoded corpora, runs and holdout.json")
    parser.add_argument("--only", choices=("before", "after"), default=None, help="evaluate one model only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    out = Path(args.output)
    record_path = out / "holdout.json"
    record = read_json(record_path, what="holdout record") if record_path.exists() else {}
    models = {"before": resolve_model(args.base), "after": Path(args.trained)}
    for name in args.datasets.split(","):
        dataset = resolve_dataset(name)
        slug = slugify(Path(name).name)
        entry = record.setdefault(slug, {})
        for label, model in models.items():
            if args.only and label != args.only:
                continue
            if label == "before" and entry.get("before", {}).get("model") == str(model):
                continue  # the base model does not change: its figures stand
            work = out / slug / label
            if label == "after" and work.exists():
                shutil.rmtree(work)  # encoded by an earlier model saved at the same path
            entry[label] = {"model": str(model), **model_figures(model, dataset, work, convention="default")}
            write_json(record_path, record)

    header = ["dataset", "NDCG@10 before", "NDCG@10 after", "Δ", "MRR@10 before", "MRR@10 after", "R@100 before",
              "R@100 after", "FLOPS before", "FLOPS after"]

    def cell(entry, label, figure, fmt):
        return fmt.format(entry[label][figure]) if label in entry else "-"

    rows = []
    for slug, entry in record.items():
        delta = (f"{entry['after']['ndcg@10'] - entry['before']['ndcg@10']:+.4f}"
                 if "before" in entry and "after" in entry else "-")
        rows.append([slug, cell(entry, "before", "ndcg@10", "{:.4f}"), cell(entry, "after", "ndcg@10", "{:.4f}"),
                     delta, cell(entry, "before", "mrr@10", "{:.4f}"), cell(entry, "after", "mrr@10", "{:.4f}"),
                     cell(entry, "before", "r@100", "{:.4f}"), cell(entry, "after", "r@100", "{:.4f}"),
                     cell(entry, "before", "flops", "{:.2f}"), cell(entry, "after", "flops", "{:.2f}")])
    table = markdown_table(header, rows, right=[False] + [True] * 9)
    write_text(out / "holdout.md", table + "\n")
    logger.info("%s\n-> %s", table, out / "holdout.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
