"""Numba kernels of the impact index: plain functions over flat arrays, kept apart from loading and saving.

Layout they read (indexing/blocks.py builds it). Documents sit in "slots" (a reordering that groups similar
documents; `doc_order[slot]` is the internal document number). Slots form blocks of `block_size`. For each term,
its "entries" are the blocks holding it, ascending: entry e of term t (bm_offsets[t] <= e < bm_offsets[t+1])
names block bm_blocks[e], the term's largest impact there bm_max[e], and its postings in that block
[bm_starts[e], bm_starts[e+1]) as (slot within block: uint8, impact).

Scores are exact integer dot products of quantised query and document weights. Top-k order is score
descending, then internal document number ascending (DESIGN.md: ties by index order), in every kernel.
A (score, doc) pair is packed into one int64 "key" so that a larger key is always the better result.

Exact search = block-max pruning in three steps (the idea of BMP, Mallia et al. SIGIR 2024, over a
term-at-a-time layout):
  1. upper bound of every block = sum over query terms of weight x the term's block maximum;
  2. a safe threshold theta0 = the k-th best score among the documents of the few highest-bound blocks;
  3. only blocks whose bound reaches theta0 are scored, term at a time, then the top k is selected.
A document scoring >= the final k-th score lies in a block whose bound is >= theta0, so step 3 misses nothing.
Approximate search (alpha < 1) scores only blocks with alpha x bound >= theta0: fewer blocks, and a top 10
whose overlap with the exact one can only grow with alpha.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def exhaustive_search(bm_offsets, bm_blocks, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                      q_terms, q_weights, k, acc, flag, heap, out_docs, out_scores):
    """Term at a time over every posting of every query term into a dense accumulator (the exact reference);
    blocks holding a posting are flagged, and only their slots are scanned for the top k."""
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        w = np.int64(q_weights[i])
        for e in range(bm_offsets[t], bm_offsets[t + 1]):
            blk = np.int64(bm_blocks[e])
            flag[blk] = 1
            first = blk * block_size
            for p in range(np.int64(bm_starts[e]), np.int64(bm_starts[e + 1])):
                acc[first + slots[p]] += w * impacts[p]
    base = np.int64(num_docs + 1)
    size = 0
    theta = np.int64(0)
    for blk in range(flag.shape[0]):
        if flag[blk] == 0:
            continue
        flag[blk] = 0
        size, theta = _drain_block(acc, np.int64(blk) * block_size, block_size, doc_order, num_docs, base, k, heap,
                                   size, theta)
    return _write_heap(heap, size, base, num_docs, out_docs, out_scores)


@nb.njit(cache=True, nogil=True, inline="always")
def _drain_block(acc, first, block_size, doc_order, num_docs, base, k, heap, size, theta):
    """Move one block's accumulated scores into the top-k heap and clear them; returns (size, theta)."""
    for s in range(first, first + block_size):
        score = np.int64(acc[s])
        if score == 0:
            continue
        acc[s] = 0
        if size == k and score < theta:
            continue  # cannot enter: skip the key (and its random read of doc_order)
        size = _heap_offer(heap, size, k, score * base + np.int64(num_docs - doc_order[s]))
        if size == k:
            theta = heap[0] // base
    return size, theta


@nb.njit(cache=True, nogil=True)
def _write_heap(heap, size, base, num_docs, out_docs, out_scores):
    """The heap's keys as (doc, score) rows, best first; returns how many."""
    keys = np.sort(heap[:size])
    for i in range(size):
        key = keys[size - 1 - i]
        score = key // base
        out_scores[i] = score
        out_docs[i] = num_docs - (key - score * base)
    return size


