"""Paired significance tests between runs on one benchmark: the tests of `ranx.compare`.

`ranx.compare` evaluates each run itself (in ranx's order, over the run's queries) and then calls
`ranx.statistical_tests.compute_statistical_significance`. We call that same function on the per-query figures of
`evaluation.metrics`, so the means tested are exactly the figures we print (official order, every judged query).
A run "beats" another on a figure when its mean is higher and the test rejects equality at `max_p`, which is how
ranx marks its own tables (superscript letters of the beaten rows).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from evaluation.metrics import Qrels, RunDict, evaluate_convention_detailed

STAT_TESTS = ("student", "fisher")


def compare_runs(qrels: Qrels, runs: Mapping[str, RunDict], convention: str = "default", stat_test: str = "student",
                 max_p: float = 0.05, n_permutations: int = 1000,
                 random_seed: int = 42) -> dict[str, dict[str, dict]]:
    """{figure: {run name: {"mean", "p_values": {other: p}, "better_than": [names]}}} for a convention's figures."""
    from ranx.statistical_tests import compute_statistical_significance

    if len(runs) < 2:
        raise ValueError("a comparison needs at least two runs")
    if stat_test not in STAT_TESTS:
        raise ValueError(f"unknown test {stat_test!r}: expected one of {', '.join(STAT_TESTS)}")
    per_query: dict[str, dict[str, np.ndarray]] = {}
    for name, run in runs.items():
        evaluation = evaluate_convention_detailed(qrels, run, convention, source=name)
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
