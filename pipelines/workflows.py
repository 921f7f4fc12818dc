"""The stage sequences, written once: evaluate a model on a dataset, and mine hard negatives.

    encode the corpus (resumable) -> build or reuse the index -> encode the queries once -> search
        -> write the run -> score it -> FLOPS from the same query vectors and the index's document frequencies

`splade demo`, `splade train --evaluate`, `splade lucene-compare` and training's mining call these functions;
they return values and log, the commands print.
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from contracts.atomic import write_json, write_text
from contracts.encoded import iter_shards
from contracts.trec import read_qrels, write_run
from evaluation.flops import SparsityStats, sparsity_stats
from evaluation.metrics import evaluate
from indexing.base import SearchableIndex, directory_size
from indexing.encode import encode_corpus
from indexing.encoder import SpladeEncoder
from indexing.lucene_index.java import start_jvm
from pipelines.backends import build_any_index, reuse_or_build
from pipelines.datasets import Dataset
from retrieval.brute_force import brute_force_search
from retrieval.search import retrieve

logger = logging.getLogger(__name__)

__all__ = ["BackendComparison", "BruteForceCheck", "ModelEvaluation", "QueryResults", "brute_force_check",
           "compare_backends", "encode_dataset", "evaluate_model", "mine_with_bm25", "mine_with_splade",
           "search_queries"]


@dataclass(frozen=True)
class QueryResults:
    """The queries of one search: their ids, their vectors (encoded once, rows in query order) and their hits."""

    qids: list[str]
    vectors: sp.csr_matrix
    hits: list[list[tuple[str, float]]]  # per query: (doc id, score), best first

    def ranked(self) -> dict[str, list[tuple[str, float]]]:
        """{qid: [(doc id, score), ...] best first}: what `contracts.trec.write_run` writes.

        Returns:
            The hits keyed by query id, in query order.
        """
        return dict(zip(self.qids, self.hits))

    def run(self) -> dict[str, dict[str, float]]:
        """{qid: {doc id: score}} in rank order: what `evaluation.metrics.evaluate` scores.

        Returns:
            The run as nested dicts.
        """
        return {qid: dict(hits) for qid, hits in zip(self.qids, self.hits)}


@dataclass(frozen=True)
class ModelEvaluation:
    """What `evaluate_model` measured and where it left its files.

    `results` (the query vectors and hits) stays in memory for a caller that checks them further, as the demo does
    against brute force.
    """

    model: str
    dataset: str
    convention: str
    metrics: dict[str, float]
    sparsity: SparsityStats
    encoded: Path
    index: Path
    run: Path
    backend: str
    k: int
    scale: float
    bits: int
    num_docs: int
    seconds: float
    results: QueryResults = field(repr=False, compare=False)


def encode_dataset(encoder: SpladeEncoder, dataset: Dataset, encoded_dir: str | Path, shard_size: int = 2000,
                   progress: bool = True) -> dict:
    """Encode the corpus of `dataset` into `encoded_dir`, resuming a folder left incomplete.

    Args:
        encoder: the document encoder.
        dataset: the dataset whose corpus.jsonl is encoded.
        encoded_dir: the encoded folder.
        shard_size: documents per shard.
        progress: the encoding's bar and summary line.

    Returns:
        The encoded folder's manifest.

    Raises:
        ValueError: the folder holds another corpus's or another model's encoding (see `indexing.encode`).
    """
    return encode_corpus(encoder, dataset.corpus(), encoded_dir, shard_size=shard_size,
                         total=dataset.count_documents(), progress=progress, source=dataset.source())


def search_queries(encoder: SpladeEncoder, index: SearchableIndex, queries: Sequence[tuple[str, str]], k: int,
                   progress: bool = True, **search_options) -> QueryResults:
    """Encode `queries` once and search `index` with them.

    Args:
        encoder: the query encoder (the index's model).
        index: any back end's loaded index.
        queries: (qid, text) pairs.
        k: documents kept per query.
        progress: show the encoding bar.
        **search_options: passed to `index.search` (the numba index: method, alpha).

    Returns:
        The ids, vectors and hits of the queries, in their order.
    """
    qids = [qid for qid, _ in queries]
    vectors = encoder.encode_queries([text for _, text in queries], progress=progress)
    ranked = retrieve(encoder, index, queries, k=k, progress=progress, vectors=vectors, **search_options)
    return QueryResults(qids, vectors, [ranked[qid] for qid in qids])


def evaluate_model(
    encoder: SpladeEncoder,
    dataset: Dataset,
    encoded_dir: str | Path,
    index_dir: str | Path,
    run_path: str | Path,
    *,
    convention: str = "default",
    k: int = 1000,
    backend: str = "numba",
    bits: int = 8,
    tag: str = "splade",
    progress: bool = True,
    **search_options,
) -> ModelEvaluation:
    """Encode, index, retrieve and score `encoder`'s model on `dataset`; FLOPS without reading the corpus again.

    Args:
        encoder: the model, with the document and query lengths to encode at.
        dataset: a dataset with a corpus, queries and qrels.
        encoded_dir: the encoded corpus (resumed or reused when it is already there).
        index_dir: the index (reused when it was built from `encoded_dir` as it is now, else rebuilt).
        run_path: the TREC run to write.
        convention: how the run is scored ("default", "beir", "msmarco", "trec-dl"; evaluation.metrics).
        k: documents retrieved per query.
        backend: "numba" or "lucene" (pipelines.backends).
        bits: bits per impact of the index.
        tag: the run's sixth column.
        progress: progress bars.
        **search_options: passed to the index's search.

    Returns:
        The figures and paths (ModelEvaluation); the query vectors and hits in `.results`.

    Raises:
        ValueError, FileNotFoundError: bad dataset files, an encoded or index folder that belongs to something
            else, or a run that cannot be scored.
    """
    started = time.perf_counter()
    encoded_dir, index_dir, run_path = Path(encoded_dir), Path(index_dir), Path(run_path)
    qrels = read_qrels(dataset.qrels_path)  # read first: a dataset without judgements fails before any encoding
    queries = dataset.queries()
    encode_dataset(encoder, dataset, encoded_dir, progress=progress)
    index = reuse_or_build(encoded_dir, index_dir, backend, bits, progress=progress)
    results = search_queries(encoder, index, queries, k, progress=progress, **search_options)
    write_run(run_path, results.ranked(), tag=tag)
    metrics = evaluate(qrels, results.run(), convention, source=str(run_path)).means
    # FLOPS needs only the document frequencies, which the index keeps: the encoded corpus is not read again.
    sparsity = sparsity_stats(index.doc_freqs, index.num_docs, results.vectors)
    seconds = time.perf_counter() - started
    logger.info("%s on %s: %s; FLOPS %.4f in %.1f s", encoder.model_path, dataset.name,
                ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()), sparsity.flops, seconds)
    return ModelEvaluation(
        model=str(encoder.model_path), dataset=dataset.name, convention=convention, metrics=metrics,
        sparsity=sparsity, encoded=encoded_dir, index=index_dir, run=run_path, backend=backend, k=k,
        scale=index.scale, bits=int(index.manifest["bits"]), num_docs=index.num_docs, seconds=seconds,
        results=results,
    )


@dataclass(frozen=True)
class BruteForceCheck:
    """The queries of an evaluation scored exhaustively: the same integers as the index, and the float weights."""

    metrics: dict[str, dict[str, float]]  # "brute force, same integers" / "brute force, float weights" -> figures
    identical: bool  # the index's top-k equals brute force on the same integers, for every query


def brute_force_check(result: ModelEvaluation, qrels_path: str | Path) -> BruteForceCheck:
    """Score `result`'s query vectors against its whole encoded corpus with scipy, quantised and not.

    Reads the encoded corpus one shard at a time (never whole: an encoded MS MARCO is 9+ GiB of floats); the
    scoring itself is exhaustive, so a check for collections of demo size rather than for MS MARCO.

    Args:
        result: what `evaluate_model` returned (its query vectors, encoded folder, scale and bits).
        qrels_path: the qrels the exhaustive runs are scored with.

    Returns:
        The figures of both exhaustive runs (the evaluation's convention) and whether the index matched exactly.
    """
    queries = result.results
    exact, floats = _brute_force_by_shard(queries.vectors, result)
    qrels = read_qrels(qrels_path)
    metrics = {name: evaluate(qrels, {q: dict(h) for q, h in zip(queries.qids, hits)}, result.convention,
                              warn=False).means
               for name, hits in (("brute force, same integers", exact), ("brute force, float weights", floats))}
    identical = len(exact) == len(queries.hits) and all(a == list(b) for a, b in zip(queries.hits, exact))
    return BruteForceCheck(metrics, identical)


def _brute_force_by_shard(vectors, result: ModelEvaluation) -> tuple[list, list]:
    """brute_force_search on the same integers and on the floats, shard by shard: each shard's top-k merged into
    the best k so far. Shards come in corpus order and Python's sort is stable, so ties stay in document order,
    as over the whole corpus at once."""
    exact: list[list] = [[] for _ in range(vectors.shape[0])]
    floats: list[list] = [[] for _ in range(vectors.shape[0])]
    for ids, docs in iter_shards(result.encoded):
        for merged, hits in ((exact, brute_force_search(vectors, docs, ids, k=result.k, scale=result.scale,
                                                        bits=result.bits)),
                             (floats, brute_force_search(vectors, docs, ids, k=result.k))):
            for i, found in enumerate(hits):
                merged[i] = sorted(merged[i] + found, key=lambda hit: -hit[1])[: result.k]
    return exact, floats


@dataclass(frozen=True)
class BackendComparison:
    """What `compare_backends` measured (`figures`, also in figures.json) and the first difference per depth."""

    figures: dict
    differences: dict[int, str]  # k -> "query Q differs: ..." for each depth where some query differs

    @property
    def identical(self) -> bool:
        """Every query got the same top-k from both back ends at every depth."""
        return not self.differences


def compare_backends(encoder: SpladeEncoder, queries: Sequence[tuple[str, str]], encoded_dir: str | Path,
                     output: str | Path, ks: Sequence[int] = (1000, 10), bits: int = 8, threads: int = 2,
                     labels: Mapping[str, str] | None = None) -> BackendComparison:
    """Build the numba and the Lucene index of one encoded corpus, compare their runs, time both.

    Index size is the whole folder; build time is the builder's wall time; latency is one query at a time on one
    thread, after a warm-up (numba compiles, the JVM loads classes). Runs go to `output/runs/`, the figures to
    `output/figures.json`.

    Args:
        encoder: the query encoder (the corpus's model).
        queries: (qid, text) pairs, encoded once.
        encoded_dir: a complete encoded folder.
        output: where `numba/`, `lucene/`, `runs/` and figures.json go (both indexes are rebuilt).
        ks: the depths to compare and time.
        bits: bits per impact of both indexes.
        threads: Lucene indexing and batch-search threads.
        labels: recorded first in the figures (the dataset and model names as the user gave them).

    Returns:
        The figures and the differences found.
    """
    output = Path(output)
    figures: dict = {**(labels or {}), "bits": bits, "threads": threads}
    indexes = {}
    for name, options in (("numba", {}), ("lucene", {"threads": threads})):
        started = time.perf_counter()
        indexes[name] = build_any_index(encoded_dir, output / name, name, bits=bits, overwrite=True, **options)
        figures[name] = {"build_s": round(time.perf_counter() - started, 2),
                         "size_mib": round(directory_size(indexes[name].path) / 2**20, 2)}
    figures["lucene"]["lucene_files_mib"] = round(indexes["lucene"].size_bytes() / 2**20, 2)

    numba, lucene = indexes["numba"], indexes["lucene"]
    qids = [qid for qid, _ in queries]
    lucene.check_vocabulary(encoder.vocab_hash, encoder.vocab_size)
    vectors = encoder.encode_queries([text for _, text in queries])
    differences = {}
    for k in ks:
        lucene_hits = lucene.search(vectors, k=k, threads=threads)
        numba_hits = numba.search(vectors, k=k)
        same = sum(a == b for a, b in zip(lucene_hits, numba_hits))
        figures[f"parity@{k}"] = {"queries": len(qids), "identical": same}
        if same != len(qids):
            row = next(i for i, (a, b) in enumerate(zip(lucene_hits, numba_hits)) if a != b)
            differences[k] = (f"query {qids[row]} differs: lucene {lucene_hits[row][:5]} "
                              f"numba {numba_hits[row][:5]}")
        write_run(output / "runs" / f"lucene-k{k}.trec", dict(zip(qids, lucene_hits)), tag="lucene")
        write_run(output / "runs" / f"numba-k{k}.trec", dict(zip(qids, numba_hits)), tag="numba")
        for name, index, options in (("numba", numba, {}), ("lucene", lucene, {"threads": 1})):
            index.search(vectors[:5], k=k, **options)  # warm up: numba compiles, the JVM loads classes
            ms = []
            for row in range(vectors.shape[0]):
                started = time.perf_counter()
                index.search(vectors[row], k=k, **options)
                ms.append(1000 * (time.perf_counter() - started))
            figures[name][f"latency_ms@{k}"] = {"median": round(float(np.median(ms)), 3),
                                                "p99": round(float(np.percentile(ms, 99)), 3)}
    write_json(output / "figures.json", figures)
    return BackendComparison(figures, differences)


# ---- mining hard negatives ------------------------------------------------------------------------------------


def mine_with_splade(
    encoder: SpladeEncoder,
    dataset: Dataset,
    queries: Sequence[tuple[str, str]],
    work_dir: str | Path,
    depth: int = 50,
) -> dict[str, list[str]]:
    """Hard-negative candidates from this project's index: the top `depth` documents of each query.

    The encoded corpus (`work_dir/encoded`) and the index (`work_dir/index`) are kept and reused: by a training
    run that resumes, by a SPLADE teacher that is the miner (its document vectors), and by `train --evaluate`
    when the miner is the base model (the same folders as `evaluate_model` would make).

    Args:
        encoder: the mining model, with the document length training uses.
        dataset: the dataset whose corpus is searched.
        queries: (qid, text) pairs, the training queries.
        work_dir: the folder that keeps the encoded corpus and the index.
        depth: documents retrieved per query.

    Returns:
        {qid: doc ids best first}; positives included (the caller filters them).
    """
    work_dir = Path(work_dir)
    encode_dataset(encoder, dataset, work_dir / "encoded")
    index = reuse_or_build(work_dir / "encoded", work_dir / "index")
    results = search_queries(encoder, index, list(queries), depth)
    return {qid: [doc_id for doc_id, _ in hits] for qid, hits in zip(results.qids, results.hits)}


def mine_with_bm25(
    docs: Iterable[tuple[str, str]],
    queries: Sequence[tuple[str, str]],
    work_dir: str | Path,
    depth: int = 50,
    k1: float = 0.9,
    b: float = 0.4,
) -> dict[str, list[str]]:
    """Hard-negative candidates by BM25 through Pyserini (Anserini's defaults k1 0.9, b 0.4).

    The Lucene index is built once in `work_dir/bm25-index` and reused; its completion marker is written last, so
    an interrupted build starts again.

    Args:
        docs: the corpus, (doc id, text) in order.
        queries: (qid, text) of the queries to mine for.
        work_dir: where the BM25 index is built and kept.
        depth: candidates per query.
        k1, b: BM25's parameters.

    Returns:
        {qid: doc ids best first}; positives included.
    """
    start_jvm()
    # pyserini starts with the JVM: imported only here, after start_jvm, and only for BM25 mining
    from pyserini.index.lucene import LuceneIndexer
    from pyserini.search.lucene import LuceneSearcher

    index_dir = Path(work_dir) / "bm25-index"
    done = Path(work_dir) / "bm25-index.complete"
    if not done.exists():
        if index_dir.exists():
            shutil.rmtree(index_dir)
        index_dir.mkdir(parents=True)
        indexer = LuceneIndexer(str(index_dir), threads=1)
        for doc_id, text in docs:
            indexer.add_doc_dict({"id": doc_id, "contents": text})
        indexer.close()
        write_text(done, "ok\n")
    searcher = LuceneSearcher(str(index_dir))
    searcher.set_bm25(k1, b)
    hits = searcher.batch_search([text for _, text in queries], [qid for qid, _ in queries], k=depth, threads=1)
    return {qid: [h.docid for h in hits.get(qid, [])] for qid, _ in queries}