@nb.njit(cache=True, nogil=True)
def _heap_offer(heap, size, k, key):
    """Offer a packed key to the min-heap of the k best; returns the new size."""
    if size < k:
        i = size
        while i > 0:
            parent = (i - 1) >> 1
            if heap[parent] <= key:
                break
            heap[i] = heap[parent]
            i = parent
        heap[i] = key
        return size + 1
    if key <= heap[0]:
        return size
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and heap[c + 1] < heap[c]:
            c += 1
        if heap[c] >= key:
            break
        heap[i] = heap[c]
        i = c
    heap[i] = key
    return size


@nb.njit(cache=True, nogil=True)
def _find_entry(bm_blocks, lo, hi, blk):
    """Entry of block `blk` among bm_blocks[lo:hi] (ascending, distinct), or -1.

    Interpolation first (a term's blocks are spread roughly evenly, exactly so for a term in every block), then
    a gallop to bracket the answer and a binary search inside the bracket: a handful of reads, not log2(n).
    """
    if lo >= hi:
        return -1
    first, last = np.int64(bm_blocks[lo]), np.int64(bm_blocks[hi - 1])
    if blk < first or blk > last:
        return -1
    n = hi - lo
    pos = lo
    if last > first:
        pos = lo + ((blk - first) * (n - 1)) // (last - first)
    # Blocks are distinct and ascending, so the answer lies within (blk - bm_blocks[pos]) entries of pos.
    v = np.int64(bm_blocks[pos])
    if v == blk:
        return pos
    if v < blk:
        a, b = pos + 1, min(hi, pos + 1 + (blk - v))
    else:
        a, b = max(lo, pos - (v - blk)), pos
    step = 1
    if v < blk:  # gallop forward from pos
        while a + step < b and np.int64(bm_blocks[a + step]) < blk:
            a += step
            step *= 2
        b = min(b, a + step + 1)
    else:  # gallop backward from pos
        while b - step > a and np.int64(bm_blocks[b - step]) > blk:
            b -= step
            step *= 2
        a = max(a, b - step - 1)
    while a < b:
        mid = (a + b) >> 1
        if np.int64(bm_blocks[mid]) < blk:
            a = mid + 1
        else:
            b = mid
    if a < hi and np.int64(bm_blocks[a]) == blk:
        return a
    return -1


