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
  (`ignore_identical_ids`, it matters on ArguAna and Quora); we do the same. BEIR averages over the queries its run
  answers; a run missing queries is warned about and those queries count 0 here, never dropped.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from contracts.trec import EvaluationWarning, ranked_lists

Qrels = Mapping[str, Mapping[str, int]]
RunDict = Mapping[str, Mapping[str, float]]

ORDERS = ("trec_eval", "run")

MSMARCO_METRICS = ["mrr@10", "recall@1000"]
TREC_DL_METRICS = ["ndcg@10", "recall@1000-l2"]
BEIR_METRICS = ["ndcg@10", "recall@100"]
DEFAULT_METRICS = ["ndcg@10", "mrr@10", "recall@100", "recall@1000"]


@dataclass(frozen=True)
class Measure:
    """A ranx metric name and the order the official tool ranks documents in."""

    metric: str
    order: str = "trec_eval"


@dataclass(frozen=True)
class Convention:
    """How one benchmark is scored officially: the figures it reports and how."""

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
    """Mean figures plus what a reader needs to trust them: per-query values and the queries that needed care."""

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    num_queries: int
    missing_queries: list[str] = field(default_factory=list)  # judged, absent from the run: counted 0
    unknown_queries: list[str] = field(default_factory=list)  # in the run, not judged: ignored
    self_hits_removed: int = 0

    def summary(self) -> dict:
        return {
            "queries_evaluated": self.num_queries,
            "queries_missing_from_run_counted_0": len(self.missing_queries),
            "queries_not_in_qrels_ignored": len(self.unknown_queries),
            "self_hits_removed": self.self_hits_removed,
        }


def with_relevance_level(metric: str, relevance_level: int) -> str:
    """ranx spells `trec_eval -l N` as a `-lN` suffix."""
    if relevance_level == 1 or "-l" in metric:
        return metric
    return f"{metric}-l{relevance_level}"


def official_order(run: RunDict, order: str) -> dict[str, list[str]]:
    """Each query's document ids best first: trec_eval's (score, then id descending) or the run's own order."""
    if order == "trec_eval":
        return {qid: [doc for doc, _ in items] for qid, items in ranked_lists(run).items()}
    if order == "run":
        return {qid: list(docs) for qid, docs in run.items()}
    raise ValueError(f"unknown order {order!r}: expected one of {', '.join(ORDERS)}")


def check_queries(qrels: Qrels, run: RunDict, drop_self_hits: bool = False,
                  source: str = "run") -> tuple[dict[str, Mapping[str, float]], Evaluation]:
    """The run restricted to judged queries (self hits removed for BEIR) and the bookkeeping of what changed."""
    if not qrels:
        raise ValueError("the qrels are empty: nothing to evaluate against")
    if not run or not any(run.values()):
        raise ValueError(f"{source}: the run is empty (no query has a retrieved document)")
    unknown = [qid for qid in run if qid not in qrels]
    if len(unknown) == len(run):
        raise ValueError(
            f"{source}: none of its {len(run)} queries is judged in the qrels (e.g. {unknown[0]!r}): wrong qrels or dataset?"
        )
    judged = {qid: docs for qid, docs in run.items() if qid in qrels and docs}
    self_hits = 0
    if drop_self_hits:
        self_hits = sum(qid in docs for qid, docs in judged.items())
        judged = {qid: {d: s for d, s in docs.items() if d != qid} for qid, docs in judged.items()}
    missing = [qid for qid in qrels if not judged.get(qid)]
    return judged, Evaluation({}, {}, len(qrels), missing, unknown, self_hits)


def warn_about(info: Evaluation, num_run_queries: int, source: str = "run") -> None:
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


