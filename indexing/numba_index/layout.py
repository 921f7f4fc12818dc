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

from indexing.numba_index.kernels import ANCHOR_SHIFT, SEGMENT_BITS

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
    # One int64 key (first, second) in a stable sort: the same order as np.lexsort over (number, second, first),
    # in 0.4x its time (2.2 against 5.4 s at 8.8M documents).
    width = int(max(first.max(initial=-1), second.max(initial=-1))) + 2
    if width * width >= 2**62:
        return np.lexsort((np.arange(first.shape[0]), second, first)).astype(np.int32)
    key = (first.astype(np.int64) + 1) * width + (second.astype(np.int64) + 1)
    return np.argsort(key, kind="stable").astype(np.int32)


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


# bm_blocks holds the low SEGMENT_BITS bits of each entry's block number (uint16); the high part is the entry's
# "segment": the entries of term t in segment h (blocks [h << 16, (h + 1) << 16)) are
# [bm_offsets[t * segments + h], bm_offsets[t * segments + h + 1]). WHY: past 65,536 blocks (2.1M documents in
# blocks of 32) an int32 block number made bm_blocks 43 % of the index at 8.84M (2.8 of 6.4 GiB) and the index
# 2.4x PISA's size; with segments it stays two bytes an entry, and bm_offsets grows by a few hundred KiB.
SEGMENT_MASK = (1 << SEGMENT_BITS) - 1


def block_segments(num_docs: int, block_size: int) -> int:
    """How many segments of 2**SEGMENT_BITS blocks the index's blocks span (1 up to 65,536 blocks)."""
    n_blocks = max(1, (num_docs + block_size - 1) // block_size)
    return (n_blocks + SEGMENT_MASK) >> SEGMENT_BITS


def term_entry_starts(bm_offsets: np.ndarray, segments: int) -> np.ndarray:
    """Where each term's entries start (its first segment's start), a copy: the fill pointers of the builders."""
    return np.array(bm_offsets[:-1:segments], dtype=np.int64)


def anchor_dtype(num_postings: int):
    """bm_anchors' dtype: four bytes while the posting numbers fit."""
    return np.uint32 if num_postings < 2**32 else np.int64


def block_layout(matrix: sp.csr_matrix, order: np.ndarray, block_size: int, impact_dtype) -> dict[str, np.ndarray]:
    """The term-major, block-grouped arrays the kernels read (see indexing/kernels.py for their meaning)."""
    check_block_size(block_size)
    num_docs, vocab_size = matrix.shape
    indptr, indices = matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32)
    segments = block_segments(num_docs, block_size)
    df = np.zeros(vocab_size, dtype=np.int64)
    entries = np.zeros(vocab_size * segments, dtype=np.int64)
    _count(indptr, indices, order, block_size, segments, df, entries)
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    bm_offsets = np.zeros(vocab_size * segments + 1, dtype=np.int64)
    np.cumsum(entries, out=bm_offsets[1:])
    num_postings, num_entries = int(offsets[-1]), int(bm_offsets[-1])
    arrays = {
        "offsets": offsets,
        "bm_offsets": bm_offsets,
        "bm_blocks": np.empty(num_entries, dtype=np.uint16),
        "bm_max": np.zeros(num_entries, dtype=impact_dtype),
        "slots": np.empty(num_postings, dtype=np.uint8),
        "impacts": np.empty(num_postings, dtype=impact_dtype),
    }
    starts = np.empty(num_entries + 1, dtype=np.int64)  # posting start of each entry, kept only every 32nd
    _fill(indptr, indices, matrix.data, order, block_size, offsets, term_entry_starts(bm_offsets, segments),
          arrays["bm_blocks"], arrays["bm_max"], starts, arrays["slots"], arrays["impacts"])
    arrays["bm_counts"] = (np.diff(starts) - 1).astype(np.uint8)  # 1..block_size postings, stored minus one
    arrays["bm_anchors"] = starts[:: 1 << ANCHOR_SHIFT].astype(anchor_dtype(num_postings))
    return arrays


@nb.njit(cache=True)
def _count(indptr, indices, order, block_size, segments, df, entries):
    """Postings per term (df) and entries per (term, segment) (entries[t * segments + h])."""
    seen = np.full(df.shape[0], -1, dtype=np.int64)
    for slot in range(order.shape[0]):
        d = order[slot]
        blk = slot // block_size
        for p in range(indptr[d], indptr[d + 1]):
            t = indices[p]
            df[t] += 1
            if seen[t] != blk:
                seen[t] = blk
                entries[t * segments + (blk >> SEGMENT_BITS)] += 1