@nb.njit(cache=True, nogil=True)
def block_search(bm_offsets, bm_blocks, bm_max, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                 q_terms, q_weights, k, alpha, ub, touched_blocks, order, flag, acc, heap, out_docs, out_scores, stats):
    """Top k by block-max pruning; exact when alpha == 1. Scratch arrays (ub [blocks] int64, flag [blocks] uint8,
    acc [slots] int32 or int64: all zero; the others: any content) are left as found.

    stats[0] += blocks scored, stats[1] += postings scored, stats[2] += block maxima read.
    """
    nq = q_terms.shape[0]
    n_blocks = np.int64(ub.shape[0])
    base = np.int64(num_docs + 1)
    # 1. Upper bounds (term at a time over the block maxima).
    n_tb = 0
    maxima_read = np.int64(0)
    for i in range(nq):
        t = q_terms[i]
        w = np.int64(q_weights[i])
        a, b = bm_offsets[t], bm_offsets[t + 1]
        maxima_read += b - a
        for e in range(a, b):
            blk = bm_blocks[e]
            if ub[blk] == 0:
                touched_blocks[n_tb] = blk
                n_tb += 1
            ub[blk] += w * np.int64(bm_max[e])
    # 2. Blocks in descending bound order: counting sort on the bound's top bits; exact order inside a bucket.
    max_ub = np.int64(0)
    for i in range(n_tb):
        if ub[touched_blocks[i]] > max_ub:
            max_ub = ub[touched_blocks[i]]
    n_buckets = 1
    while n_buckets < n_tb and n_buckets < 4096:
        n_buckets *= 2
    starts = np.zeros(n_buckets + 1, dtype=np.int64)
    for i in range(n_tb):
        starts[n_buckets - (ub[touched_blocks[i]] * n_buckets) // (max_ub + 1)] += 1  # bucket 0: largest bounds
    for j in range(n_buckets):
        starts[j + 1] += starts[j]
    fill = starts[:-1].copy()
    for i in range(n_tb):
        blk = touched_blocks[i]
        bkt = n_buckets - 1 - (ub[blk] * n_buckets) // (max_ub + 1)
        order[fill[bkt]] = blk
        fill[bkt] += 1
    # 3. Best-bound blocks first, each scored by looking up every query term's entry in it, until no bound
    #    (x alpha) reaches the k-th score, or until looking up costs more than walking the remaining entries.
    budget = max(np.int64(8), maxima_read // (nq * 16)) + (k + block_size - 1) // block_size
    size = 0
    theta = np.int64(0)
    n_scored = 0
    postings = np.int64(0)
    block_acc = np.zeros(block_size, dtype=np.int64)
    finished = False
    stop_at = n_tb
    for bkt in range(n_buckets):
        a, b = starts[bkt], starts[bkt + 1]
        if a == b:
            continue
        keys = np.empty(b - a, dtype=np.int64)
        for j in range(a, b):
            blk = np.int64(order[j])
            keys[j - a] = ub[blk] * (n_blocks + 1) + (n_blocks - blk)
        keys.sort()
        for j in range(b - a):
            key = keys[b - a - 1 - j]
            bound = key // (n_blocks + 1)
            blk = n_blocks - (key - bound * (n_blocks + 1))
            order[a + j] = blk  # the exact order, for step 4
            if finished:
                continue
            if size == k and bound * alpha < theta:
                finished = True
                stop_at = -1
                continue
            if n_scored >= budget:
                finished = True
                stop_at = a + j
                continue
            flag[blk] = 1
            n_scored += 1
            for i in range(nq):
                t = q_terms[i]
                e = _find_entry(bm_blocks, bm_offsets[t], bm_offsets[t + 1], blk)
                if e >= 0:
                    w = np.int64(q_weights[i])
                    for p in range(np.int64(bm_starts[e]), np.int64(bm_starts[e + 1])):
                        block_acc[slots[p]] += w * np.int64(impacts[p])
                    postings += np.int64(bm_starts[e + 1]) - np.int64(bm_starts[e])
            first = blk * block_size
            for s in range(block_size):
                if block_acc[s] > 0:
                    size = _heap_offer(heap, size, k, block_acc[s] * base + np.int64(num_docs - doc_order[first + s]))
                    block_acc[s] = 0
            if size == k:
                theta = heap[0] // base
        if finished and stop_at == -1:
            break
    # 4. The remaining blocks whose bound (x alpha) reaches theta, term at a time, skipping all other entries.
    if stop_at >= 0 and stop_at < n_tb:
        n_cand = 0
        for j in range(stop_at, n_tb):
            blk = order[j]
            if size == k and ub[blk] * alpha < theta:
                break
            flag[blk] = 2
            n_cand += 1
        if n_cand > 0:
            n_scored += n_cand
            for i in range(nq):
                t = q_terms[i]
                w = np.int64(q_weights[i])
                for e in range(bm_offsets[t], bm_offsets[t + 1]):
                    blk = np.int64(bm_blocks[e])
                    if flag[blk] == 2:
                        a0, a1 = np.int64(bm_starts[e]), np.int64(bm_starts[e + 1])
                        postings += a1 - a0
                        first = blk * block_size
                        for p in range(a0, a1):  # no branch per posting: the scan below finds the documents
                            acc[first + slots[p]] += w * impacts[p]
            # The flagged blocks are order[stop_at : stop_at + n_cand], best bound first: theta rises early.
            for j in range(stop_at, stop_at + n_cand):
                size, theta = _drain_block(acc, np.int64(order[j]) * block_size, block_size, doc_order, num_docs,
                                           base, k, heap, size, theta)
    _write_heap(heap, size, base, num_docs, out_docs, out_scores)
    for i in range(n_tb):
        blk = touched_blocks[i]
        ub[blk] = 0
        flag[blk] = 0
    stats[0] += n_scored
    stats[1] += postings
    stats[2] += maxima_read
    return size


def new_scratch(num_chunks: int, num_docs: int, block_size: int, acc_dtype=np.int64) -> tuple[np.ndarray, ...]:
    """Per-chunk scratch arrays of `search_batch`, allocated once per index: zeroing an accumulator of a million
    slots for every call would cost more than a pruned query. An int32 accumulator (half the cache footprint) is
    for queries whose largest possible score fits in it."""
    n_blocks = max(1, (num_docs + block_size - 1) // block_size)
    n_slots = n_blocks * block_size
    return (np.zeros((num_chunks, n_slots), dtype=acc_dtype),
            np.zeros((num_chunks, n_blocks), dtype=np.int64), np.zeros((num_chunks, n_blocks), dtype=np.uint8),
            np.empty((num_chunks, n_blocks), dtype=np.int32), np.empty((num_chunks, n_blocks), dtype=np.int32))


@nb.njit(cache=True, nogil=True)
def _search_chunk(c, bm_offsets, bm_blocks, bm_max, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                 q_indptr, q_terms, q_weights, k, alpha, exhaustive, num_chunks, acc, ub, flag, touched_blocks,
                 order, out_docs, out_scores, out_counts, stats):
    """The queries c, c + num_chunks, ... with row c of the scratch arrays (new_scratch) and of stats."""
    num_queries = q_indptr.shape[0] - 1
    heap = np.empty(k, dtype=np.int64)
    for q in range(c, num_queries, num_chunks):
        a, b = q_indptr[q], q_indptr[q + 1]
        if exhaustive:
            out_counts[q] = exhaustive_search(
                bm_offsets, bm_blocks, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                q_terms[a:b], q_weights[a:b], k, acc[c], flag[c], heap, out_docs[q], out_scores[q],
            )
        else:
            out_counts[q] = block_search(
                bm_offsets, bm_blocks, bm_max, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                q_terms[a:b], q_weights[a:b], k, alpha, ub[c], touched_blocks[c], order[c], flag[c], acc[c],
                heap, out_docs[q], out_scores[q], stats[c],
            )


@nb.njit(cache=True, parallel=True)
def search_batch(bm_offsets, bm_blocks, bm_max, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                 q_indptr, q_terms, q_weights, k, alpha, exhaustive, num_chunks, acc, ub, flag, touched_blocks,
                 order, out_docs, out_scores, out_counts, stats):
    """Many queries over all cores: chunk c of the queries uses row c of the scratch arrays and of stats
    ([num_chunks, 3])."""
    for c in nb.prange(num_chunks):
        _search_chunk(c, bm_offsets, bm_blocks, bm_max, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                      q_indptr, q_terms, q_weights, k, alpha, exhaustive, num_chunks, acc, ub, flag, touched_blocks,
                      order, out_docs, out_scores, out_counts, stats)


@nb.njit(cache=True, nogil=True)
def search_serial(bm_offsets, bm_blocks, bm_max, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                 q_indptr, q_terms, q_weights, k, alpha, exhaustive, num_chunks, acc, ub, flag, touched_blocks,
                 order, out_docs, out_scores, out_counts, stats):
    """search_batch on the calling thread alone: waking numba's thread pool costs more than a pruned query, and
    on a busy machine much more (the pool's threads wait for a core)."""
    for c in range(num_chunks):
        _search_chunk(c, bm_offsets, bm_blocks, bm_max, bm_starts, slots, impacts, doc_order, block_size, num_docs,
                      q_indptr, q_terms, q_weights, k, alpha, exhaustive, num_chunks, acc, ub, flag, touched_blocks,
                      order, out_docs, out_scores, out_counts, stats)
