"""Exhaustive scoring with scipy: the yardstick every index is checked against.

Slow by design (it scores every document for every query), written so that there is nothing to get wrong:
one sparse matrix product, then a stable sort by score with ties broken by document order.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from indexing.base import quantize


def brute_force_search(queries: sp.csr_matrix, docs: sp.csr_matrix, doc_ids: Sequence[str], k: int = 1000,
                       scale: float | None = None, bits: int | None = None,
                       batch: int = 256) -> list[list[tuple[str, float]]]:
    """Top-k (doc id, score) per query over documents with a positive score, ties by document order.

    Args:
        queries: [n, vocab] query vectors. docs: [num_docs, vocab] document vectors. doc_ids: their external ids.
        k: documents per query.
        scale, bits: with `scale`, both sides are quantised as the impact index does (documents clipped to `bits`),
            so the scores are the index's integers; without it, the float SPLADE scores.
        batch: queries scored per matrix product (memory: batch x num_docs floats).

    Returns:
        For each query, [(doc id, score), ...] best first.
    """
    if scale is not None:
        docs = quantize(docs, scale, bits).astype(np.float64)
        queries = quantize(queries, scale, None).astype(np.float64)
    docs_t = sp.csr_matrix(docs).T.tocsr()
    results = []
    for start in range(0, queries.shape[0], batch):
        scores = (sp.csr_matrix(queries[start : start + batch]) @ docs_t).toarray()
        for row in scores:
            positive = np.flatnonzero(row > 0)
            order = positive[np.lexsort((positive, -row[positive]))][:k]
            results.append([(doc_ids[d], float(row[d])) for d in order])
    return results
