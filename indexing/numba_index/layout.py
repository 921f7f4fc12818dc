"""The structures block-max pruning reads: a document order, a forward index in that order, per-term block maxima.

WHY a document order: a block's upper bound is only as tight as its documents are alike. Documents are grouped
by their heaviest terms (a cheap stand-in for the graph-bisection reordering BMP and PISA use), so that the
few blocks holding a query's best documents have high bounds and the many others low ones. The internal
document numbers (and so the tie order of DESIGN.md) do not change: `doc_order[slot]` maps a forward-index
slot back to its internal number.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import scipy.sparse as sp

from indexing.numba_index.kernels import ANCHOR_SHIFT

REORDERINGS = ("top-terms", "none")


def quantize_rows(matrix: sp.csr_matrix, scale: float, bits: int, dtype) -> sp.csr_matrix:
    """`impact_index.quantize` (round(w * scale), clipped to `bits`, zeros dropped) in one pass with no float64
    copy of the corpus: at a hundred million postings the copies cost more than the rest of the build."""
    indptr = np.asarray(matrix.indptr, dtype=np.int64)
    out_indptr = np.empty_like(indptr)
    out_indices = np.empty(matrix.nnz, dtype=np.int32)
    out_data = np.empty(matrix.nnz, dtype=dtype)
    n = _quantize(indptr, matrix.indices, matrix.data, float(scale), float(2**bits - 1), out_indptr, out_indices, out_data)
    return sp.csr_matrix((out_data[:n], out_indices[:n], out_indptr), shape=matrix.shape)


@nb.njit(cache=True)
def _quantize(indptr, indices, data, scale, top, out_indptr, out_indices, out_data):
    o = 0
    out_indptr[0] = 0
    for d in range(indptr.shape[0] - 1):
        for p in range(indptr[d], indptr[d + 1]):
            v = min(max(np.rint(np.float64(data[p]) * scale), 0.0), top)
            if v > 0:
                out_indices[o] = indices[p]
                out_data[o] = v
                o += 1
        out_indptr[d + 1] = o
    return o


def document_order(matrix: sp.csr_matrix, method: str = "top-terms") -> np.ndarray:
    """Internal document numbers in forward-index order (int32)."""
    n = matrix.shape[0]
    if method == "none":
        return np.arange(n, dtype=np.int32)
    if method != "top-terms":
        raise ValueError(f"unknown document reordering {method!r}; expected one of {REORDERINGS}")
    first, second = _top_two_terms(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32), matrix.data)
    # Primary key last in np.lexsort; the document number keeps the order stable and deterministic.
    return np.lexsort((np.arange(n), second, first)).astype(np.int32)


@nb.njit(cache=True)
def _top_two_terms(indptr, indices, data):
    """Each document's two heaviest terms (ties: lower term id), -1 where missing."""
    n = indptr.shape[0] - 1
    first = np.full(n, -1, dtype=np.int32)
    second = np.full(n, -1, dtype=np.int32)
    for d in range(n):
        w1 = -1.0
        w2 = -1.0
        for p in range(indptr[d], indptr[d + 1]):
            w = np.float64(data[p])
            t = indices[p]
            if w > w1:
                w2, second[d] = w1, first[d]
                w1, first[d] = w, t
            elif w > w2:
                w2, second[d] = w, t
    return first, second


def block_layout(matrix: sp.csr_matrix, order: np.ndarray, block_size: int, impact_dtype) -> dict[str, np.ndarray]:
    """The term-major, block-grouped arrays the kernels read (see indexing/kernels.py for their meaning)."""
    if not 1 <= block_size <= 256:
        raise ValueError(f"block size must be between 1 and 256 (slots are stored in one byte), got {block_size}")
    num_docs, vocab_size = matrix.shape
    n_blocks = max(1, (num_docs + block_size - 1) // block_size)
    indptr, indices = matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32)
    df = np.zeros(vocab_size, dtype=np.int64)
    entries = np.zeros(vocab_size, dtype=np.int64)
    _count(indptr, indices, order, block_size, df, entries)
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    bm_offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(entries, out=bm_offsets[1:])
    num_postings, num_entries = int(offsets[-1]), int(bm_offsets[-1])
    arrays = {
        "offsets": offsets,
        "bm_offsets": bm_offsets,
        "bm_blocks": np.empty(num_entries, dtype=np.uint16 if n_blocks <= 2**16 else np.int32),
        "bm_max": np.zeros(num_entries, dtype=impact_dtype),
        "slots": np.empty(num_postings, dtype=np.uint8),
        "impacts": np.empty(num_postings, dtype=impact_dtype),
    }
    starts = np.empty(num_entries + 1, dtype=np.int64)  # posting start of each entry, kept only every 32nd
    _fill(indptr, indices, matrix.data, order, block_size, offsets, bm_offsets, arrays["bm_blocks"], arrays["bm_max"],
          starts, arrays["slots"], arrays["impacts"])
    arrays["bm_counts"] = (np.diff(starts) - 1).astype(np.uint8)  # 1..block_size postings, stored minus one
    arrays["bm_anchors"] = starts[:: 1 << ANCHOR_SHIFT].astype(np.uint32 if num_postings < 2**32 else np.int64)
    return arrays


@nb.njit(cache=True)
def _count(indptr, indices, order, block_size, df, entries):
    seen = np.full(df.shape[0], -1, dtype=np.int64)
    for slot in range(order.shape[0]):
        d = order[slot]
        blk = slot // block_size
        for p in range(indptr[d], indptr[d + 1]):
            t = indices[p]
            df[t] += 1
            if seen[t] != blk:
                seen[t] = blk
                entries[t] += 1


@nb.njit(cache=True)
def _fill(indptr, indices, data, order, block_size, offsets, bm_offsets, bm_blocks, bm_max, bm_starts, out_slots, out_impacts):
    vocab = offsets.shape[0] - 1
    post_fill = offsets[:-1].copy()
    entry_fill = bm_offsets[:-1].copy()
    last_block = np.full(vocab, -1, dtype=np.int64)
    for slot in range(order.shape[0]):
        d = order[slot]
        blk = slot // block_size
        for p in range(indptr[d], indptr[d + 1]):
            t = indices[p]
            v = data[p]
            if last_block[t] != blk:
                last_block[t] = blk
                e = entry_fill[t]
                entry_fill[t] += 1
                bm_blocks[e] = blk
                bm_starts[e] = post_fill[t]
            e = entry_fill[t] - 1
            if v > bm_max[e]:
                bm_max[e] = v
            q = post_fill[t]
            out_slots[q] = slot - blk * block_size
            out_impacts[q] = v
            post_fill[t] += 1
    bm_starts[bm_starts.shape[0] - 1] = offsets[vocab]
