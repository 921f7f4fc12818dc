"""Ensembles of runs: the normalised sum of DESIGN.md, and ranx's fusion methods for comparison.

The normalised sum is written out here rather than taken from ranx on purpose: DESIGN.md fixes a centring
(s - (min+max)/2) / (max - min) and gives a document missing from a run that run's minimum (-0.5). ranx's
min-max CombSUM scales to [0, 1] and gives missing documents 0 (its minimum too), which ranks the same for equal
weights but writes other scores; and ranx divides by zero when a run's scores are all equal.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

from contracts.trec import ranked_lists

RunDict = Mapping[str, Mapping[str, float]]

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


def _check_weights(runs: Sequence[RunDict], weights: Sequence[float] | None) -> list[float]:
    if not runs:
        raise ValueError("no runs to fuse")
    if weights is None:
        return [1.0] * len(runs)
    if len(weights) != len(runs):
        raise ValueError(f"{len(weights)} weights for {len(runs)} runs: give one weight per run")
    return [float(w) for w in weights]


def normalized_sum(runs: Sequence[RunDict], weights: Sequence[float] | None = None) -> dict[str, dict[str, float]]:
    """Per query and run, s' = (s - (min+max)/2) / (max - min); a missing document gets the run's minimum; weighted sum.

    A run whose scores for a query are all equal (or that lacks the query) carries no ranking there and adds 0 to
    every document of that query. The result is ordered best first, ties by document id descending (trec_eval's
    order), so a written run ranks as trec_eval reads it.
    """
    weights = _check_weights(runs, weights)
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
    """ranx.fuse with one of RANX_METHODS; queries a run lacks are added empty, as ranx wants equal query sets."""
    import ranx

    if method not in RANX_METHODS:
        raise ValueError(f"unknown fusion method {method!r}: expected one of {', '.join(METHODS)}")
    if len(runs) < 2:
        raise ValueError("fusion needs at least two runs")
    ranx_method, norm = RANX_METHODS[method]
    params = dict(params or {})
    if weights is not None:
        if ranx_method != "wsum":
            raise ValueError(f"weights apply to --method normalized or wsum, not {method}")
        params["weights"] = _check_weights(runs, weights)
    elif ranx_method == "wsum":
        params["weights"] = _check_weights(runs, None)
    from ranx.data_structures.generic import create_empty_results_dict  # what ranx's make_comparable adds

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
         depth: int | None = 1000) -> dict[str, dict[str, float]]:
    """Fuse runs with `method` and keep the best `depth` documents per query (None keeps all)."""
    if method == "normalized":
        fused = normalized_sum(runs, weights)
    else:
        fused = ranx_fuse(runs, method, weights)
    if depth is not None:
        fused = {qid: dict(list(docs.items())[:depth]) for qid, docs in fused.items()}
    return fused