@nb.njit(cache=True)
def _fill(indptr, indices, data, order, block_size, offsets, entry_fill, bm_blocks, bm_max, bm_starts, out_slots,
          out_impacts):
    """entry_fill: term_entry_starts (advanced here). A term's entries, in ascending blocks, fill its segments
    in order, so one fill pointer a term serves all its segments."""
    vocab = offsets.shape[0] - 1
    post_fill = offsets[:-1].copy()
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
                bm_blocks[e] = blk & SEGMENT_MASK
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
# Each kernel quantises as _quantize does (the float weights are read, never a quantised copy of the shard).

KEYS_OK, KEYS_UNSORTED, KEYS_BAD_TERM, KEYS_BAD_ROWS = 0, 1, 2, 3  # shard_keys' answers


@nb.njit(cache=True)
def shard_keys(indptr, indices, data, scale, top, vocab_size, first, second, df):
    """Pass 2 over one shard: _quantize, then _top_two_terms' key of each row and each term's posting count.

    The shard is checked first, as the kernels index by it unchecked: KEYS_BAD_ROWS (row pointers that descend
    or pass the end), KEYS_BAD_TERM (a term id outside [0, vocab_size)), KEYS_UNSORTED (a row whose term ids
    descend: the caller sorts the shard, as the in-memory builder does, and asks again); nothing is counted then.
    """
    n = indptr.shape[0] - 1
    for d in range(n):
        if indptr[d] < 0 or indptr[d + 1] < indptr[d] or indptr[d + 1] > indices.shape[0]:
            return KEYS_BAD_ROWS
    for d in range(n):
        for p in range(indptr[d], indptr[d + 1]):
            t = indices[p]
            if t < 0 or t >= vocab_size:
                return KEYS_BAD_TERM
            if p > indptr[d] and t < indices[p - 1]:
                return KEYS_UNSORTED
    for d in range(n):
        w1 = -1.0
        w2 = -1.0
        f = -1
        s = -1
        for p in range(indptr[d], indptr[d + 1]):
            v = min(max(np.rint(np.float64(data[p]) * scale), 0.0), top)
            if v > 0:
                t = indices[p]
                df[t] += 1
                if v > w1:
                    w2, s = w1, f
                    w1, f = v, t
                elif v > w2:
                    w2, s = v, t
        first[d] = f
        second[d] = s
    return KEYS_OK


@nb.njit(cache=True)
def spill_shard(indptr, indices, data, scale, top, by_slot, doc_slots, bucket_slots, rows, terms, impacts, bounds):
    """Pass 3 over one shard: its rows quantised and written in slot order (`by_slot`: the shard's rows sorted by
    slot), so that each bucket's rows are one contiguous, slot-sorted run.

    Fills rows ([slot, kept postings] per row), terms and impacts; bounds[b] = (first row, first posting) of
    bucket b's run (b < n_buckets + 1; empty runs included). Returns the number of postings kept.
    """
    q = 0
    b = 0
    bounds[0, 0] = 0
    bounds[0, 1] = 0
    for r in range(by_slot.shape[0]):
        d = by_slot[r]
        slot = doc_slots[d]
        while slot // bucket_slots >= b + 1:
            b += 1
            bounds[b, 0] = r
            bounds[b, 1] = q
        start = q
        for p in range(indptr[d], indptr[d + 1]):
            v = min(max(np.rint(np.float64(data[p]) * scale), 0.0), top)
            if v > 0:
                terms[q] = indices[p]
                impacts[q] = v
                q += 1
        rows[r, 0] = slot
        rows[r, 1] = q - start
    for c in range(b + 1, bounds.shape[0]):
        bounds[c, 0] = by_slot.shape[0]
        bounds[c, 1] = q
    return q


def slot_walk(rows: np.ndarray, first_slot: int) -> tuple[np.ndarray, np.ndarray]:
    """For a bucket's rows (in file order), the row of each slot in slot order and each row's first posting."""
    row_start = np.zeros(rows.shape[0], dtype=np.int64)
    np.cumsum(rows[:-1, 1], out=row_start[1:])
    row_of_slot = np.empty(rows.shape[0], dtype=np.int64)
    row_of_slot[rows[:, 0].astype(np.int64) - first_slot] = np.arange(rows.shape[0])
    return row_of_slot, row_start


