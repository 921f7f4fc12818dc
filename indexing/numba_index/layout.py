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
    n = _quantize(indptr, matrix.indices, matrix.data, float(scale), float(2**bits - 1), out_indptr, out_indices,
                  out_data)
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
    return order_from_keys(*top_two_terms(matrix))


def top_two_terms(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """The "top-terms" sort key of each row: its heaviest and second heaviest term (ties: lower term id), -1 where
    missing. Rows are independent, so a corpus can be keyed shard by shard."""
    return _top_two_terms(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32), matrix.data)


def order_from_keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Internal document numbers sorted by (first, second, number): the "top-terms" order (int32)."""
    # Primary key last in np.lexsort; the document number keeps the order stable and deterministic.
    return np.lexsort((np.arange(first.shape[0]), second, first)).astype(np.int32)


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


def check_block_size(block_size: int) -> None:
    if not 1 <= block_size <= 256:
        raise ValueError(f"block size must be between 1 and 256 (slots are stored in one byte), got {block_size}")


def block_dtype(num_docs: int, block_size: int):
    """bm_blocks' dtype: two bytes while the block numbers fit."""
    return np.uint16 if max(1, (num_docs + block_size - 1) // block_size) <= 2**16 else np.int32


def anchor_dtype(num_postings: int):
    """bm_anchors' dtype: four bytes while the posting numbers fit."""
    return np.uint32 if num_postings < 2**32 else np.int64


def block_layout(matrix: sp.csr_matrix, order: np.ndarray, block_size: int, impact_dtype) -> dict[str, np.ndarray]:
    """The term-major, block-grouped arrays the kernels read (see indexing/kernels.py for their meaning)."""
    check_block_size(block_size)
    num_docs, vocab_size = matrix.shape
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
        "bm_blocks": np.empty(num_entries, dtype=block_dtype(num_docs, block_size)),
        "bm_max": np.zeros(num_entries, dtype=impact_dtype),
        "slots": np.empty(num_postings, dtype=np.uint8),
        "impacts": np.empty(num_postings, dtype=impact_dtype),
    }
    starts = np.empty(num_entries + 1, dtype=np.int64)  # posting start of each entry, kept only every 32nd
    _fill(indptr, indices, matrix.data, order, block_size, offsets, bm_offsets, arrays["bm_blocks"], arrays["bm_max"],
          starts, arrays["slots"], arrays["impacts"])
    arrays["bm_counts"] = (np.diff(starts) - 1).astype(np.uint8)  # 1..block_size postings, stored minus one
    arrays["bm_anchors"] = starts[:: 1 << ANCHOR_SHIFT].astype(anchor_dtype(num_postings))
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
def _fill(indptr, indices, data, order, block_size, offsets, bm_offsets, bm_blocks, bm_max, bm_starts, out_slots,
          out_impacts):
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


# ------------------------------------------------------------------------------------------ the streaming build
# The same arrays as block_layout, written by build.build_index without the corpus in memory: the quantised
# postings are first spilled into "buckets" of consecutive slots (pass 3), then each bucket is read back and
# walked in slot order (pass 4), with the per-term fill pointers carried from one bucket to the next. Walking the
# slots in the same order as _count / _fill, with the same loop bodies, is what makes the arrays identical.


