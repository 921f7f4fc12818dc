"""Metrics that print what the official tools print for the same run, computed by ranx.

ranx computes the metrics; this module only decides *which queries* and *which order* it sees, because that is where
the official tools and a plain `ranx.evaluate` part ways:

- **Queries.** ranx averages over the queries of the run (or refuses runs whose queries differ from the qrels). The
  MS MARCO script and `trec_eval -c` (what Anserini publishes) average over every judged query, a query missing from
  the run counting 0. We add the missing queries as empty result lists, so they count 0 and appear in the warnings.
  Queries of the run that the qrels do not judge are removed with a warning, as trec_eval ignores them.
- **Order.** ranx sorts each query's documents by score with an unstable sort, so tied scores come out in an
  arbitrary order. trec_eval (and so pytrec_eval, BEIR and Anserini) ranks by score, then by document id
  descending; the MS MARCO script ranks by the run file's rank column. We put the documents in the official order
  ourselves and hand ranx its low-level arrays with strictly decreasing scores (n, n-1, ...), which every
  rank-based metric reads the same (and with exact per-query document numbers instead of hashes cast to floats).
- **Relevance level.** TREC DL's R@1k counts only rel >= 2 (`trec_eval -l 2`): ranx's `recall@1000-l2`.
- **BEIR** reports pytrec_eval's ndcg_cut.10 after removing a document whose id equals the query id
  (`ignore_identical_ids`, it matters on ArguAna and Quora); we do the same and count what was removed. BEIR
  averages over the queries its run answers; a run missing queries is warned about and those queries count 0
  here, never dropped.

`evaluate` is the one entry point (HIGH LEVEL FUNCTIONS); the query bookkeeping and ranx's arrays sit under it.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from contracts.trec import EvaluationWarning, QrelsDict, RunDict, ranked_lists

ORDERS = ("trec_eval", "run")


@dataclass(frozen=True)
class Measure:
    """A ranx metric name and the order the official tool ranks documents in ("trec_eval" or "run")."""

    metric: str
    order: str = "trec_eval"


@dataclass(frozen=True)
class Convention:
    """How one benchmark is scored officially: the figures it reports (name -> Measure) and how."""

    name: str
    measures: dict[str, Measure]
    drop_self_hits: bool = False
    about: str = ""


CONVENTIONS = {
    "msmarco": Convention(
        "msmarco",
        {"MRR@10": Measure("mrr@10", order="run"), "R@1k": Measure("recall@1000")},
        about="MS MARCO passage dev: MRR@10 as msmarco_passage_eval.py (rank column, every judged query), "
        "R@1k as trec_eval -c -m recall.1000",
    ),
    "trec-dl": Convention(
        "trec-dl",
        {"NDCG@10": Measure("ndcg@10"), "R@1k": Measure("recall@1000-l2")},
        about="TREC DL: trec_eval -c -m ndcg_cut.10; trec_eval -c -l 2 -m recall.1000",
    ),
    "beir": Convention(
        "beir",
        {"NDCG@10": Measure("ndcg@10"), "R@100": Measure("recall@100")},
        drop_self_hits=True,
        about="BEIR: pytrec_eval ndcg_cut.10 and recall.100, documents equal to the query id removed",
    ),
    "default": Convention(
        "default",
        {"NDCG@10": Measure("ndcg@10"), "MRR@10": Measure("mrr@10"), "R@100": Measure("recall@100"),
         "R@1k": Measure("recall@1000")},
        about="trec_eval -c: ndcg_cut.10, recip_rank@10, recall.100, recall.1000",
    ),
}


@dataclass
class Evaluation:
    """Mean figures plus what a reader needs to trust them: per-query values and the queries that needed care.

    Attributes:
        means: figure name -> mean over every judged query.
        per_query: figure name -> {qid: value}, for every judged query (in qrels order).
        num_queries: the number of judged queries (the denominator of every mean).
        missing_queries: judged queries without results in the run (each counted 0).
        unknown_queries: run queries the qrels do not judge (ignored).
        self_hits_removed: retrieved documents whose id equals the query id, removed (BEIR convention only).
        self_hits_relevant: how many of those the qrels judged relevant (rel > 0).
        judged_retrieved: retrieved documents (of judged queries) that the qrels judge; 0 means the run and the
            qrels share no document id at all.
    """

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    num_queries: int
    missing_queries: list[str] = field(default_factory=list)
    unknown_queries: list[str] = field(default_factory=list)
    self_hits_removed: int = 0
    self_hits_relevant: int = 0
    judged_retrieved: int = 0

    def summary(self) -> dict:
        """The counts that metrics.json records next to the means.

        Returns:
            {name: count}: queries evaluated, missing from the run, not in the qrels, self-hits removed, judged.
        """
        return {
            "queries_evaluated": self.num_queries,
            "queries_missing_from_run_counted_0": len(self.missing_queries),
            "queries_not_in_qrels_ignored": len(self.unknown_queries),
            "self_hits_removed": self.self_hits_removed,
            "self_hits_removed_judged_relevant": self.self_hits_relevant,
            "retrieved_documents_judged": self.judged_retrieved,
        }


# HIGH LEVEL FUNCTIONS


def get_convention(name: str) -> Convention:
    """The Convention called `name`.

    Args:
        name: "msmarco", "trec-dl", "beir" or "default".

    Raises:
        ValueError: for any other name.
    """
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown convention {name!r}: expected one of {', '.join(CONVENTIONS)}") from None


def evaluate(qrels: QrelsDict, run: RunDict, convention: str = "default",
             measures: Sequence[str] | Mapping[str, Measure] | None = None, *, source: str = "run",
             warn: bool = True) -> Evaluation:
    """Score a run as the official tool of `convention` does, over every judged query.

    Args:
        qrels: {qid: {docid: relevance}}.
        run: {qid: {docid: score}}; each query's documents in the run file's rank order (as `read_run` gives them),
            which the "run" order (MS MARCO's MRR@10) follows.
        convention: "msmarco", "trec-dl", "beir" or "default" (see CONVENTIONS): which figures, which order, and
            whether documents equal to the query id are removed.
        measures: None for the convention's own figures; or names, each either one of the convention's figure
            names ("NDCG@10") or a ranx metric ("ndcg@10", "mrr@10", "recall@1000-l2": `-lN` is trec_eval's
            `-l N`) scored in trec_eval's order; or a mapping {figure name: Measure}.
        source: what to call the run in messages (its path).
        warn: emit EvaluationWarning for ignored queries, queries counted 0 and runs sharing no document id with
            the qrels.

    Returns:
        An Evaluation: `.means[name]`, `.per_query[name][qid]` and the counts of what needed care.

    Raises:
        ValueError: empty qrels or run, a run none of whose queries is judged, no measures, an unknown
            convention or order.
    """
    conv = get_convention(convention)
    chosen = _measures_of(conv, measures)
    judged, result = _judged_part(qrels, run, conv.drop_self_hits, source)
    for order in sorted({m.order for m in chosen.values()}):
        names = [n for n, m in chosen.items() if m.order == order]
        qrels_arrays, run_arrays, judged_retrieved = _ranx_arrays(qrels, _official_order(judged, order))
        result.judged_retrieved = judged_retrieved
        scores = _evaluate_ranx(qrels_arrays, run_arrays, [chosen[n].metric for n in names])
        for n in names:
            values = np.asarray(scores[chosen[n].metric], dtype=np.float64)
            result.means[n] = float(values.mean())
            result.per_query[n] = dict(zip(qrels, map(float, values)))
    if warn:
        _warn_about(result, len(run), source)
    return result


# LOW LEVEL FUNCTIONS


def _measures_of(conv: Convention, measures) -> dict[str, Measure]:
    if measures is None:
        return dict(conv.measures)
    if isinstance(measures, Mapping):
        chosen = dict(measures)
    else:
        if isinstance(measures, str):
            measures = [measures]
        chosen = {m: conv.measures.get(m, Measure(m)) for m in measures}
    if not chosen:
        raise ValueError("no metrics to compute")
    for name, m in chosen.items():
        if m.order not in ORDERS:
            raise ValueError(f"{name}: unknown order {m.order!r}: expected one of {', '.join(ORDERS)}")
    return chosen


def _official_order(run: RunDict, order: str) -> dict[str, list[str]]:
    """Each query's document ids best first: trec_eval's (score, then id descending) or the run's own order."""
    if order == "trec_eval":
        return {qid: [doc for doc, _ in items] for qid, items in ranked_lists(run).items()}
    return {qid: list(docs) for qid, docs in run.items()}


def _judged_part(qrels: QrelsDict, run: RunDict, drop_self_hits: bool,
                 source: str) -> tuple[dict[str, Mapping[str, float]], Evaluation]:
    """The run restricted to judged queries (self hits removed for BEIR) and the bookkeeping of what changed."""
    if not qrels:
        raise ValueError("the qrels are empty: nothing to evaluate against")
    if not run or not any(run.values()):
        raise ValueError(f"{source}: the run is empty (no query has a retrieved document)")
    unknown = [qid for qid in run if qid not in qrels]
    if len(unknown) == len(run):
        raise ValueError(f"{source}: none of its {len(run)} queries is judged in the qrels (e.g. {unknown[0]!r}): "
                         "wrong qrels or dataset?")
    judged = {qid: docs for qid, docs in run.items() if qid in qrels and docs}
    self_hits = self_relevant = 0
    if drop_self_hits:
        hit = [qid for qid, docs in judged.items() if qid in docs]
        self_hits = len(hit)
        self_relevant = sum(qrels[qid].get(qid, 0) > 0 for qid in hit)
        for qid in hit:
            judged[qid] = {d: s for d, s in judged[qid].items() if d != qid}
    missing = [qid for qid in qrels if not judged.get(qid)]
    return judged, Evaluation({}, {}, len(qrels), missing, unknown, self_hits, self_relevant)


def _warn_about(info: Evaluation, num_run_queries: int, source: str) -> None:
    """Say which queries were ignored or counted 0, so no average silently changes its denominator."""
    if info.unknown_queries:
        warnings.warn(
            f"{source}: {len(info.unknown_queries)} of its {num_run_queries} queries are not in the qrels "
            f"(e.g. {info.unknown_queries[0]!r}): ignored, as trec_eval does", EvaluationWarning, stacklevel=3)
    if info.missing_queries:
        warnings.warn(
            f"{source}: {len(info.missing_queries)} of the {info.num_queries} judged queries have no results "
            f"(e.g. {info.missing_queries[0]!r}): each counts 0 in every average (MS MARCO script, trec_eval -c)",
            EvaluationWarning, stacklevel=3)
    if info.judged_retrieved == 0 and len(info.missing_queries) < info.num_queries:
        warnings.warn(
            f"{source}: none of the documents it retrieved for judged queries is judged in the qrels, so every "
            "figure is 0: do the run and the qrels use the same document ids (corpus and qrels of one dataset)?",
            EvaluationWarning, stacklevel=3)


def _ranx_arrays(qrels: QrelsDict, ordered: Mapping[str, Sequence[str]]):
    """ranx's low-level input, one (doc number, value) array per judged query, in qrels order.

    Documents become small integers per query (judged ones first), exact where ranx would hash ids to floats; the
    run gets strictly decreasing stand-in scores n, n-1, ..., so ranx's own sort keeps the official order; a judged
    query without results gets an empty array and so counts 0. Also returns how many retrieved documents are
    judged (numbers below the query's judged count), which costs nothing here.
    """
    from numba.typed import List as TypedList  # numba loads with ranx, which is deferred too

    qrels_arrays, run_arrays = TypedList(), TypedList()
    judged_retrieved = 0
    for qid, judged in qrels.items():
        numbers = {doc: i for i, doc in enumerate(judged)}
        rels = np.fromiter(judged.values(), dtype=np.float64, count=len(judged))
        by_relevance = np.argsort(-rels, kind="stable")  # ranx computes the ideal DCG from this order
        qrels_arrays.append(np.column_stack([by_relevance.astype(np.float64), rels[by_relevance]]))
        docs = ordered.get(qid, ())
        n, offset = len(docs), len(judged)
        ids = np.fromiter((numbers.get(d, offset + i) for i, d in enumerate(docs)), dtype=np.float64, count=n)
        judged_retrieved += int(np.count_nonzero(ids < offset))
        run_arrays.append(np.column_stack([ids, np.arange(n, 0, -1, dtype=np.float64)]).reshape(n, 2))
    return qrels_arrays, run_arrays, judged_retrieved


def _evaluate_ranx(qrels_arrays, run_arrays, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    import ranx  # deferred: ranx compiles its numba kernels on import (seconds)

    metrics = list(metrics)
    # ranx 0.3.21 raises KeyError for a single metric with return_mean=False; asked twice, it returns the dict.
    asked = metrics * 2 if len(metrics) == 1 else metrics
    return ranx.evaluate(qrels_arrays, run_arrays, asked, return_mean=False)
