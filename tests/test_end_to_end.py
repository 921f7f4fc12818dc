"""Every stage on a real collection (Cranfield), checked against an independent brute-force computation."""
import json
import shutil

import pytest

from contracts.encoded import read_encoded
from contracts.trec import read_qrels, read_run
from evaluation.metrics import evaluate
from indexing.numba_index.index import ImpactIndex
from retrieval.search import retrieve
from tests.reference import ranked


def test_index_search_equals_brute_force_and_metrics_agree_with_trec_eval(
        encoder, cranfield, cranfield_encoded, cranfield_index, cranfield_queries):
    import pytrec_eval

    queries, vectors = cranfield_queries
    run = retrieve(encoder, cranfield_index, queries, k=100, vectors=vectors, progress=False)
    doc_ids, docs = read_encoded(cranfield_encoded)
    expected = ranked(vectors, docs, doc_ids, 100, scale=cranfield_index.scale, bits=cranfield_index.manifest["bits"])
    for i, (qid, _) in enumerate(queries):
        assert run[qid] == expected[i], f"query {qid}"

    qrels = read_qrels(cranfield.qrels_path)
    ours = evaluate(qrels, {q: dict(h) for q, h in run.items()}, "default").means
    # trec_eval on the brute-force run; queries without hits still count (as trec_eval -c does)
    trec_run = {qid: {d: s for d, s in expected[i]} for i, (qid, _) in enumerate(queries)}
    judged = {q: {d: r for d, r in docs_.items()} for q, docs_ in qrels.items()}
    per_query = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100"}).evaluate(trec_run)
    n = len(judged)
    ndcg = sum(v["ndcg_cut_10"] for v in per_query.values()) / n
    recall = sum(v["recall_100"] for v in per_query.values()) / n
    assert ours["NDCG@10"] == pytest.approx(ndcg, abs=1e-9)
    assert ours["R@100"] == pytest.approx(recall, abs=1e-9)
    assert 0.25 < ours["NDCG@10"] < 0.6  # splade-tiny on Cranfield; BM25 is 0.35


def test_index_for_another_vocabulary_is_refused(cranfield_index):
    with pytest.raises(ValueError, match="built for vocabulary .* encode queries with the index's model"):
        cranfield_index.check_vocabulary("0123456789abcdef", 30522)


def test_index_of_another_format_version_is_refused(tmp_path, cranfield_index):
    copy = tmp_path / "index"
    shutil.copytree(cranfield_index.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version 0"):
        ImpactIndex.load(copy)
    with pytest.raises(FileNotFoundError, match="no index manifest"):
        ImpactIndex.load(tmp_path)


def test_command_line_runs_every_stage(tmp_path, cranfield, splade_tiny_path, capsys):
    """encode -> index -> retrieve -> evaluate through `splade`, on a slice of Cranfield."""
    from pipelines.cli import main

    data = tmp_path / "data"
    data.mkdir()
    lines = cranfield.corpus_path.read_text().splitlines()[:120]
    (data / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (data / "queries.tsv").write_text("\n".join(cranfield.queries_path.read_text().splitlines()[:5]) + "\n")
    shutil.copy(cranfield.qrels_path, data / "qrels.txt")
    model = str(splade_tiny_path)
    assert main(["encode", "--model", model, "--dataset", str(data), "--output", str(tmp_path / "enc"),
                 "--doc-max-length", "64"]) == 0
    assert main(["index", "--encoded", str(tmp_path / "enc"), "--output", str(tmp_path / "idx")]) == 0
    assert main(["index", "--encoded", str(tmp_path / "enc"), "--output", str(tmp_path / "idx")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["retrieve", "--dataset", str(data), "--index", str(tmp_path / "idx"), "--output",
                 str(tmp_path / "run.trec"), "--k", "10"]) == 0
    run = read_run(tmp_path / "run.trec")
    assert sorted(run) == ["1", "2", "3", "4", "5"]
    assert all(0 < len(docs) <= 10 for docs in run.values())
    assert main(["retrieve", "--dataset", str(data), "--index", str(tmp_path / "idx"), "--output",
                 str(tmp_path / "run-exhaustive.trec"), "--k", "10", "--method", "exhaustive"]) == 0
    assert (tmp_path / "run-exhaustive.trec").read_text() == (tmp_path / "run.trec").read_text()
    assert main(["retrieve", "--dataset", "no-such-dataset", "--index", str(tmp_path / "idx"), "--output",
                 str(tmp_path / "x.trec")]) == 2
    assert "unknown dataset 'no-such-dataset'" in capsys.readouterr().err
