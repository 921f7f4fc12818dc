"""The brute-force reference that every test checks an index's results against.

WHY this is the reference: the scoring is `retrieval.brute_force.brute_force_search`, the exhaustive scorer
(one scipy product over every document, then a stable sort by score with ties by document order: nothing to get
wrong, and no code shared with the index kernels or Lucene). The quantisation is written out again here from
DESIGN.md's rule (round(w * scale), documents clipped to what `bits` hold, zeros dropped) in plain numpy rather
than taken from `indexing.base.quantize`, so that a bug in the project's quantisation cannot hide by being on both
sides of a comparison.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from retrieval.brute_force import brute_force_search


def quantized(matrix: sp.spmatrix, scale: float, bits: int | None = None) -> sp.csr_matrix:
    """DESIGN.md's quantisation, independently of the project's code.

    Args:
        matrix: float weights, one row per document or query.
        scale: the index's quantisation scale.
        bits: documents are clipped to 2**bits - 1; None for queries (never stored, never clipped).

    Returns:
        A CSR matrix of integer values (as float64, exact), explicit zeros removed.
    """
    q = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    q.data = np.rint(q.data * scale)
    if bits is not None:
        q.data = np.minimum(q.data, 2**bits - 1)
    q.eliminate_zeros()
    return q


def ranked(queries: sp.spmatrix, docs: sp.spmatrix, doc_ids: Sequence[str], k: int, scale: float | None = None,
           bits: int | None = None) -> list[list[tuple[str, float]]]:
    """The exact top-k per query, as every back end's `search` returns it.

    Args:
        queries, docs: float vectors (one row per query / document).
        doc_ids: the documents' external ids, in index order.
        k: results per query.
        scale, bits: with `scale`, both sides quantised as an index of that scale and bits holds them (`quantized`),
            so the scores are the index's integers; without it, the float scores.

    Returns:
        For each query, [(doc id, score), ...] best first, positive scores only, ties by document order.
    """
    if scale is not None:
        queries, docs = quantized(queries, scale), quantized(docs, scale, bits)
    return brute_force_search(sp.csr_matrix(queries, dtype=np.float64), sp.csr_matrix(docs, dtype=np.float64),
                              doc_ids, k=k)


def top_k(queries: sp.spmatrix, docs: sp.spmatrix, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The exact top-k per query as internal document numbers, for `search_arrays(..., quantized=True)`.

    Args:
        queries, docs: vectors whose products are the scores (already quantised for an integer comparison).
        k: results per query.

    Returns:
        For each query, (document numbers, scores), best first, positive scores only, ties by document order.
    """
    out = []
    for hits in ranked(queries, docs, range(docs.shape[0]), k):
        out.append((np.array([d for d, _ in hits], dtype=np.int64), np.array([s for _, s in hits])))
    return out