def ranx_arrays(qrels: Qrels, ordered: Mapping[str, Sequence[str]]):
    """ranx's low-level input, one (doc number, value) array per judged query, in qrels order.

    Documents become small integers per query (judged ones first), exact where ranx would hash ids to floats; the
    run gets strictly decreasing stand-in scores n, n-1, ..., so ranx's own sort keeps the official order; a judged
    query without results gets an empty array and so counts 0.
    """
    from numba.typed import List as TypedList

    qrels_arrays, run_arrays = TypedList(), TypedList()
    for qid, judged in qrels.items():
        numbers = {doc: i for i, doc in enumerate(judged)}
        rels = np.fromiter(judged.values(), dtype=np.float64, count=len(judged))
        by_relevance = np.argsort(-rels, kind="stable")  # ranx computes the ideal DCG from this order
        qrels_arrays.append(np.column_stack([by_relevance.astype(np.float64), rels[by_relevance]]))
        docs = ordered.get(qid, ())
        n, offset = len(docs), len(judged)
        ids = np.fromiter((numbers.get(d, offset + i) for i, d in enumerate(docs)), dtype=np.float64, count=n)
        run_arrays.append(np.column_stack([ids, np.arange(n, 0, -1, dtype=np.float64)]).reshape(n, 2))
    return qrels_arrays, run_arrays


def _evaluate_ranx(qrels_arrays, run_arrays, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    import ranx

    metrics = list(metrics)
    # ranx 0.3.21 raises KeyError for a single metric with return_mean=False; asked twice, it returns the dict.
    asked = metrics * 2 if len(metrics) == 1 else metrics
    return ranx.evaluate(qrels_arrays, run_arrays, asked, return_mean=False)


def evaluate_measures(qrels: Qrels, run: RunDict, measures: Mapping[str, Measure], drop_self_hits: bool = False,
                      source: str = "run", warn: bool = True) -> Evaluation:
    """Evaluate named measures; each order is built once and handed to ranx with every metric that uses it."""
    if not measures:
        raise ValueError("no metrics to compute")
    judged, result = check_queries(qrels, run, drop_self_hits, source)
    if warn:
        warn_about(result, len(run), source)
    for order in sorted({m.order for m in measures.values()}):
        names = [n for n, m in measures.items() if m.order == order]
        qrels_arrays, run_arrays = ranx_arrays(qrels, official_order(judged, order))
        scores = _evaluate_ranx(qrels_arrays, run_arrays, [measures[n].metric for n in names])
        for n in names:
            values = np.asarray(scores[measures[n].metric], dtype=np.float64)
            result.means[n] = float(values.mean())
            result.per_query[n] = dict(zip(qrels, map(float, values)))
    return result


def evaluate_detailed(qrels: Qrels, run: RunDict, metrics: Sequence[str], relevance_level: int = 1,
                      order: str = "trec_eval", drop_self_hits: bool = False, source: str = "run") -> Evaluation:
    measures = {m: Measure(with_relevance_level(m, relevance_level), order) for m in metrics}
    return evaluate_measures(qrels, run, measures, drop_self_hits, source)


def evaluate(qrels: Qrels, run: RunDict, metrics: Sequence[str], relevance_level: int = 1,
             order: str = "trec_eval") -> dict[str, float]:
    """Mean of each ranx metric (`ndcg@10`, `mrr@10`, `recall@1000`, ...) over every judged query."""
    return evaluate_detailed(qrels, run, metrics, relevance_level, order).means


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown convention {name!r}: expected one of {', '.join(CONVENTIONS)}") from None


def evaluate_convention_detailed(qrels: Qrels, run: RunDict, convention: str, source: str = "run") -> Evaluation:
    conv = get_convention(convention)
    return evaluate_measures(qrels, run, conv.measures, conv.drop_self_hits, source)


def evaluate_convention(qrels: Qrels, run: RunDict, convention: str) -> dict[str, float]:
    """The figures a benchmark publishes: "msmarco", "trec-dl", "beir" or "default"."""
    return evaluate_convention_detailed(qrels, run, convention).means


def format_table(rows: Mapping[str, Mapping[str, float]], digits: int = 4, label: str = "run") -> str:
    """A Markdown table: one row per run, one column per figure (in order of first appearance)."""
    columns: list[str] = []
    for figures in rows.values():
        columns += [c for c in figures if c not in columns]
    lines = [
        "| " + " | ".join([label, *columns]) + " |",
        "| " + " | ".join(["---"] + ["---:"] * len(columns)) + " |",
    ]
    for name, figures in rows.items():
        cells = [f"{figures[c]:.{digits}f}" if c in figures and figures[c] is not None else "–" for c in columns]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines) + "\n"
