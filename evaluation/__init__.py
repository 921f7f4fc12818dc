"""Evaluation stage: qrels + runs -> the figures the official tools print, ensembles, FLOPS and every table.

Imports only `contracts`. The public surface (ranx style, a few names):

- `evaluate(qrels, run, convention="default", measures=None) -> Evaluation`: the one entry point for metrics
  (`metrics`: ranx underneath, with the official tools' query set and document order for MS MARCO, TREC DL, BEIR).
- `fuse(runs, method="normalized", ...)`: DESIGN.md's normalised-sum ensemble and ranx's fusion methods (`fusion`).
- `compare_runs(qrels, runs, ...)`: ranx's paired tests on those figures (`significance`).
- `sparsity_stats(...)`: FLOPS and mean non-zeros from an index's document frequencies and encoded queries (`flops`).
- `tables`: every table and plot (metrics tables, the results table as Markdown/CSV/plot, comparisons, benchmark
  reports), all through one Markdown writer, `markdown_table`.
"""
from evaluation.flops import SparsityStats, sparsity_stats, sparsity_stats_from_matrices
from evaluation.fusion import fuse
from evaluation.metrics import CONVENTIONS, Evaluation, evaluate
from evaluation.significance import compare_runs
from evaluation.tables import format_table, markdown_table

__all__ = [
    "CONVENTIONS",
    "Evaluation",
    "SparsityStats",
    "compare_runs",
    "evaluate",
    "format_table",
    "fuse",
    "markdown_table",
    "sparsity_stats",
    "sparsity_stats_from_matrices",
]
