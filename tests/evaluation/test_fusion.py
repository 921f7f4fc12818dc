"""Ensembles: DESIGN.md's normalised sum by hand, against ranx's CombSUM, and through a written run file."""
from pathlib import Path

import pytest

from contracts.trec import EvaluationWarning, read_qrels, read_run, write_run
from evaluation.fusion import check_fusion, fuse, normalized_sum, ranx_fuse
from evaluation.metrics import evaluate

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "trec-dl-2019" / "reference-runs").exists(), reason=f"no {DATA}")


def test_normalized_sum_by_hand():
    a = {"q1": {"d1": 3.0, "d2": 1.0, "d3": 2.0}}  # centre 2, spread 2: d1 .5, d2 -.5, d3 0, missing -.5
    b = {"q1": {"d1": 10.0, "d4": 20.0}}  # centre 15, spread 10: d1 -.5, d4 .5, missing -.5
    fused = normalized_sum([a, b])
    assert fused == {"q1": {"d4": 0.0, "d1": 0.0, "d3": -0.5, "d2": -1.0}}
    assert list(fused["q1"]) == ["d4", "d1", "d3", "d2"]  # the tie d4/d1 in trec_eval's order (id descending)
    weighted = normalized_sum([a, b], weights=[2.0, 1.0])
    assert weighted["q1"] == pytest.approx({"d1": 0.5, "d2": -1.5, "d3": -0.5, "d4": -0.5})


def test_all_equal_scores_and_missing_queries_contribute_zero():
    flat = {"q1": {"d1": 4.0, "d2": 4.0}, "q2": {"d7": 1.0}}  # q2: a single document is "all equal" too
    varied = {"q1": {"d1": 1.0, "d3": 3.0}}  # lacks q2
    fused = normalized_sum([flat, varied])
    assert fused["q1"] == {"d3": 0.5, "d1": -0.5, "d2": -0.5}
    assert fused["q2"] == {"d7": 0.0}


def test_weights_must_match_runs():
    with pytest.raises(ValueError, match="2 weights for 3 runs"):
        normalized_sum([{}, {}, {}], weights=[1, 2])
    with pytest.raises(ValueError, match="no runs"):
        normalized_sum([])


def test_fuse_keeps_depth_and_survives_a_written_run(tmp_path):
    a = {"q1": {f"d{i}": 1.0 + i * 1e-12 for i in range(5)}}  # differences far below %.6f
    b = {"q1": {f"d{i}": float(-i) for i in range(5)}}
    fused = fuse([a, b], "normalized", depth=3)
    assert len(fused["q1"]) == 3
    write_run(tmp_path / "fused.trec", {q: list(d.items()) for q, d in fused.items()})
    assert read_run(tmp_path / "fused.trec") == fused


A = {"q1": {"d1": 3.0, "d2": 1.0}, "q2": {"d3": 1.0, "d4": 0.5}}
B = {"q1": {"d2": 5.0, "d3": 4.0}, "q2": {"d4": 2.0, "d3": 1.0}}


@pytest.mark.parametrize("weights, depth, message", [
    ([float("nan"), 1.0], 10, "weight nan for a.trec is not a finite number"),
    ([float("inf"), 1.0], 10, "weight inf for a.trec is not a finite number"),
    ([0.0, 0.0], 10, "every weight is 0"),
    ([1.0, 1.0], 0, "depth 0: the number of documents kept per query must be a whole number >= 1"),
    ([1.0, 1.0], -5, "depth -5"),
    ([1.0], 10, "1 weights for 2 runs"),
])
def test_fusion_settings_that_would_write_a_wrong_run_are_refused(weights, depth, message):
    with pytest.raises(ValueError, match=message):
        fuse([A, B], "normalized", weights, depth=depth, names=["a.trec", "b.trec"])
    with pytest.raises(ValueError, match=message):
        check_fusion(2, weights, depth, ["a.trec", "b.trec"])


def test_negative_weight_is_warned_about_once_naming_the_run():
    with pytest.warns(EvaluationWarning) as caught:
        fused = fuse([A, B], "normalized", [1.0, -1.0], names=["a.trec", "b.trec"])
    assert [str(w.message) for w in caught] == [
        "weight -1.0 for b.trec is negative: that run's best documents are pushed to the bottom"]
    assert list(fused["q1"])[-1] == "d2"  # b's best document (and a's second) ends last


def test_runs_sharing_no_query_are_refused_and_partly_shared_ones_warned():
    other_topics = {"x1": {"d1": 1.0}, "x2": {"d2": 1.0}}
    with pytest.raises(ValueError, match=r"c.trec shares no query with the other runs \(a.trec, b.trec; e.g. its "
                                         r"query 'x1'\)"):
        fuse([A, B, other_topics], names=["a.trec", "b.trec", "c.trec"])
    with pytest.warns(EvaluationWarning, match=r"1 of the 2 queries are missing from some runs \(b.trec lacks 1\)"):
        fused = fuse([A, {"q1": B["q1"]}], names=["a.trec", "b.trec"])
    assert set(fused) == {"q1", "q2"}


def test_ranx_methods_reachable():
    a = {"q1": {"d1": 3.0, "d2": 1.0}, "q2": {"x": 1.0, "y": 0.5}}
    b = {"q1": {"d2": 5.0, "d3": 4.0}}
    rrf = ranx_fuse([a, b], "rrf")
    assert list(rrf["q1"])[0] == "d2"  # the only document both runs retrieve
    assert set(rrf["q2"]) == {"x", "y"}
    with pytest.raises(ValueError, match="unknown fusion method"):
        ranx_fuse([a, b], "magic")


@needs_data
@pytest.mark.parametrize("year, tag", [("trec-dl-2019", "dl19"), ("trec-dl-2020", "dl20")])
def test_reference_ensemble_ranks_as_ranx_combsum(year, tag):
    """Equal weights: DESIGN.md's sum is min-max CombSUM shifted per query, so the two rankings agree."""
    folder = DATA / year
    qrels = read_qrels(folder / "qrels.txt")
    names = ["SPLADE_P_P_ENSEMBLE_DISTIL", "D_BERT_KD_TASB", "BM25"]
    runs = [read_run(folder / "reference-runs" / f"{n}.{tag}.trec.gz") for n in names]
    ours = evaluate(qrels, fuse(runs, "normalized"), "trec-dl").means
    theirs = evaluate(qrels, fuse(runs, "combsum"), "trec-dl").means
    assert ours == pytest.approx(theirs, abs=1e-12)
    best_single = max(evaluate(qrels, r, "trec-dl").means["NDCG@10"] for r in runs)
    assert ours["NDCG@10"] > best_single  # the ensemble the reference table reports beats each member
