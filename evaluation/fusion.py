"""Ensembles of runs: the normalised sum of DESIGN.md, and ranx's fusion methods for comparison.

The normalised sum is written out here rather than taken from ranx on purpose: DESIGN.md fixes a centring
(s - (min+max)/2) / (max - min) and gives a document missing from a run that run's minimum (-0.5). ranx's
min-max CombSUM scales to [0, 1] and gives missing documents 0 (its minimum too), which ranks the same for equal
weights but writes other scores; and ranx divides by zero when a run's scores are all equal.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from contracts.trec import EvaluationWarning, RunDict, ranked_lists

# ranx.fuse methods offered for comparison: name -> (ranx method, normalisation).
RANX_METHODS = {
    "rrf": ("rrf", None),
    "combsum": ("sum", "min-max"),
    "combmnz": ("mnz", "min-max"),
    "combmax": ("max", "min-max"),
    "wsum": ("wsum", "min-max"),
    "isr": ("isr", None),
    "bordafuse": ("bordafuse", None),
}
METHODS = ("normalized", *RANX_METHODS)


def check_fusion(num_runs: int, weights: Sequence[float] | None = None, depth: int | None = 1000,
                 names: Sequence[str] | None = None, warn: bool = True) -> list[float]:
    """Refuse fusion settings that would write a wrong run, before any run is read.

    Args:
        num_runs: how many runs will be fused.
        weights: one per run, or None for equal weights.
        depth: documents kept per query (None keeps all).
        names: what to call the runs in messages (default run 1, run 2, ...).
        warn: warn about negative weights (an EvaluationWarning).

    Returns:
        The weights as floats (1.0 each when None).

    Raises:
        ValueError: no runs, a weight count that differs from the run count, a weight that is not a finite number
            (nan would make every fused score nan), all weights 0, or a depth below 1.

    A negative weight is allowed (it subtracts a run) but warned about: it turns that run's ranking upside down.
    """
    names = _names(num_runs, names)
    if num_runs < 1:
        raise ValueError("no runs to fuse")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth {depth!r}: the number of documents kept per query must be a whole number >= 1")
    if weights is None:
        return [1.0] * num_runs
    if len(weights) != num_runs:
        raise ValueError(f"{len(weights)} weights for {num_runs} runs: give one weight per run")
    weights = [float(w) for w in weights]
    for name, w in zip(names, weights):
        if not math.isfinite(w):
            raise ValueError(f"weight {w} for {name} is not a finite number: every fused score would be {w}")
    if all(w == 0 for w in weights):
        raise ValueError("every weight is 0: the fused scores would all be 0 and the order meaningless")
    for name, w in zip(names, weights):
        if w < 0 and warn:
            warnings.warn(f"weight {w} for {name} is negative: that run's best documents are pushed to the bottom",
                          EvaluationWarning, stacklevel=3)
    return weights


def _names(num_runs: int, names: Sequence[str] | None) -> list[str]:
    return list(names) if names is not None else [f"run {i + 1}" for i in range(num_runs)]


def check_shared_queries(runs: Sequence[RunDict], names: Sequence[str] | None = None) -> None:
    """Refuse runs that share no query with the other runs; warn when some queries are missing from some runs.

    Args:
        runs: the runs to fuse.
        names: what to call them in messages (file names; default run 1, run 2, ...).

    Raises:
        ValueError: a run none of whose queries appears in any other run (a different topic set: its fusion
            would be a concatenation, not an ensemble).
    """
    names = _names(len(runs), names)
    queries = [set(run) for run in runs]
    if len(runs) < 2:
        return
    for i, (name, own) in enumerate(zip(names, queries)):
        others = set().union(*(q for j, q in enumerate(queries) if j != i))
        if not own & others:
            example = next(iter(sorted(own)), None)
            raise ValueError(f"{name} shares no query with the other runs ({', '.join(n for n in names if n != name)}; "
                             f"e.g. its query {example!r}): were they made on the same topics?")
    every = set.intersection(*queries)
    union = set.union(*queries)
    if len(every) < len(union):
        lacking = {name: len(union - q) for name, q in zip(names, queries) if len(q) < len(union)}
        warnings.warn(
            f"{len(union) - len(every)} of the {len(union)} queries are missing from some runs ("
            + ", ".join(f"{n} lacks {c}" for n, c in lacking.items())
            + "): there only the runs that have them count", EvaluationWarning, stacklevel=3)


def normalized_sum(runs: Sequence[RunDict], weights: Sequence[float] | None = None) -> dict[str, dict[str, float]]:
    """Per query and run, s' = (s - (min+max)/2) / (max - min); a missing document gets the run's minimum; weighted sum.

    A run whose scores for a query are all equal (or that lacks the query) carries no ranking there and adds 0 to
    every document of that query. The result is ordered best first, ties by document id descending (trec_eval's
    order), so a written run ranks as trec_eval reads it.

    Args:
        runs: {qid: {docid: score}} each.
        weights: one finite weight per run; None for equal weights.

    Returns:
        {qid: {docid: fused score}}, best first.

    Raises:
        ValueError: as check_fusion.
    """
    weights = check_fusion(len(runs), weights, depth=None, warn=False)
    fused: dict[str, dict[str, float]] = {}
    for qid in dict.fromkeys(q for run in runs for q in run):
        docs = list(dict.fromkeys(d for run in runs for d in run.get(qid, {})))
        totals = dict.fromkeys(docs, 0.0)
        for run, weight in zip(runs, weights):
            scores = run.get(qid)
            if not scores:
                continue
            low, high = min(scores.values()), max(scores.values())
            if high == low:
                continue
            middle, spread = (low + high) / 2, high - low
            floor = (low - middle) / spread  # -0.5: where every document this run did not retrieve sits
            for doc in docs:
                s = scores.get(doc)
                totals[doc] += weight * (floor if s is None else (s - middle) / spread)
        fused[qid] = totals
    return {qid: dict(items) for qid, items in ranked_lists(fused).items()}


def ranx_fuse(runs: Sequence[RunDict], method: str = "rrf", weights: Sequence[float] | None = None,
              params: dict | None = None) -> dict[str, dict[str, float]]:
    """ranx.fuse with one of RANX_METHODS; queries a run lacks are added empty, as ranx wants equal query sets.

    Args:
        runs: two or more {qid: {docid: score}}.
        method: a key of RANX_METHODS (rrf, combsum, combmnz, combmax, wsum, isr, bordafuse).
        weights: for wsum only, one per run.
        params: further ranx.fuse parameters (e.g. {"k": 60} for rrf).

    Returns:
        {qid: {docid: fused score}}, best first, ties by document id descending.

    Raises:
        ValueError: an unknown method, fewer than two runs, weights for a method that takes none.
    """
    import ranx  # deferred: ranx compiles its numba kernels on import (seconds)

    if method not in RANX_METHODS:
        raise ValueError(f"unknown fusion method {method!r}: expected one of {', '.join(METHODS)}")
    if len(runs) < 2:
        raise ValueError("fusion needs at least two runs")
    ranx_method, norm = RANX_METHODS[method]
    params = dict(params or {})
    if weights is not None:
        if ranx_method != "wsum":
            raise ValueError(f"weights apply to --method normalized or wsum, not {method}")
        params["weights"] = check_fusion(len(runs), weights, depth=None, warn=False)
    elif ranx_method == "wsum":
        params["weights"] = check_fusion(len(runs), None, depth=None, warn=False)
    from ranx.data_structures.generic import create_empty_results_dict  # deferred with ranx; make_comparable's filler

    qids = list(dict.fromkeys(q for run in runs for q in run))
    ranx_runs = []
    for i, run in enumerate(runs):
        r = ranx.Run({q: dict(d) for q, d in run.items() if d}, name=f"run_{i + 1}")
        for q in qids:
            if q not in r.run:
                r.run[q] = create_empty_results_dict()
        r.sort()
        ranx_runs.append(r)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unsafe cast from uint64 to int64.*")  # ranx's doc-id hashing
        fused = ranx.fuse(ranx_runs, norm=norm, method=ranx_method, params=params).to_dict()
    return {qid: dict(items) for qid, items in ranked_lists(fused).items()}


def fuse(runs: Sequence[RunDict], method: str = "normalized", weights: Sequence[float] | None = None,
         depth: int | None = 1000, names: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Fuse runs into one ensemble run.

    Args:
        runs: {qid: {docid: score}} each.
        method: "normalized" (DESIGN.md's centred min-max sum) or one of RANX_METHODS.
        weights: one per run (normalized and wsum only); None for equal weights.
        depth: documents kept per query, best first; None keeps all.
        names: what to call the runs in messages (their file names).

    Returns:
        {qid: {docid: fused score}}, each query best first (ties by document id descending).

    Raises:
        ValueError: see check_fusion and check_shared_queries; an unknown method.
    """
    check_fusion(len(runs), weights, depth, names)
    check_shared_queries(runs, names)
    if method == "normalized":
        fused = normalized_sum(runs, weights)
    else:
        fused = ranx_fuse(runs, method, weights)
    if depth is not None:
        fused = {qid: dict(list(docs.items())[:depth]) for qid, docs in fused.items()}
    return fused
