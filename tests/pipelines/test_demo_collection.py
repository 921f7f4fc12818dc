"""The embedded demo collection (pipelines/demo_collection): well-formed, judged, and neither broken nor trivial.

`make demo` reports figures on this collection, so a typo in a qrels line or a query that no passage answers would
silently change them. The quality check ranks with a plain TF-IDF cosine: exact term matching must find much of
what the judgements call relevant (else the judgements are wrong), but not nearly all of it (else the queries
share so many words with their answers that the collection cannot separate a good model from a bag of words).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from contracts.datasets import read_corpus, read_queries
from contracts.trec import read_qrels
from pipelines.datasets import DEMO, resolve_dataset

FOLDER = Path(__file__).resolve().parents[2] / "pipelines" / "demo_collection"


def _raw_corpus() -> list[dict]:
    docs = []
    with open(FOLDER / "corpus.jsonl", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            assert line.strip(), f"corpus.jsonl line {lineno} is blank"
            doc = json.loads(line)  # raises with the position if a line is not JSON
            assert set(doc) == {"id", "title", "text"}, f"corpus.jsonl line {lineno}: keys {sorted(doc)}"
            docs.append(doc)
    return docs


def _raw_queries() -> list[tuple[str, str]]:
    queries = []
    with open(FOLDER / "queries.tsv", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            assert len(fields) == 2, f"queries.tsv line {lineno}: expected qid<TAB>text, got {len(fields)} fields"
            queries.append((fields[0], fields[1]))
    return queries


def _raw_qrels() -> list[tuple[str, str, int]]:
    rows = []
    with open(FOLDER / "qrels.txt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            assert len(fields) == 4 and fields[1] == "0", f"qrels.txt line {lineno}: expected `qid 0 docid rel`"
            rows.append((fields[0], fields[2], int(fields[3])))
    return rows


def test_the_resolver_points_at_this_folder():
    assert DEMO.resolve() == FOLDER
    assert resolve_dataset("demo").folder.resolve() == FOLDER
    assert (FOLDER / "SOURCE.md").read_text(encoding="utf-8").strip()


def test_corpus_is_well_formed():
    docs = _raw_corpus()
    ids = [d["id"] for d in docs]
    assert 100 <= len(docs) <= 150
    assert len(set(ids)) == len(ids), "duplicate document ids"
    for doc in docs:
        assert re.fullmatch(r"d\d{3}", doc["id"]), doc["id"]
        assert doc["title"].strip(), f"{doc['id']}: empty title"
        words = len(doc["text"].split())
        assert 40 <= words <= 120, f"{doc['id']}: {words} words, expected 40-120"
    assert len(set(d["text"] for d in docs)) == len(docs), "two passages have the same text"
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 150_000
    # The project's own reader accepts every line and sees the same documents.
    assert [d["id"] for d in read_corpus(FOLDER / "corpus.jsonl")] == ids


def test_queries_are_unique_and_non_empty():
    queries = _raw_queries()
    assert 25 <= len(queries) <= 40
    qids = [q for q, _ in queries]
    assert len(set(qids)) == len(qids), "duplicate query ids"
    assert len(set(t.lower() for _, t in queries)) == len(queries), "duplicate query texts"
    assert all(t.strip() and len(t.split()) >= 3 for _, t in queries)
    assert read_queries(FOLDER / "queries.tsv") == queries


def test_qrels_refer_to_existing_documents_and_queries():
    doc_ids = {d["id"] for d in _raw_corpus()}
    qids = {q for q, _ in _raw_queries()}
    rows = _raw_qrels()
    assert len({(q, d) for q, d, _ in rows}) == len(rows), "a (qid, docid) pair is judged twice"
    for qid, docid, rel in rows:
        assert qid in qids, f"qrels names unknown query {qid}"
        assert docid in doc_ids, f"qrels names unknown document {docid}"
        assert rel in (0, 1, 2), f"{qid} {docid}: relevance {rel} outside 0-2"
    answered = {q for q, _, rel in rows if rel >= 2}
    assert answered == qids, f"queries without a relevance-2 passage: {sorted(qids - answered)}"
    assert read_qrels(FOLDER / "qrels.txt") == _qrels_dict()


def _qrels_dict() -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for qid, docid, rel in _raw_qrels():
        qrels.setdefault(qid, {})[docid] = rel
    return qrels


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def tfidf_cosine_run(docs: list[dict], queries: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Exhaustive TF-IDF cosine ranking (sublinear tf, idf = ln(N/df)).

    Hand-written on purpose: the point is an independent, dependency-free bag-of-words yardstick, not a
    competitor to the project's retrievers or to BM25 (bm25s is not a dependency).
    """
    doc_counts = [Counter(_tokens(f"{d['title']} {d['text']}")) for d in docs]
    vocab = {t: i for i, t in enumerate(sorted(set().union(*doc_counts)))}
    df = np.zeros(len(vocab))
    for counts in doc_counts:
        df[[vocab[t] for t in counts]] += 1
    idf = np.log(len(docs) / df)

    def vector(counts: Counter) -> np.ndarray:
        v = np.zeros(len(vocab))
        for term, n in counts.items():
            if term in vocab:
                v[vocab[term]] = (1 + math.log(n)) * idf[vocab[term]]
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    matrix = np.stack([vector(c) for c in doc_counts])
    run = {}
    for qid, text in queries:
        scores = matrix @ vector(Counter(_tokens(text)))
        top = np.argsort(-scores, kind="stable")[:100]
        run[qid] = {docs[i]["id"]: float(scores[i]) for i in top if scores[i] > 0}
    return run


def test_tfidf_baseline_is_neither_broken_nor_trivial():
    from ranx import Qrels, Run, evaluate

    run = tfidf_cosine_run(_raw_corpus(), _raw_queries())
    ndcg = evaluate(Qrels(_qrels_dict()), Run(run), "ndcg@10")
    print(f"TF-IDF cosine nDCG@10 on the demo collection: {ndcg:.4f}")
    assert 0.3 < ndcg < 0.95, f"TF-IDF nDCG@10 = {ndcg:.4f}, expected between 0.3 and 0.95"


def test_tfidf_baseline_misses_some_answers_at_rank_one():
    """Vocabulary mismatch exists: for at least a few queries the top TF-IDF hit is not an answer (rel 2)."""
    run = tfidf_cosine_run(_raw_corpus(), _raw_queries())
    qrels = _qrels_dict()
    misses = [q for q, ranked in run.items() if not ranked or qrels[q].get(next(iter(ranked)), 0) < 2]
    assert len(misses) >= 3, f"only {len(misses)} queries miss their answer at rank 1: the collection is too easy"
