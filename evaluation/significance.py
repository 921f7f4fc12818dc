"""Paired significance tests between runs on one benchmark: the tests of `ranx.compare`.

`ranx.compare` evaluates each run itself (in ranx's order, over the run's queries) and then calls
`ranx.statistical_tests.compute_statistical_significance`. We call that same function on the per-query figures of
`evaluation.metrics`, so the means tested are exactly the figures we print (official order, every judged query).
A run "beats" another on a figure when its mean is higher and the test rejects equality at `max_p`, which is how
ranx marks its own tables (superscript letters of the beaten rows).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from contracts.trec import QrelsDict, RunDict, read_qrels, read_run
from evaluation.metrics import evaluate
from evaluation.tables import COLUMNS

logger = logging.getLogger(__name__)

STAT_TESTS = ("student", "fisher")
# Benchmarks whose rows share one qrels file, so that a paired test between them means something. BEIR's column
# is a mean over datasets: no per-query pairing exists for it.
PAIRED_BENCHMARKS = ("msmarco", "trec-dl-2019", "trec-dl-2020")


def compare_runs(qrels: QrelsDict, runs: Mapping[str, RunDict], convention: str = "default",
                 stat_test: str = "student", max_p: float = 0.05, n_permutations: int = 1000,
                 random_seed: int = 42) -> dict[str, dict[str, dict]]:
    """Paired tests between every two runs on each figure of a convention.

    Args:
        qrels: {qid: {docid: relevance}}.
        runs: run name -> run, two or more.
        convention: whose figures to test (see evaluation.metrics.CONVENTIONS).
        stat_test: "student" (paired t-test) or "fisher" (randomisation test).
        max_p: the significance level.
        n_permutations, random_seed: of the Fisher test.

    Returns:
        {figure: {run name: {"mean", "p_values": {other: p or None}, "better_than": [names]}}}; p is None where
        both runs score the same on every query (no test is possible).

    Raises:
        ValueError: fewer than two runs, an unknown test, or anything `evaluate` refuses.
    """
    from ranx.statistical_tests import compute_statistical_significance  # deferred: ranx compiles on import

    if len(runs) < 2:
        raise ValueError("a comparison needs at least two runs")
    if stat_test not in STAT_TESTS:
        raise ValueError(f"unknown test {stat_test!r}: expected one of {', '.join(STAT_TESTS)}")
    per_query: dict[str, dict[str, np.ndarray]] = {}
    for name, run in runs.items():
        evaluation = evaluate(qrels, run, convention, source=name)
        per_query[name] = {f: np.array([by_query[q] for q in qrels]) for f, by_query in evaluation.per_query.items()}
    names = list(runs)
    comparisons = compute_statistical_significance(names, per_query, stat_test, n_permutations, max_p, random_seed)
    out: dict[str, dict[str, dict]] = {}
    for figure in per_query[names[0]]:
        table = out.setdefault(figure, {})
        means = {name: float(per_query[name][figure].mean()) for name in names}
        for name in names:
            p_values, better = {}, []
            for other in names:
                if other == name:
                    continue
                test = comparisons[name, other][figure]
                p = float(test["p_value"])
                p_values[other] = None if math.isnan(p) else p  # identical figures on every query: no test
                if test["significant"] and means[name] > means[other]:
                    better.append(other)
            table[name] = {"mean": means[name], "p_values": p_values, "better_than": better}
    return out


def significance_by_column(records: Iterable[Mapping], stat_test: str = "student",
                           max_p: float = 0.05) -> dict[str, dict]:
    """Paired tests between the rows of each results-table column whose runs are on disk and share one qrels file.

    Args:
        records: metrics.json records (kind "metrics", with "benchmark", "run", "qrels", "convention", "name").
        stat_test, max_p: as in compare_runs.

    Returns:
        {column title: {run name: {"better_than": [...], ...}}}, for `evaluation.tables.mark_significance`.
        A column is left out when fewer than two of its runs exist on disk or their qrels differ.
    """
    records = [r for r in records if r.get("kind") == "metrics"]
    out: dict[str, dict] = {}
    for benchmark in PAIRED_BENCHMARKS:
        group = [r for r in records if r.get("benchmark") == benchmark]
        on_disk = [r for r in group if Path(r.get("run", "")).exists()]
        if len(on_disk) < len(group):
            logger.info("%s: %d of %d runs are not on disk; the paired tests use the others", benchmark,
                        len(group) - len(on_disk), len(group))
        if len(on_disk) < 2 or len({r["qrels"] for r in on_disk}) != 1:
            continue
        qrels = read_qrels(on_disk[0]["qrels"])
        runs = {r["name"]: read_run(r["run"]) for r in on_disk}
        result = compare_runs(qrels, runs, on_disk[0]["convention"], stat_test, max_p)
        for title, column_benchmark, figure in COLUMNS:
            if column_benchmark == benchmark and figure in result:
                out[title] = result[figure]
    return out
