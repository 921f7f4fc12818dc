"""FLOPS as the SPLADE papers define it: the expected number of term matches between a query and a document.

FLOPS = sum_j p_q(j) * p_d(j), with p_d(j) the fraction of documents whose vector has term j and p_q(j) the same over
the queries. An inverted index already stores the document side as per-term document frequencies, so FLOPS over a
whole corpus needs only those counts and the encoded queries.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class SparsityStats:
    """FLOPS with the sparsity it comes from, as `splade flops` writes it to flops.json."""

    flops: float
    mean_query_terms: float  # non-zeros per query vector
    mean_doc_terms: float  # non-zeros per document vector
    num_queries: int
    num_docs: int

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict.

        Returns:
            {field name: value}.
        """
        return asdict(self)


def term_presence(matrix: sp.spmatrix) -> np.ndarray:
    """Per column, how many rows have a non-zero there (explicitly stored zeros do not count).

    Args:
        matrix: rows = documents or queries, columns = vocabulary terms.

    Returns:
        int64 array of length `matrix.shape[1]`.
    """
    csr = sp.csr_matrix(matrix)
    present = csr.data != 0
    return np.bincount(csr.indices[present], minlength=csr.shape[1]).astype(np.int64)


def sparsity_stats(doc_term_doc_freq: np.ndarray, n_docs: int, queries_csr: sp.spmatrix) -> SparsityStats:
    """FLOPS and mean non-zeros from an index's document frequencies and the encoded queries.

    Args:
        doc_term_doc_freq: per vocabulary term, how many documents have it (an index stores this).
        n_docs: the number of documents.
        queries_csr: the encoded queries, rows = queries, columns = the same vocabulary.

    Returns:
        SparsityStats.

    Raises:
        ValueError: no documents or queries, vocabularies of different sizes, frequencies outside [0, n_docs].
    """
    doc_freq = np.asarray(doc_term_doc_freq, dtype=np.float64).ravel()
    n_queries = queries_csr.shape[0]
    if n_docs <= 0 or n_queries <= 0:
        raise ValueError(f"FLOPS needs documents and queries (got {n_docs} documents, {n_queries} queries)")
    if queries_csr.shape[1] != doc_freq.shape[0]:
        raise ValueError(
            f"queries have {queries_csr.shape[1]} vocabulary columns but the index has {doc_freq.shape[0]} terms: "
            "encode the queries with the model that built the index"
        )
    if doc_freq.min(initial=0) < 0 or doc_freq.max(initial=0) > n_docs:
        raise ValueError(f"document frequencies must lie in [0, {n_docs}] (the number of documents)")
    query_freq = term_presence(queries_csr).astype(np.float64)
    return SparsityStats(
        flops=float(np.dot(query_freq / n_queries, doc_freq / n_docs)),
        mean_query_terms=float(query_freq.sum() / n_queries),
        mean_doc_terms=float(doc_freq.sum() / n_docs),
        num_queries=int(n_queries),
        num_docs=int(n_docs),
    )


def sparsity_stats_from_matrices(docs_csr: sp.spmatrix, queries_csr: sp.spmatrix) -> SparsityStats:
    """The same from two encoded matrices (rows = documents, rows = queries) over one vocabulary.

    Args:
        docs_csr: the encoded documents.
        queries_csr: the encoded queries.

    Returns:
        As `sparsity_stats`.

    Raises:
        As `sparsity_stats`.
    """
    return sparsity_stats(term_presence(docs_csr), docs_csr.shape[0], queries_csr)