@nb.njit(cache=True)
def count_entries(first_slot, row_of_slot, row_start, rows, terms, block_size, segments, last_block, entries):
    """_count's entry count over one bucket (df is known already); last_block carries over between buckets."""
    for j in range(row_of_slot.shape[0]):
        r = row_of_slot[j]
        blk = (first_slot + j) // block_size
        for p in range(row_start[r], row_start[r] + rows[r, 1]):
            t = terms[p]
            if last_block[t] != blk:
                last_block[t] = blk
                entries[t * segments + (blk >> SEGMENT_BITS)] += 1


def fill_key_dtype(bucket_slots: int, impact_bits: int):
    """The dtype of fill_bucket's sort buffer, (slot in bucket << impact_bits) | impact: 4 bytes while it fits."""
    return np.uint32 if bucket_slots << impact_bits <= 2**32 else np.uint64


@nb.njit(cache=True)
def _sort_bucket(row_of_slot, row_start, rows, terms, impacts, shift, start, buf):
    """The bucket's postings grouped by term, in slot order within a term (a stable counting sort), each packed as
    (slot in bucket << shift) | impact; start[t]:start[t + 1] is term t's run."""
    start[:] = 0
    for p in range(terms.shape[0]):
        start[terms[p] + 1] += 1
    for t in range(start.shape[0] - 1):
        start[t + 1] += start[t]
    fill = start[:-1].copy()
    for j in range(row_of_slot.shape[0]):
        r = row_of_slot[j]
        key = j << shift
        for p in range(row_start[r], row_start[r] + rows[r, 1]):
            t = terms[p]
            buf[fill[t]] = key | np.int64(impacts[p])
            fill[t] += 1


@nb.njit(cache=True)
def _emit_bucket(first_slot, start, buf, shift, block_size, post_fill, entry_fill, last_block, term_max, bm_blocks,
                 bm_max, bm_counts, bm_anchors, out_slots, out_impacts):
    """_fill's loop body, term by term: each term's postings of the bucket go to consecutive places."""
    mask = (np.int64(1) << shift) - 1
    for t in range(start.shape[0] - 1):
        if start[t] == start[t + 1]:
            continue
        q = post_fill[t]
        e = entry_fill[t] - 1
        last = last_block[t]
        top = term_max[t]
        for i in range(start[t], start[t + 1]):
            x = np.int64(buf[i])
            slot = first_slot + (x >> shift)
            v = x & mask
            blk = slot // block_size
            if last != blk:
                last = blk
                e += 1
                bm_blocks[e] = blk & SEGMENT_MASK
                bm_max[e] = v
                bm_counts[e] = 0
                if (e & ((1 << ANCHOR_SHIFT) - 1)) == 0:
                    bm_anchors[e >> ANCHOR_SHIFT] = q
            else:
                if v > bm_max[e]:
                    bm_max[e] = v
                bm_counts[e] += 1
            if v > top:
                top = v
            out_slots[q] = slot - blk * block_size
            out_impacts[q] = v
            q += 1
        post_fill[t] = q
        entry_fill[t] = e + 1
        last_block[t] = last
        term_max[t] = top


def fill_bucket(first_slot, row_of_slot, row_start, rows, terms, impacts, block_size, post_fill, entry_fill,
                last_block, term_max, out, buf):
    """_fill over one bucket, writing counts and anchors directly (no per-entry start array: 8 bytes an entry).

    WHY sort first: walking the slots and writing each posting at its term's place writes to ~30k places at
    once (five arrays each), and those scattered writes were 2x the time of a counting sort into one packed
    buffer followed by a term-by-term pass whose writes are all sequential. `buf`: fill_key_dtype, one per
    posting of the bucket at least.
    """
    if buf.shape[0] < terms.shape[0]:  # the kernels write unchecked
        raise ValueError(f"a sort buffer of {buf.shape[0]} keys for a bucket of {terms.shape[0]} postings")
    shift = 8 * out["impacts"].dtype.itemsize
    start = np.empty(post_fill.shape[0] + 1, dtype=np.int64)
    _sort_bucket(row_of_slot, row_start, rows, terms, impacts, shift, start, buf)
    _emit_bucket(first_slot, start, buf, shift, block_size, post_fill, entry_fill, last_block, term_max,
                 out["bm_blocks"], out["bm_max"], out["bm_counts"], out["bm_anchors"], out["slots"], out["impacts"])
