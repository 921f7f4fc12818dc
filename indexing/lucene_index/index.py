"""Searching the Lucene impact index with pre-encoded queries, with the numba index's exact results.

Same surface as `indexing.numba_index.ImpactIndex` (`indexing.base.SearchableIndex`: load, check_vocabulary,
search, manifest, num_docs, doc_freqs, vocab, size_bytes), so `retrieval.search.retrieve` takes either back end.

Queries are quantised with the index's scale (no bit limit) and handed to Anserini's SimpleImpactSearcher as
{term: weight} maps, with every term kept: this is Pyserini's `min_idf=-1` (its default, 0, silently drops terms
that occur in every document). Scores are then the same integer dot products as the numba index.

Ties. Anserini breaks score ties by the external id string (and nudges tied scores apart by 1e-6 steps, which
rounding undoes), the numba index by position in the encoded corpus
(DESIGN.md). We ask for k + 1 hits: when hit k+1 scores lower than hit k, the first k are exactly the documents
scoring at least the k-th score and only their order needs fixing; when they tie, the tied group may continue
past the cut, so that query is searched again with twice the depth until the group ends.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from indexing.base import QuantizedIndex, directory_size, open_index_folder, read_doc_ids, read_vocab_file
from indexing.lucene_index.export import lucene_terms
from indexing.lucene_index.java import start_jvm

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "FORMAT_VERSION", "LUCENE_DIR", "LuceneImpactIndex"]

FORMAT = "splade-lucene-impact-index"
FORMAT_VERSION = 1
LUCENE_DIR = "lucene"

FLOAT_EXACT = 2**24  # Lucene scores are float32: integer sums are exact below this


class LuceneImpactIndex(QuantizedIndex):
    """A Lucene impact index folder built by `indexing.lucene_index.build_lucene_index`, opened for search.

    Implements `indexing.base.SearchableIndex`, so `retrieval.retrieve()` takes it. Open one with `load`.

    Args:
        path: the index folder.
        manifest: its manifest (checked by `load`).
        doc_ids: the external ids in Lucene's internal order.
        vocab: the model's tokens in id order (their Lucene spelling is `lucene_terms(vocab)`).

    Raises:
        ValueError: Lucene cannot open the `lucene/` folder (damaged or incomplete).
    """

    kind = "Lucene index"

    def __init__(self, path: Path, manifest: dict, doc_ids: list[str], vocab: list[str]):
        start_jvm()
        from jnius import JavaException, autoclass  # deferred: jnius starts a JVM on import (start_jvm first)

        self.path = path
        self.manifest = manifest
        self.doc_ids = doc_ids
        self._vocab = vocab
        self.terms = lucene_terms(vocab)
        self._position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        try:
            self._searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(path / LUCENE_DIR))
        except JavaException as e:  # a damaged or partly copied folder: Lucene's own words, not a Java trace
            cause = str(e).splitlines()[0].removeprefix("JVM exception occurred: ")
            raise ValueError(f"{path / LUCENE_DIR}: Lucene cannot open this index ({cause}); it is damaged or "
                             f"incomplete: rebuild it with `splade index --backend lucene --overwrite` or copy it "
                             f"again") from None
        self._HashMap = autoclass("java.util.HashMap")
        self._ArrayList = autoclass("java.util.ArrayList")
        self._Integer = autoclass("java.lang.Integer")  # Anserini reads impact-query weights as Integer
        self._doc_freqs: np.ndarray | None = None
        self._warned_precision = False

    @classmethod
    def load(cls, path: str | Path) -> LuceneImpactIndex:
        """Opens a Lucene impact index folder (starting the JVM if needed).

        Args:
            path: the index folder written by `build_lucene_index`.

        Returns:
            The opened index.

        Raises:
            FileNotFoundError: no folder, manifest, `lucene/` folder, doc_ids.txt or vocab.json there.
            ValueError: `path` is a file, the manifest is of another format or version, or doc_ids.txt / vocab.json
                do not match it.
        """
        path, manifest = open_index_folder(path, FORMAT, FORMAT_VERSION, "Lucene impact index",
                                           "rebuild it with `splade index --backend lucene`")
        if not (path / LUCENE_DIR).is_dir():
            raise FileNotFoundError(f"{path / LUCENE_DIR}: the Lucene index folder is missing (a partial copy?)")
        doc_ids = read_doc_ids(path, int(manifest["num_docs"]))
        vocab = read_vocab_file(path, int(manifest["vocab_size"]))
        return cls(path, manifest, doc_ids, vocab)

    def vocab(self) -> list[str]:
        """The model's tokens in id order.

        Returns:
            A copy of the tokens (vocab.json, read once when the index was opened).
        """
        return list(self._vocab)

    def size_bytes(self) -> int:
        """Bytes of the Lucene index itself (what a Lucene-based engine would serve).

        Returns:
            The size of the `lucene/` folder in bytes.
        """
        return directory_size(self.path / LUCENE_DIR)

    @property
    def doc_freqs(self) -> np.ndarray:
        """Number of documents holding each vocabulary term (for FLOPS), read from Lucene's term dictionary."""
        if self._doc_freqs is None:
            from pyserini.index.lucene import LuceneIndexReader  # deferred: pyserini needs the JVM started first

            term_ids = {term: i for i, term in enumerate(self.terms)}
            freqs = np.zeros(len(self.terms), dtype=np.int64)
            for term in LuceneIndexReader(str(self.path / LUCENE_DIR)).terms():
                freqs[term_ids[term.term]] = term.df
            self._doc_freqs = freqs
        return self._doc_freqs

    def search(self, queries: sp.csr_matrix, k: int = 1000, quantized: bool = False,
               threads: int | None = None) -> list[list[tuple[str, float]]]:
        """Exact top-k for each query row, best first, ties by index order (the numba index's results).

        Args:
            queries: float query vectors over the index's vocabulary (or integer weights with quantized=True).
            k: documents per query.
            quantized: the queries already carry the index's integer weights.
            threads: Java threads of Anserini's batch search (default: the cores, at most 8).

        Returns:
            For each query, [(external doc id, integer score as float), ...].

        Raises:
            ValueError: k < 1, or queries of another vocabulary size.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = sp.csr_matrix(queries) if quantized else self.quantize_queries(queries)
        threads = max(1, threads or min(8, os.cpu_count() or 1))
        maps = [self._query_map(q, row) for row in range(q.shape[0])]
        results: list[list[tuple[str, float]] | None] = [None] * len(maps)
        pending, depth = list(range(len(maps))), k + 1
        while pending:
            hits = self._batch(maps, pending, depth, threads)
            unresolved = []
            for row in pending:
                ranked = hits[row]
                if len(ranked) < depth or ranked[k][1] < ranked[k - 1][1]:
                    results[row] = self._in_index_order(ranked)[:k]
                else:
                    unresolved.append(row)  # the tie at the cut goes on past what we fetched
            pending, depth = unresolved, min(2 * depth, self.num_docs + 1)
        return results  # type: ignore[return-value]

    def _query_map(self, q: sp.csr_matrix, row: int):
        a, b = q.indptr[row], q.indptr[row + 1]
        jmap = self._HashMap()
        for t, w in zip(q.indices[a:b].tolist(), q.data[a:b].tolist()):
            if w > 0:
                jmap.put(self.terms[t], self._Integer(int(w)))
        return jmap

    def _batch(self, maps, rows: list[int], depth: int, threads: int) -> dict[int, list[tuple[str, float]]]:
        """Anserini's batch_search over Java threads; {row: [(doc id, score)] in Anserini's order}."""
        jqueries, jqids = self._ArrayList(), self._ArrayList()
        for row in rows:
            jqueries.add(maps[row])
            jqids.add(str(row))
        found = self._searcher.batch_search(jqueries, jqids, int(depth), int(threads))
        out = {}
        for row in rows:
            # Anserini nudges tied scores apart by multiples of 1e-6 (ScoreTiesAdjusterReranker); the true scores
            # are integers, so rounding recovers them exactly (below 2^24, where float32 still holds every integer).
            ranked = [(hit.docid, float(round(hit.score))) for hit in found.get(str(row))]
            if ranked and ranked[0][1] >= FLOAT_EXACT and not self._warned_precision:
                logger.warning("%s: scores above 2^24 lose integer precision in Lucene (float32); use 8 bits or a "
                               "smaller scale for results identical to the numba index", self.path)
                self._warned_precision = True
            out[row] = ranked
        return out

    def _in_index_order(self, ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
        position = self._position
        return sorted(ranked, key=lambda hit: (-hit[1], position[hit[0]]))
