"""Metrics against trec_eval (pytrec_eval); the published figures of the reference runs are in test_reproduction.py."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from scipy.stats import ttest_rel

from contracts.trec import EvaluationWarning, read_qrels, read_run
from evaluation.metrics import Measure, evaluate
from evaluation.significance import compare_runs

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RUNS = ["BM25", "BM25_RM3", "D_BERT_KD_TASB", "OPEN_AI_ADA2", "REP_LLAMA", "SPLADE_P_P_ENSEMBLE_DISTIL"]
YEARS = {"dl19": "trec-dl-2019", "dl20": "trec-dl-2020"}
needs_data = pytest.mark.skipif(not (DATA / "trec-dl-2019" / "reference-runs").exists(), reason=f"no {DATA}")


def reference(year: str, name: str):
    folder = DATA / YEARS[year]
    return read_qrels(folder / "qrels.txt"), read_run(folder / "reference-runs" / f"{name}.{year}.trec.gz")


def trec_eval_order(docs):
    """Independent of the code under test: trec_eval sorts by score, then by docno descending."""
    return sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def trec_eval_c(qrels, run, measure, key, relevance_level=1, top=None):
    """pytrec_eval averaged as `trec_eval -c`: every judged query, a missing one counting 0."""
    if top is not None:
        run = {q: dict(trec_eval_order(d)[:top]) for q, d in run.items()}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {measure}, relevance_level=relevance_level).evaluate(run)
    return float(np.mean([per_query[q][key] if q in per_query else 0.0 for q in qrels]))


@needs_data
@pytest.mark.parametrize("year", sorted(YEARS))
@pytest.mark.parametrize("name", RUNS)
def test_every_reference_run_matches_trec_eval(year, name):
    qrels, run = reference(year, name)
    ours = evaluate(qrels, run, "trec-dl").means
    assert ours["NDCG@10"] == pytest.approx(trec_eval_c(qrels, run, "ndcg_cut.10", "ndcg_cut_10"), abs=1e-12)
    assert ours["R@1k"] == pytest.approx(trec_eval_c(qrels, run, "recall.1000", "recall_1000", 2), abs=1e-12)
    plain = evaluate(qrels, run, measures=["mrr@10", "recall@100"]).means
    assert plain["mrr@10"] == pytest.approx(trec_eval_c(qrels, run, "recip_rank", "recip_rank", top=10), abs=1e-12)
    assert plain["recall@100"] == pytest.approx(trec_eval_c(qrels, run, "recall.100", "recall_100"), abs=1e-12)


def test_tied_scores_are_ranked_as_trec_eval_ranks_them():
    # trec_eval puts "d2" before "d1" (same score, id descending): the relevant d1 is second.
    qrels = {"q1": {"d1": 1, "d0": 0}, "q2": {"x9": 2, "x1": 1}}
    run = {"q1": {"d1": 1.0, "d2": 1.0}, "q2": {"x1": 3.0, "x5": 3.0, "x9": 3.0, "x0": 4.0}}
    ours = evaluate(qrels, run, measures=["mrr@10", "ndcg@10"]).means
    assert ours["mrr@10"] == pytest.approx(trec_eval_c(qrels, run, "recip_rank", "recip_rank", top=10))
    assert ours["ndcg@10"] == pytest.approx(trec_eval_c(qrels, run, "ndcg_cut.10", "ndcg_cut_10"))
    assert ours["mrr@10"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_msmarco_mrr_follows_the_rank_column_like_the_official_script():
    qrels = {"q1": {"d1": 1}}
    run = {"q1": {"d1": 1.0, "d2": 1.0}}  # file order (rank column): d1 first
    assert evaluate(qrels, run, "msmarco").means["MRR@10"] == 1.0
    assert evaluate(qrels, run, "msmarco", measures=["MRR@10"]).means == {"MRR@10": 1.0}  # the convention's order
    assert evaluate(qrels, run, measures=["mrr@10"]).means["mrr@10"] == 0.5  # trec_eval's order: d2 first
    assert evaluate(qrels, run, measures={"m": Measure("mrr@10", order="run")}).means["m"] == 1.0


def test_mrr10_counts_missing_queries_and_late_hits_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}, "q4": {"d": 1}}
    late = {f"n{i}": 100.0 - i for i in range(10)} | {"c": 1.0}  # relevant at rank 11
    run = {"q1": {"a": 2.0, "z": 1.0}, "q2": {"z": 2.0, "b": 1.0}, "q3": late, "q9": {"a": 1.0}}
    with pytest.warns(EvaluationWarning) as caught:
        result = evaluate(qrels, run, "msmarco")
    assert result.means["MRR@10"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert result.per_query["MRR@10"]["q4"] == 0.0
    assert result.missing_queries == ["q4"] and result.unknown_queries == ["q9"]
    messages = " ".join(str(w.message) for w in caught)
    assert "1 of the 4 judged queries have no results" in messages
    assert "1 of its 4 queries are not in the qrels" in messages


def test_trec_dl_recall_counts_only_relevance_two_and_above():
    qrels = {"q1": {"r1": 1, "r2": 2, "r3": 3, "r0": 0}}
    run = {"q1": {"r1": 3.0, "r2": 2.0, "x": 1.0}}
    figures = evaluate(qrels, run, "trec-dl").means
    assert figures["R@1k"] == 0.5  # r2 of {r2, r3}; r1 is not relevant at level 2
    assert figures["R@1k"] == pytest.approx(trec_eval_c(qrels, run, "recall.1000", "recall_1000", 2))
    assert evaluate(qrels, run, measures=["recall@1000"]).means["recall@1000"] == pytest.approx(2 / 3)


def test_beir_drops_the_query_itself_from_its_results_and_counts_them():
    qrels = {"q1": {"d1": 1}, "q2": {"q2": 1, "d2": 1}}
    run = {"q1": {"q1": 9.0, "d1": 5.0}, "q2": {"q2": 3.0, "d2": 2.0}}
    beir = evaluate(qrels, run, "beir")
    assert beir.per_query["NDCG@10"]["q1"] == 1.0
    assert beir.self_hits_removed == 2 and beir.self_hits_relevant == 1  # q2 judged itself relevant
    assert beir.summary()["self_hits_removed_judged_relevant"] == 1
    default = evaluate(qrels, run, "default")
    assert default.per_query["NDCG@10"]["q1"] < 1.0 and default.self_hits_removed == 0


def test_a_run_sharing_no_document_id_with_the_qrels_is_warned_about():
    qrels = {"q1": {"doc-1": 1}, "q2": {"doc-2": 1}}
    run = {"q1": {"1": 2.0, "7": 1.0}, "q2": {"2": 1.0}}  # another id scheme: every figure would be 0
    with pytest.warns(EvaluationWarning, match="none of the documents it retrieved for judged queries is judged"):
        result = evaluate(qrels, run)
    assert result.judged_retrieved == 0 and result.means["NDCG@10"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a run that shares ids warns about nothing
        assert evaluate(qrels, {"q1": {"doc-1": 1.0}, "q2": {"doc-2": 1.0}}).judged_retrieved == 2


def test_empty_and_unrelated_runs_are_errors():
    qrels = {"q1": {"d1": 1}}
    with pytest.raises(ValueError, match="run is empty"):
        evaluate(qrels, {})
    with pytest.raises(ValueError, match="none of its 1 queries is judged"):
        evaluate(qrels, {"other": {"d1": 1.0}})
    with pytest.raises(ValueError, match="unknown convention"):
        evaluate(qrels, {"q1": {"d1": 1.0}}, "msmacro")
    with pytest.raises(ValueError, match="no metrics"):
        evaluate(qrels, {"q1": {"d1": 1.0}}, measures=[])
    with pytest.raises(ValueError, match="unknown order"):
        evaluate(qrels, {"q1": {"d1": 1.0}}, measures={"x": Measure("ndcg@10", order="score")})


@needs_data
def test_paired_test_matches_scipy_on_per_query_figures():
    qrels, bm25 = reference("dl19", "BM25")
    _, splade = reference("dl19", "SPLADE_P_P_ENSEMBLE_DISTIL")
    result = compare_runs(qrels, {"bm25": bm25, "splade": splade}, "trec-dl", max_p=0.05)["NDCG@10"]
    a = evaluate(qrels, bm25, "trec-dl").per_query["NDCG@10"]
    b = evaluate(qrels, splade, "trec-dl").per_query["NDCG@10"]
    p = ttest_rel([a[q] for q in qrels], [b[q] for q in qrels]).pvalue
    assert result["splade"]["p_values"]["bm25"] == pytest.approx(p)
    assert result["splade"]["mean"] == pytest.approx(np.mean(list(b.values())))
    assert result["splade"]["better_than"] == ["bm25"] and result["bm25"]["better_than"] == []