def bucket_rows(matrix: sp.csr_matrix, doc_slots: np.ndarray, bucket_slots: int, n_buckets: int, term_dtype):
    """One shard's quantised rows regrouped by bucket (slot // bucket_slots), for appending to the bucket files.

    Returns (slots_and_lengths int32 [rows, 2], terms, impacts, row_bounds [n_buckets + 1], posting_bounds
    [n_buckets + 1]): the rows of bucket b are row_bounds[b]:row_bounds[b + 1], their postings likewise.
    """
    indptr = np.asarray(matrix.indptr, dtype=np.int64)
    bucket = (doc_slots // bucket_slots).astype(np.int64)
    lengths = np.diff(indptr)
    row_bounds = np.zeros(n_buckets + 1, dtype=np.int64)
    np.cumsum(np.bincount(bucket, minlength=n_buckets), out=row_bounds[1:])
    posting_bounds = np.zeros(n_buckets + 1, dtype=np.int64)
    np.cumsum(np.bincount(bucket, weights=lengths, minlength=n_buckets).astype(np.int64), out=posting_bounds[1:])
    rows = np.empty((matrix.shape[0], 2), dtype=np.int32)
    terms = np.empty(matrix.nnz, dtype=term_dtype)
    impacts = np.empty(matrix.nnz, dtype=matrix.data.dtype)
    _bucket_rows(indptr, matrix.indices, matrix.data, doc_slots, bucket, row_bounds, posting_bounds, rows, terms,
                 impacts)
    return rows, terms, impacts, row_bounds, posting_bounds


@nb.njit(cache=True)
def _bucket_rows(indptr, indices, data, doc_slots, bucket, row_bounds, posting_bounds, rows, terms, impacts):
    row_fill = row_bounds[:-1].copy()
    post_fill = posting_bounds[:-1].copy()
    for d in range(indptr.shape[0] - 1):
        b = bucket[d]
        r = row_fill[b]
        row_fill[b] += 1
        rows[r, 0] = doc_slots[d]
        rows[r, 1] = indptr[d + 1] - indptr[d]
        q = post_fill[b]
        for p in range(indptr[d], indptr[d + 1]):
            terms[q] = indices[p]
            impacts[q] = data[p]
            q += 1
        post_fill[b] = q


def slot_walk(rows: np.ndarray, first_slot: int) -> tuple[np.ndarray, np.ndarray]:
    """For a bucket's rows (in file order), the row of each slot in slot order and each row's first posting."""
    row_start = np.zeros(rows.shape[0], dtype=np.int64)
    np.cumsum(rows[:-1, 1], out=row_start[1:])
    row_of_slot = np.empty(rows.shape[0], dtype=np.int64)
    row_of_slot[rows[:, 0].astype(np.int64) - first_slot] = np.arange(rows.shape[0])
    return row_of_slot, row_start


@nb.njit(cache=True)
def count_entries(first_slot, row_of_slot, row_start, rows, terms, block_size, last_block, entries):
    """_count's entry count over one bucket (df is known already); last_block carries over between buckets."""
    for j in range(row_of_slot.shape[0]):
        r = row_of_slot[j]
        blk = (first_slot + j) // block_size
        for p in range(row_start[r], row_start[r] + rows[r, 1]):
            t = terms[p]
            if last_block[t] != blk:
                last_block[t] = blk
                entries[t] += 1


@nb.njit(cache=True)
def fill_bucket(first_slot, row_of_slot, row_start, rows, terms, impacts, block_size, post_fill, entry_fill,
                last_block, term_max, bm_blocks, bm_max, bm_counts, bm_anchors, out_slots, out_impacts):
    """_fill over one bucket, writing counts and anchors directly (no per-entry start array: 8 bytes an entry)."""
    for j in range(row_of_slot.shape[0]):
        r = row_of_slot[j]
        slot = first_slot + j
        blk = slot // block_size
        for p in range(row_start[r], row_start[r] + rows[r, 1]):
            t = terms[p]
            v = impacts[p]
            q = post_fill[t]
            if last_block[t] != blk:
                last_block[t] = blk
                e = entry_fill[t]
                entry_fill[t] += 1
                bm_blocks[e] = blk
                bm_max[e] = v
                bm_counts[e] = 0
                if (e & ((1 << ANCHOR_SHIFT) - 1)) == 0:
                    bm_anchors[e >> ANCHOR_SHIFT] = q
            else:
                e = entry_fill[t] - 1
                if v > bm_max[e]:
                    bm_max[e] = v
                bm_counts[e] += 1
            if v > term_max[t]:
                term_max[t] = v
            out_slots[q] = slot - blk * block_size
            out_impacts[q] = v
            post_fill[t] = q + 1
