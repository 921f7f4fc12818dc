"""Numba kernels of the impact index: plain functions over flat arrays, kept apart from loading and saving.

Layout they read (indexing/numba_index/layout.py builds it). Documents sit in "slots" (a reordering that groups
similar documents; `doc_order[slot]` is the internal document number). Slots form blocks of `block_size`. For
each term, its "entries" are the blocks holding it, ascending, in `segments` segments of 65,536 blocks: entry e
of term t in segment h (bm_offsets[t * segments + h] <= e < bm_offsets[t * segments + h + 1]) names block
(h << SEGMENT_BITS) + bm_blocks[e] (uint16), the term's largest impact there bm_max[e], and holds bm_counts[e] + 1
postings (slot within block: uint8, impact). A term's entries are contiguous: [bm_offsets[t * segments],
bm_offsets[(t + 1) * segments]). A term's postings start at offsets[t] and follow its entries in
order, so a walk over a term's entries adds up the counts; a jump to entry e starts from bm_anchors[e >> 5], the
posting start of every 32nd entry (1 byte per entry instead of a 4-byte start: the index is 30 % smaller).

Scores are exact integer dot products of quantised query and document weights. Top-k order is score
descending, then internal document number ascending (DESIGN.md: ties by index order), in every kernel.
A (score, doc) pair is packed into one int64 "key" so that a larger key is always the better result.

Exact search = block-max pruning in four steps (the idea of BMP, Mallia et al. SIGIR 2024, over a
term-at-a-time layout), one function each under `block_search`:
  1. `_upper_bounds`: the bound of every block = sum over query terms of weight x the term's block maximum;
  2. `_sort_blocks`: the touched blocks in descending bound order (a counting sort on the bound's top bits);
  3. `_score_best_blocks`: the few highest-bound blocks scored by looking up each query term's entry in them,
     which gives a safe threshold theta = the k-th best score so far;
  4. `_score_remaining`: only the remaining blocks whose bound reaches theta, term at a time, then the top k.
A document scoring >= the final k-th score lies in a block whose bound is >= theta, so step 4 misses nothing.
When most touched blocks reach theta (large k, where the k-th score is low), step 4 scores every posting
instead: testing each entry's block would cost more than it skips.
Approximate search (alpha < 1) scores only blocks with alpha x bound >= theta: fewer blocks, and a top 10
whose overlap with the exact one can only grow with alpha.

Arguments travel as NamedTuples (numba compiles their fields as plain values, no cost): `IndexArrays` (the
loaded index), `Queries` (quantised CSR rows), `Scratch` (reusable buffers), `Results` (the output rows).

WHY the hot loops index with np.uint64(...) or over a view from 0: numba wraps a negative signed index Python's
way (a compare and a select at every access) unless it can prove the index is not negative, and that also keeps
LLVM from turning a loop into vector instructions. Unsigned indices, and a view walked by range(len), remove
both: at 1M synthetic documents, one query at a time, scoring every posting went 1.8x faster (light, heavy and
dev queries) and the full drain of a million slots at k=1000 2.7-3.5x (1.65 -> 0.5-0.6 ms, see
_drain_block), the same results bit for bit.

# HIGH LEVEL FUNCTIONS: `search_batch`, `search_serial` (called by indexing/numba_index/index.py), `new_scratch`.
# LOW LEVEL FUNCTIONS: the steps and the top-k buffer below them.
"""
from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros  # one instruction; numba has no public name for it


class IndexArrays(NamedTuple):
    """The arrays of an index folder the kernels read (see the module docstring), and the two numbers that size them."""

    bm_offsets: np.ndarray  # int64 [vocab x segments + 1]: entries of term t, segment h from t x segments + h
    bm_blocks: np.ndarray  # uint16 [entries]: the block of each entry less its segment's start, ascending per term
    bm_max: np.ndarray  # uint8 | uint16 [entries]: the term's largest impact in that block
    offsets: np.ndarray  # int64 [vocab + 1]: postings of term t are [offsets[t], offsets[t + 1])
    bm_counts: np.ndarray  # uint8 [entries]: postings of the entry minus one
    bm_anchors: np.ndarray  # uint32 | int64 [entries / 32 + 1]: first posting of every 32nd entry
    slots: np.ndarray  # uint8 [postings]: slot of the posting's document inside its block
    impacts: np.ndarray  # uint8 | uint16 [postings]
    doc_order: np.ndarray  # int32 [slots]: internal document number of each slot
    block_size: int
    num_docs: int
    segments: int  # segments of 2**SEGMENT_BITS blocks (1 up to 65,536 blocks)


# Bits of a block number in bm_blocks; the rest is the entry's segment (see indexing/numba_index/layout.py).
SEGMENT_BITS = 16


class Queries(NamedTuple):
    """Quantised queries as CSR rows: the terms of query q are terms[indptr[q] : indptr[q + 1]]."""

    indptr: np.ndarray  # int64 [n + 1]
    terms: np.ndarray  # int32, ascending within a row
    weights: np.ndarray  # int64, positive


class Results(NamedTuple):
    """Output rows: the top k of query q are docs[q, :counts[q]] with scores[q, :counts[q]], best first."""

    docs: np.ndarray  # int32 [n, k] internal document numbers
    scores: np.ndarray  # int64 [n, k]
    counts: np.ndarray  # int64 [n]


class Scratch(NamedTuple):
    """Buffers reused across queries (rows per chunk of queries in `new_scratch`; one row inside a kernel)."""

    acc: np.ndarray  # int32 | int64 [slots]: score accumulator, all zero between queries
    ub: np.ndarray  # int64 [blocks]: upper bounds, all zero between queries
    flag: np.ndarray  # uint8 [blocks]: NOT_CANDIDATE between queries, CANDIDATE for blocks step 4 scores
    touched_blocks: np.ndarray  # int32 [blocks]: the blocks step 1 reached, any content between queries
    order: np.ndarray  # int32 [blocks]: the touched blocks by descending bound, any content between queries
    marks: np.ndarray  # uint64 [slots / 64 + 1]: bit s set for each slot s a sparse exhaustive search reached, all zero
    #                    between queries


# Values of Scratch.flag.
NOT_CANDIDATE = 0
CANDIDATE = 1  # step 4's sparse pass scores this block's postings
# Indices of the int64 stats rows that searches add to.
STAT_BLOCKS_SCORED = 0
STAT_POSTINGS_SCORED = 1
STAT_MAXIMA_READ = 2
NUM_STATS = 3


@nb.njit(cache=True, nogil=True)
def exhaustive_search(index, q_terms, q_weights, k, scratch, top, out_docs, out_scores, slice_slots):
    """Term at a time over every posting of every query term into a dense accumulator (the exact reference),
    then the scored slots into the top-k buffer; returns how many results.

    WHY two ways to find the scored slots: a query whose postings are few against the slots (the real MS MARCO
    dev queries: ~37k postings at 1M documents, 4 % of the slots reached) marks each slot it reaches in a bitmap
    and drains only the marked ones, so its cost follows its postings rather than the collection's size; a query
    reaching a large part of the slots drains every slot in order, which is cheaper than the marks (SPARSE_DRAIN).

    slice_slots > 0 (an accumulator larger than the last-level cache, see SLICE_SLOTS) scores and drains every
    slot a slice of that many slots at a time, 0 the whole accumulator at once."""
    acc = scratch.acc
    base = np.int64(index.num_docs + 1)
    sparse = _postings_of(index, q_terms) * SPARSE_DRAIN[1] < acc.shape[0] * SPARSE_DRAIN[0]
    if sparse and scratch.marks.shape[0] > 0:  # no marks below SPARSE_DRAIN_MIN_SLOTS (new_scratch)
        _score_all_marking(index, q_terms, q_weights, acc, scratch.marks)
        if k >= SLOT_KEYED_K:
            size, theta = _drain_marked_by_slot(acc, scratch.marks, index.doc_order, index.num_docs, base, k, top)
        else:
            size, theta = _drain_marked(acc, scratch.marks, index.doc_order, index.num_docs, base, k, top, 0,
                                        np.int64(-1))
    elif slice_slots > 0:
        size, theta = _score_and_drain_by_slice(index, q_terms, q_weights, acc, base, k, top, slice_slots)
    else:
        _score_all(index, q_terms, q_weights, acc)
        size, theta = _drain_block(acc, 0, acc.shape[0], index.doc_order, index.num_docs, base, k, top, 0,
                                   np.int64(-1))
    return _write_top(top, size, k, base, index.num_docs, out_docs, out_scores)


# exhaustive_search marks the slots it reaches while the query's postings are fewer than this fraction (numerator,
# denominator) of the slots. Measured at 1M synthetic documents (k=10, the dev, light and heavy query sets and
# prefixes of heavy queries, one process): marking took 0.42x the time of the full drain below 5 % postings per
# slot, 0.77x at 10-20 %, 0.95x at 20-30 %, 1.03x at 30-50 % and 1.2-1.3x beyond.
SPARSE_DRAIN = (1, 4)
# ... and only from this many slots (new_scratch allocates no marks below it): below it an int32 accumulator fits
# a 1 MiB L2 and the full drain was the faster (100k documents, `python -m benchmarks.bench --docs 100000
# --no-real`, three runs against the commit before the marks: exhaustive light k=10 1.20x slower with marks, while
# the peers in the same runs drifted by 1.09x).
SPARSE_DRAIN_MIN_SLOTS = 2**18


@nb.njit(cache=True, nogil=True, inline="always")
def _postings_of(index, q_terms):
    """Postings of the query's terms."""
    n = np.int64(0)
    for i in range(q_terms.shape[0]):
        n += np.int64(index.offsets[q_terms[i] + 1]) - np.int64(index.offsets[q_terms[i]])
    return n


# The slice of the accumulator exhaustive_search's full drain scores and drains at a time when the accumulator is
# larger than the last-level cache (ImpactIndex decides; `slice_slots` of search_batch). Measured with
# `python -m benchmarks.scale slices` (60 queries a set, k=1000, one thread, paired, the same top k), median speed-up
# over the whole accumulator at 8.84M documents (a 34 MiB int32 accumulator, a 32 MiB L3), light / heavy queries,
# with the kernels of the unsigned indices: 1.52x / 1.59x in slices of 16,384 slots, 1.62x / 1.70x of 65,536,
# 1.63x / 1.69x of 262,144 (1 MiB, an L2), 1.65x / 1.70x of 1,048,576: the same from 65,536 on (before those
# kernels 65,536 was the best, 1.52x / 1.67x, and 1,048,576 gave 1.46x / 1.56x). At 1M (4 MiB, inside the L3)
# 0.91-0.99x, so the whole accumulator stays there. The real MS MARCO dev queries (0.04 postings per document) take
# the marked drain instead, whatever the size.
SLICE_SLOTS = 2**18


@nb.njit(cache=True, nogil=True)
def _score_and_drain_by_slice(index, q_terms, q_weights, acc, base, k, top, slice_slots):
    """_score_all then _drain_block, a slice of slice_slots slots at a time: every term's postings into the
    slice (each term's cursor carried from slice to slice), then the slice into the top-k buffer while it is
    still in cache; returns (size, theta)."""
    n_terms = q_terms.shape[0]
    cursor_h = np.zeros(n_terms, dtype=np.int64)
    cursor_e = np.empty(n_terms, dtype=np.int64)
    cursor_p = np.empty(n_terms, dtype=np.int64)
    for i in range(n_terms):
        cursor_e[i] = index.bm_offsets[q_terms[i] * index.segments]
        cursor_p[i] = index.offsets[q_terms[i]]
    deltas = np.zeros(SCATTER_RUN + 256, dtype=np.int64)
    block_size = np.int64(index.block_size)
    slice_blocks = max(np.int64(1), slice_slots // block_size)
    n_blocks = acc.shape[0] // block_size
    size, theta = 0, np.int64(-1)
    for lo in range(0, n_blocks, slice_blocks):
        hi = min(lo + slice_blocks, n_blocks)
        for i in range(n_terms):
            cursor_h[i], cursor_e[i], cursor_p[i] = _score_entries(index, q_terms[i], np.int64(q_weights[i]), acc,
                                                                   deltas, _scatter_run, cursor_h[i], cursor_e[i],
                                                                   cursor_p[i], hi)
        size, theta = _drain_block(acc, lo * block_size, (hi - lo) * block_size, index.doc_order, index.num_docs,
                                   base, k, top, size, theta)
    return size, theta


# Postings a term's walk decodes before scattering them (see _score_term): 16 KiB of block bases, inside L1.
SCATTER_RUN = 2048


@nb.njit(cache=True, nogil=True)
def _score_all(index, q_terms, q_weights, acc):
    """Adds weight x impact of every posting of every query term into the accumulator; returns the postings.

    A function of its own, not inlined: inside block_search the same loop ran 1.4x slower (measured), the
    compiler having a large function's variables to keep around it."""
    deltas = np.zeros(SCATTER_RUN + 256, dtype=np.int64)  # 256: an entry holds at most 256 postings
    for i in range(q_terms.shape[0]):
        _score_term(index, q_terms[i], np.int64(q_weights[i]), acc, deltas, _scatter_run)
    return _postings_of(index, q_terms)


@nb.njit(cache=True, nogil=True)
def _score_all_marking(index, q_terms, q_weights, acc, marks):
    """_score_all that also sets bit s of `marks` (64 slots a word) for every slot s it reaches.

    WHY a bitmap, not a list of the slots reached: appending a slot only on its first touch makes every posting
    wait for its accumulator read (a chain through the list's length); that ran 4x slower than the plain loop,
    while setting a bit, unconditionally, in an array that stays in cache costs a few percent (measured)."""
    deltas = np.zeros(SCATTER_RUN + 256, dtype=np.int64)
    for i in range(q_terms.shape[0]):
        _score_term(index, q_terms[i], np.int64(q_weights[i]), (acc, marks), deltas, _scatter_run_marking)


@nb.njit(cache=True, nogil=True, inline="always")
def _score_term(index, t, w, target, deltas, scatter):
    """Every posting of term t into `target` through `scatter` (_scatter_run or _scatter_run_marking), in runs of
    about SCATTER_RUN postings.

    WHY in two loops, not one nested loop over entries and their postings: four entries in five hold one posting
    (MS MARCO-like vectors, 32-slot blocks), so the inner loop's exit was a branch the CPU mispredicted at almost
    every entry; that cost more than the accumulator's cache misses. Here the walk over entries only writes, at
    each entry's first posting, how far its block's first slot is from the previous entry's (`deltas`, zero
    elsewhere), and the scatter runs over the postings without a branch, its block base a running sum of the
    deltas. Measured at 1M synthetic documents, one query at a time: scoring 1.5-1.6x faster on the light, heavy
    and dev query sets (`python -m benchmarks.scale search`). A flat array of absolute slots, as scipy's CSC holds,
    scores 2.0x faster again (light and heavy; both with the unsigned indices of the module docstring), at 4 bytes
    more a posting: the index would be 3.6x PISA's size. Writing each entry's absolute slots into a run buffer, 8
    at a time without a branch, instead of the deltas ran 1.6x slower (measured)."""
    _score_entries(index, t, w, target, deltas, scatter, np.int64(0), np.int64(index.bm_offsets[t * index.segments]),
                   np.int64(index.offsets[t]), NO_BLOCK_LIMIT)


NO_BLOCK_LIMIT = np.int64(2**62)


@nb.njit(cache=True, nogil=True, inline="always")
def _score_entries(index, t, w, target, deltas, scatter, h, e, p, block_limit):
    """The postings of term t from entry e of segment h on (p: its first posting) whose block is below
    block_limit into `target`, as _score_term; returns (h, e, p) of the first entry left (a slice's cursor)."""
    bm_offsets, bm_blocks, bm_counts, segments = index.bm_offsets, index.bm_blocks, index.bm_counts, index.segments
    slots, impacts, block_size = index.slots, index.impacts, np.int64(index.block_size)
    start = p
    first = np.int64(0)  # block base the running sum stands at, carried from run to run
    previous = np.int64(0)
    row = np.int64(t) * segments
    while h < segments:
        e_end = bm_offsets[row + h + 1]
        high = h << SEGMENT_BITS
        while e < e_end:
            block = high + np.int64(bm_blocks[np.uint64(e)])
            if block >= block_limit:
                break
            if p - start >= SCATTER_RUN:
                first = scatter(target, deltas, start, p, slots, impacts, w, first)
                start = p
            block_first = block * block_size
            deltas[np.uint64(p - start)] = block_first - previous
            previous = block_first
            p += np.int64(bm_counts[np.uint64(e)]) + 1
            e += 1
        if e < e_end:
            break  # the next entry's block is at block_limit or beyond
        h += 1
    scatter(target, deltas, start, p, slots, impacts, w, first)
    return h, e, p


@nb.njit(cache=True, nogil=True, inline="always")
def _scatter_run(acc, deltas, start, end, slots, impacts, w, first):
    """Postings [start, end) into acc, their block base the running sum of deltas (cleared); returns the base."""
    run_slots, run_impacts = slots[start:end], impacts[start:end]
    for j in range(end - start):
        first += deltas[j]
        deltas[j] = 0
        acc[np.uint64(first + run_slots[j])] += w * run_impacts[j]
    return first


@nb.njit(cache=True, nogil=True, inline="always")
def _scatter_run_marking(target, deltas, start, end, slots, impacts, w, first):
    """_scatter_run that also sets the bit of each slot it reaches; target = (acc, marks)."""
    acc, marks = target
    run_slots, run_impacts = slots[start:end], impacts[start:end]
    for j in range(end - start):
        first += deltas[j]
        deltas[j] = 0
        s = np.uint64(first + run_slots[j])
        acc[s] += w * run_impacts[j]
        marks[s >> np.uint64(6)] |= np.uint64(1) << (s & np.uint64(63))
    return first


@nb.njit(cache=True, nogil=True, inline="always")
def _drain_marked(acc, marks, doc_order, num_docs, base, k, top, size, theta):
    """_drain_block over the slots marked in `marks` (clearing the marks); returns (size, theta)."""
    low = max(theta, np.int64(1))
    for word_index in range(marks.shape[0]):
        word = marks[word_index]
        if word == 0:
            continue
        marks[word_index] = 0
        while word != 0:
            s = np.uint64((np.int64(word_index) << 6) + np.int64(trailing_zeros(word)))
            word &= word - np.uint64(1)  # clears the lowest set bit
            score = np.int64(acc[s])
            acc[s] = 0
            if score >= low:
                size, theta = _offer(top, size, k, score * base + np.int64(num_docs - doc_order[s]), base, theta)
                low = max(theta, np.int64(1))
    return size, theta


# From this k the sparse drain keys the top-k buffer by slot (_drain_marked_by_slot). Measured at 1M synthetic
# documents, the real MS MARCO dev queries (splade-tiny), median of 300 queries, one process: the drain alone
# 0.39 -> 0.30 ms at k=1000, 0.22 -> 0.20 at k=100, 0.17 -> 0.18 at k=10 (no gain: theta rises after a few dozen
# offers there); a whole k=1000 query 0.66 -> 0.56 ms, against the numba TAAT peer's 0.70 in the same process.
# Not in the full drain over every slot: a store per slot there made k=1000 light / heavy queries 1.05x / 1.09x
# slower (3.05 -> 3.21, 4.63 -> 5.03 ms), the plain drain's test being well predicted once theta is high.
SLOT_KEYED_K = 100


@nb.njit(cache=True, nogil=True)
def _drain_marked_by_slot(acc, marks, doc_order, num_docs, base, k, top):
    """_drain_marked from an empty buffer whose keys hold the slot, not the document: every marked slot is
    stored, unconditionally, and kept only when it can enter the top k; the document numbers are looked up
    for the survivors only. Returns (size, theta), top[:size] holding document keys as _offer's.

    WHY: at k=1000 thousands of slots enter the buffer before theta settles (about 6,000 of ~45,000 for an MS
    MARCO dev query at 1M documents). A test and a doc_order read per entry made each one a mispredicted branch
    and a cache miss; a store whose index moves only when the slot is kept costs neither. Exact all the same:
    a compaction keeps every key at or above the k-th score (ties at it included, see _compact_ties), so the
    survivors hold every slot of the final top k whatever the ties; document order decides among them at the
    end. When the ties at the k-th score would fill the buffer, the keys go over to document keys and the plain
    drain finishes the remaining slots."""
    slot_bits = np.int64(1)  # key = score << slot_bits | (slot_mask - slot): larger is better
    while (np.int64(1) << slot_bits) <= acc.shape[0]:
        slot_bits += 1
    slot_mask = (np.int64(1) << slot_bits) - 1
    cap = top.shape[0]
    low, theta, size = np.int64(1), np.int64(-1), 0
    for word_index in range(marks.shape[0]):
        word = marks[word_index]
        if word == 0:
            continue
        marks[word_index] = 0
        while word != 0:
            s = (np.int64(word_index) << 6) + np.int64(trailing_zeros(word))
            word &= word - np.uint64(1)
            score = np.int64(acc[np.uint64(s)])
            acc[np.uint64(s)] = 0
            top[np.uint64(size)] = (score << slot_bits) | (slot_mask - s)
            size += score >= low
            if size == cap:
                size, theta = _compact_ties(top, size, k, slot_bits)
                low = max(theta, np.int64(1))
                if size - k > (cap - k) // 2:  # many ties at theta: finish with document keys
                    marks[word_index] = word  # the slots of this word not drained yet
                    _slot_keys_to_doc_keys(top, size, slot_bits, slot_mask, doc_order, num_docs, base)
                    size, theta = _compact(top, size, k, base)
                    return _drain_marked(acc, marks, doc_order, num_docs, base, k, top, size, theta)
    if size > k:
        size, theta = _compact_ties(top, size, k, slot_bits)
    _slot_keys_to_doc_keys(top, size, slot_bits, slot_mask, doc_order, num_docs, base)
    return size, theta


@nb.njit(cache=True, nogil=True)
def _compact_ties(top, size, k, slot_bits):
    """Keeps the slot keys of top[:size] whose score reaches the k-th best score (k of them and every tie at
    that score), in place; returns (how many, that score)."""
    theta = np.partition(top[:size], size - k)[size - k] >> slot_bits
    floor = theta << slot_bits
    kept = 0
    for j in range(size):
        key = top[j]
        top[kept] = key
        kept += key >= floor
    return kept, theta


@nb.njit(cache=True, nogil=True, inline="always")
def _slot_keys_to_doc_keys(top, size, slot_bits, slot_mask, doc_order, num_docs, base):
    """Rewrites the slot keys of top[:size] as _offer's document keys (score x base + num_docs - document)."""
    for j in range(size):
        key = top[j]
        s = slot_mask - (key & slot_mask)
        top[j] = (key >> slot_bits) * base + np.int64(num_docs - doc_order[s])


ANCHOR_SHIFT = 5  # bm_anchors holds the posting start of every 2**ANCHOR_SHIFT-th entry


@nb.njit(cache=True, nogil=True, inline="always")
def _entry_start(bm_anchors, bm_counts, e):
    """Index of the first posting of entry e: the nearest anchor below plus the counts in between."""
    a = e >> ANCHOR_SHIFT
    p = np.int64(bm_anchors[a]) + (e - (a << ANCHOR_SHIFT))
    for j in range(a << ANCHOR_SHIFT, e):
        p += np.int64(bm_counts[np.uint64(j)])
    return p


@nb.njit(cache=True, nogil=True, inline="always")
def _drain_block(acc, first, count, doc_order, num_docs, base, k, top, size, theta):
    """Move the accumulated scores of slots [first, first + count) into the top-k buffer and clear them; returns
    (size, theta).

    WHY by chunks of DRAIN_CHUNK slots, each first tested by its maximum: about half the slots of a large query are
    non-zero, in no order, so a test per slot ("is it zero?", "can it enter the top k?") is a branch in a scalar
    loop, while a chunk's maximum is a few vector instructions and the chunk is looked at slot by slot only when
    that maximum can enter. Over many chunks the k-th largest chunk maximum is a floor under the k-th best score
    (k slots, one per chunk, reach it), so the slots below it are never offered at all: a theta from the start
    rather than one that rises through thousands of offers.
    """
    low = max(theta, np.int64(1))
    end = first + count
    n_chunks = (count + DRAIN_CHUNK - 1) // DRAIN_CHUNK
    if n_chunks < DRAIN_FLOOR_CHUNKS * k:
        for chunk_first in range(first, end, DRAIN_CHUNK):
            chunk = acc[chunk_first : min(chunk_first + DRAIN_CHUNK, end)]
            if np.int64(_chunk_max(chunk)) >= low:
                size, theta, low = _offer_chunk(chunk, chunk_first, doc_order, num_docs, base, k, top, size, theta,
                                                low)
            chunk[:] = 0
        return size, theta
    maxima = np.empty(n_chunks, dtype=acc.dtype)
    for c in range(n_chunks):
        maxima[c] = _chunk_max(acc[first + c * DRAIN_CHUNK : min(first + (c + 1) * DRAIN_CHUNK, end)])
    low = max(low, np.int64(np.partition(maxima, n_chunks - k)[n_chunks - k]))
    for c in range(n_chunks):
        if np.int64(maxima[c]) >= low:
            chunk_first = first + c * DRAIN_CHUNK
            size, theta, low = _offer_chunk(acc[chunk_first : min(chunk_first + DRAIN_CHUNK, end)], chunk_first,
                                            doc_order, num_docs, base, k, top, size, theta, low)
    acc[first:end] = 0
    return size, theta


# Slots _drain_block tests at once by their maximum (vector instructions) before looking at any one of them, and
# from how many chunks per result (DRAIN_FLOOR_CHUNKS x k) it first takes the k-th largest chunk maximum as a floor.
DRAIN_CHUNK = 64
DRAIN_FLOOR_CHUNKS = 4


@nb.njit(cache=True, nogil=True, inline="always")
def _chunk_max(chunk):
    """The largest value of a non-empty chunk (a loop LLVM turns into vector instructions)."""
    best = chunk[0]
    for j in range(1, chunk.shape[0]):
        best = max(best, chunk[j])
    return best


@nb.njit(cache=True, nogil=True, inline="always")
def _offer_chunk(chunk, chunk_first, doc_order, num_docs, base, k, top, size, theta, low):
    """The slots of one chunk (slot chunk_first onwards) scoring at least `low` into the top-k buffer, the chunk left
    as it is (_drain_block clears it); returns (size, theta, low)."""
    for j in range(chunk.shape[0]):
        score = np.int64(chunk[j])
        if score >= low:
            doc = doc_order[np.uint64(chunk_first + j)]
            size, theta = _offer(top, size, k, score * base + np.int64(num_docs - doc), base, theta)
            low = max(theta, low)
    return size, theta, low


# The top k is kept in a buffer of 2k + 16 keys rather than a heap: appending is one store, and when the buffer
# is full a linear-time partition keeps its k best and raises theta. A heap pays a sift of log k mispredicted
# branches per document that enters, and at k=1000 thousands of documents enter. Keys are unique, so the k best
# are the same either way.
@nb.njit(cache=True, nogil=True, inline="always")
def _offer(top, size, k, key, base, theta):
    """Appends a packed key; returns (size, theta), theta being -1 until the buffer is first cut to k keys."""
    top[size] = key
    size += 1
    if size == top.shape[0]:
        return _compact(top, size, k, base)
    return size, theta


@nb.njit(cache=True, nogil=True)
def _compact(top, size, k, base):
    """Keeps the k largest of top[:size] in top[:k]; returns (k, their smallest score) = (size, theta)."""
    kept = np.partition(top[:size], size - k)[size - k :]
    top[:k] = kept
    return k, kept[0] // base


@nb.njit(cache=True, nogil=True)
def _settle(top, size, k, base, theta):
    """theta as tight as the keys gathered so far allow (k of them or more), for pruning decisions."""
    if size > k:
        return _compact(top, size, k, base)
    if size == k:
        return size, top[:k].min() // base
    return size, theta


@nb.njit(cache=True, nogil=True)
def _write_top(top, size, k, base, num_docs, out_docs, out_scores):
    """The k best keys as (doc, score) rows, best first; returns how many."""
    keys = np.sort(top[:size])
    n = min(k, size)
    for i in range(n):
        key = keys[size - 1 - i]
        score = key // base
        out_scores[i] = score
        out_docs[i] = num_docs - (key - score * base)
    return n


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


@nb.njit(cache=True, nogil=True, inline="always")
def _bucket(bound, n_buckets, max_ub):
    """Bucket of an upper bound in step 2's counting sort: 0 holds the largest bounds."""
    return n_buckets - 1 - (bound * n_buckets) // (max_ub + 1)


# Step 4 scores every posting once candidates make up at least this fraction (numerator, denominator) of the
# touched blocks.
DENSE_FRACTION = (1, 2)
# Step 3 looks blocks up until it has done 1/LOOKUP_COST as many look-ups as step 1 read block maxima (a look-up
# costs tens of sequential reads). Measured at 1M synthetic documents (make bench data, 300 queries per set):
# 16 -> 48 cut k=1000 heavy queries from 15.5 to 11.9 ms with k=10 unchanged (2.2 ms).
LOOKUP_COST = 48


# The steps below are inlined into block_search (numba inline="always": one compiled function, as before the
# split). Measured, not assumed: as separate compiled functions, k=10 pruned search of the heavy synthetic queries
# at 100k documents was 11 % slower (0.62 against 0.55 ms, paired in one process); inlined, within 3 % either way.
# _score_all stays a function of its own (see there).
@nb.njit(cache=True, nogil=True)
def block_search(index, q_terms, q_weights, k, alpha, scratch, top, out_docs, out_scores, stats):
    """Top k of one query by block-max pruning (the four steps of the module docstring); exact when alpha == 1.

    `scratch` is one row of new_scratch (left as found); `stats` one row of NUM_STATS counters it adds to
    (STAT_BLOCKS_SCORED, STAT_POSTINGS_SCORED, STAT_MAXIMA_READ). Returns how many results it wrote.
    """
    base = np.int64(index.num_docs + 1)
    n_touched, maxima_read = _upper_bounds(index, q_terms, q_weights, scratch)
    starts, max_ub = _sort_blocks(scratch, n_touched)
    size, theta, n_scored, postings, stop_at = _score_best_blocks(index, q_terms, q_weights, k, alpha, scratch,
                                                                  n_touched, maxima_read, starts, max_ub, top)
    size, theta = _settle(top, size, k, base, theta)
    if stop_at >= 0:
        size, theta, n_scored, more = _score_remaining(index, q_terms, q_weights, k, alpha, scratch, n_touched,
                                                       stop_at, n_scored, top, size, theta)
        postings += more
    n_out = _write_top(top, size, k, base, index.num_docs, out_docs, out_scores)
    for i in range(n_touched):
        blk = scratch.touched_blocks[i]
        scratch.ub[blk] = 0
        scratch.flag[blk] = NOT_CANDIDATE
    stats[STAT_BLOCKS_SCORED] += n_scored
    stats[STAT_POSTINGS_SCORED] += postings
    stats[STAT_MAXIMA_READ] += maxima_read
    return n_out


@nb.njit(cache=True, nogil=True, inline="always")
def _upper_bounds(index, q_terms, q_weights, scratch):
    """Step 1: scratch.ub[b] = sum of weight x block maximum over the query terms in block b (term at a time
    over the block maxima); the blocks reached go to scratch.touched_blocks. Returns (blocks reached, maxima read)."""
    bm_offsets, bm_blocks, bm_max, segments = index.bm_offsets, index.bm_blocks, index.bm_max, index.segments
    ub, touched_blocks = scratch.ub, scratch.touched_blocks
    n_touched = 0
    maxima_read = np.int64(0)
    for i in range(q_terms.shape[0]):
        row = np.int64(q_terms[i]) * segments
        w = np.int64(q_weights[i])
        maxima_read += bm_offsets[row + segments] - bm_offsets[row]
        for h in range(segments):
            high = np.int64(h) << SEGMENT_BITS
            for e in range(bm_offsets[row + h], bm_offsets[row + h + 1]):
                blk = np.uint64(high + np.int64(bm_blocks[np.uint64(e)]))
                if ub[blk] == 0:
                    touched_blocks[np.uint64(n_touched)] = blk
                    n_touched += 1
                ub[blk] += w * np.int64(bm_max[np.uint64(e)])
    return n_touched, maxima_read


@nb.njit(cache=True, nogil=True, inline="always")
def _sort_blocks(scratch, n_touched):
    """Step 2: the touched blocks into scratch.order by descending bound, a counting sort on the bound's top bits
    (step 3 sorts exactly inside the buckets it reaches). Returns (bucket starts in order [buckets + 1], the
    largest bound)."""
    ub, touched_blocks, order = scratch.ub, scratch.touched_blocks, scratch.order
    max_ub = np.int64(0)
    for i in range(n_touched):
        if ub[touched_blocks[i]] > max_ub:
            max_ub = ub[touched_blocks[i]]
    n_buckets = 1
    while n_buckets < n_touched and n_buckets < 4096:
        n_buckets *= 2
    starts = np.zeros(n_buckets + 1, dtype=np.int64)
    for i in range(n_touched):
        starts[_bucket(ub[touched_blocks[i]], n_buckets, max_ub) + 1] += 1
    for j in range(n_buckets):
        starts[j + 1] += starts[j]
    fill = starts[:-1].copy()
    for i in range(n_touched):
        blk = touched_blocks[i]
        bkt = _bucket(ub[blk], n_buckets, max_ub)
        order[fill[bkt]] = blk
        fill[bkt] += 1
    return starts, max_ub


@nb.njit(cache=True, nogil=True, inline="always")
def _score_best_blocks(index, q_terms, q_weights, k, alpha, scratch, n_touched, maxima_read, starts, max_ub, top):
    """Step 3: best-bound blocks first, each scored by looking up every query term's entry in it, until no bound
    (x alpha) reaches the k-th score, or until looking up costs more than walking the remaining entries.

    Returns (size, theta, blocks scored, postings scored, stop_at): stop_at is where the look-up budget ran out in
    scratch.order (step 4 goes on from there), or -1 when no remaining bound reaches theta (nothing left to do).
    """
    bm_offsets, bm_blocks, bm_counts, bm_anchors = index.bm_offsets, index.bm_blocks, index.bm_counts, index.bm_anchors
    segments = index.segments
    slots, impacts, doc_order = index.slots, index.impacts, index.doc_order
    block_size, num_docs = np.int64(index.block_size), index.num_docs
    ub, order = scratch.ub, scratch.order
    nq = q_terms.shape[0]
    n_blocks = np.int64(ub.shape[0])
    n_buckets = starts.shape[0] - 1
    base = np.int64(num_docs + 1)
    k_blocks = (k + block_size - 1) // block_size  # the fewest blocks that can hold k documents
    min_budget = np.int64(8) + k_blocks
    budget = max(np.int64(8), maxima_read // (nq * LOOKUP_COST)) + k_blocks
    size = 0
    theta = np.int64(-1)
    n_scored = 0
    postings = np.int64(0)
    block_acc = np.zeros(block_size, dtype=np.int64)
    for bkt in range(n_buckets):
        a, b = starts[bkt], starts[bkt + 1]
        if a == b:
            continue
        # Exact order inside the buckets scored here only; the rest of `order` stays bucket-sorted.
        keys = np.empty(b - a, dtype=np.int64)
        for j in range(a, b):
            blk = np.int64(order[j])
            keys[j - a] = ub[blk] * (n_blocks + 1) + (n_blocks - blk)
        keys.sort()
        for j in range(b - a):
            key = keys[b - a - 1 - j]
            bound = key // (n_blocks + 1)
            order[a + j] = n_blocks - (key - bound * (n_blocks + 1))
        for j in range(a, b):
            blk = np.int64(order[j])
            if ub[blk] * alpha < theta:
                return size, theta, n_scored, postings, -1
            if n_scored >= budget:
                return size, theta, n_scored, postings, j
            if n_scored == min_budget:
                # Enough blocks for a first theta: if nearly all touched blocks still reach it (bucket counts, an
                # overestimate by one bucket), more look-ups will not make step 4 sparse; go there now.
                size, theta = _settle(top, size, k, base, theta)
                if theta >= 0:
                    reach = np.int64(np.ceil(theta / alpha))
                    if starts[_bucket(min(reach, max_ub), n_buckets, max_ub) + 1] * 10 >= n_touched * 9:
                        return size, theta, n_scored, postings, j
            n_scored += 1
            h = blk >> SEGMENT_BITS
            low = blk - (h << SEGMENT_BITS)
            for i in range(nq):
                row = np.int64(q_terms[i]) * segments + h
                e = _find_entry(bm_blocks, bm_offsets[row], bm_offsets[row + 1], low)
                if e >= 0:
                    w = np.int64(q_weights[i])
                    a0 = _entry_start(bm_anchors, bm_counts, e)
                    a1 = a0 + np.int64(bm_counts[e]) + 1
                    for p in range(a0, a1):
                        block_acc[np.uint64(slots[np.uint64(p)])] += w * np.int64(impacts[np.uint64(p)])
                    postings += a1 - a0
            first = blk * block_size
            for s in range(block_size):
                if block_acc[s] > 0:
                    size, theta = _offer(top, size, k, block_acc[s] * base + np.int64(num_docs - doc_order[first + s]),
                                         base, theta)
                    block_acc[s] = 0
            if size >= k + (k >> 3):  # a partition per block would cost more than it saves at large k
                size, theta = _settle(top, size, k, base, theta)
    return size, theta, n_scored, postings, -1


@nb.njit(cache=True, nogil=True, inline="always")
def _score_remaining(index, q_terms, q_weights, k, alpha, scratch, n_touched, stop_at, n_scored, top, size, theta):
    """Step 4: the blocks after scratch.order[stop_at] whose bound (x alpha) reaches theta, term at a time.

    They are gathered (in bucket order, so roughly best bound first: theta rises early) at
    order[stop_at : stop_at + n_cand]. Returns (size, theta, blocks scored in all, postings scored here).
    """
    ub, order = scratch.ub, scratch.order
    n_cand = 0
    for j in range(stop_at, n_touched):
        blk = order[j]
        if ub[blk] * alpha >= theta:
            order[stop_at + n_cand] = blk
            n_cand += 1
    if n_cand * DENSE_FRACTION[1] >= n_touched * DENSE_FRACTION[0]:
        size, theta, postings = _score_every_posting(index, q_terms, q_weights, k, scratch, n_touched, stop_at, top,
                                                     size, theta)
        return size, theta, n_touched, postings
    if n_cand > 0:
        size, theta, postings = _score_candidates(index, q_terms, q_weights, k, scratch, stop_at, n_cand, top, size,
                                                  theta)
        return size, theta, n_scored + n_cand, postings
    return size, theta, n_scored, np.int64(0)


@nb.njit(cache=True, nogil=True, inline="always")
def _score_every_posting(index, q_terms, q_weights, k, scratch, n_touched, stop_at, top, size, theta):
    """Step 4 when most touched blocks are candidates: scoring every posting without a per-entry test is cheaper
    (that test is a branch the CPU mispredicts). Blocks scored in step 3 (order[:stop_at]) are cleared, not drained
    again; the others are drained whether candidates or not (a non-candidate cannot beat theta).
    Returns (size, theta, postings scored)."""
    acc, order, touched_blocks = scratch.acc, scratch.order, scratch.touched_blocks
    block_size, num_docs, doc_order = np.int64(index.block_size), index.num_docs, index.doc_order
    n_blocks = np.int64(scratch.ub.shape[0])
    base = np.int64(num_docs + 1)
    postings = _score_all(index, q_terms, q_weights, acc)
    for j in range(stop_at):
        blk = np.int64(order[j])  # the blocks step 3 scored
        acc[blk * block_size : (blk + 1) * block_size] = 0
    if n_touched * 2 >= n_blocks:  # one pass over all slots: no per-block calls, no jumps
        size, theta = _drain_block(acc, 0, n_blocks * block_size, doc_order, num_docs, base, k, top, size, theta)
    else:
        for i in range(n_touched):
            blk = np.int64(touched_blocks[i])
            size, theta = _drain_block(acc, blk * block_size, block_size, doc_order, num_docs, base, k, top, size,
                                       theta)
    return size, theta, postings


@nb.njit(cache=True, nogil=True, inline="always")
def _score_candidates(index, q_terms, q_weights, k, scratch, stop_at, n_cand, top, size, theta):
    """Step 4 when few blocks are candidates (order[stop_at : stop_at + n_cand]): flag them, walk every query
    term's entries and score those in flagged blocks, then drain the candidates. Returns (size, theta, postings)."""
    bm_offsets, bm_blocks, offsets, bm_counts = index.bm_offsets, index.bm_blocks, index.offsets, index.bm_counts
    slots, impacts, doc_order, segments = index.slots, index.impacts, index.doc_order, index.segments
    block_size, num_docs = np.int64(index.block_size), index.num_docs
    acc, flag, order = scratch.acc, scratch.flag, scratch.order
    base = np.int64(num_docs + 1)
    postings = np.int64(0)
    for j in range(stop_at, stop_at + n_cand):
        flag[order[j]] = CANDIDATE
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        w = np.int64(q_weights[i])
        a1 = np.int64(offsets[t])
        row = np.int64(t) * segments
        for h in range(segments):
            high = np.int64(h) << SEGMENT_BITS
            for e in range(bm_offsets[row + h], bm_offsets[row + h + 1]):
                a0 = a1
                a1 = a0 + np.int64(bm_counts[np.uint64(e)]) + 1
                blk = high + np.int64(bm_blocks[np.uint64(e)])
                if flag[np.uint64(blk)] == CANDIDATE:
                    postings += a1 - a0
                    first = blk * block_size
                    entry_slots, entry_impacts = slots[a0:a1], impacts[a0:a1]
                    for p in range(a1 - a0):  # no branch per posting: the scan below finds the documents
                        acc[np.uint64(first + entry_slots[p])] += w * entry_impacts[p]
    for j in range(stop_at, stop_at + n_cand):
        size, theta = _drain_block(acc, np.int64(order[j]) * block_size, block_size, doc_order, num_docs, base, k,
                                   top, size, theta)
    return size, theta, postings


def new_scratch(num_chunks: int, num_docs: int, block_size: int, acc_dtype=np.int64) -> Scratch:
    """Per-chunk scratch arrays of `search_batch` (rows [num_chunks, ...]), allocated once per index: zeroing an
    accumulator of a million slots for every call would cost more than a pruned query. An int32 accumulator (half
    the cache footprint) is for queries whose largest possible score fits in it.

    Returns:
        A Scratch whose arrays hold what its field comments say between queries (accumulator and bounds zero).
    """
    n_blocks = max(1, (num_docs + block_size - 1) // block_size)
    n_slots = n_blocks * block_size
    return Scratch(acc=np.zeros((num_chunks, n_slots), dtype=acc_dtype),
                   ub=np.zeros((num_chunks, n_blocks), dtype=np.int64),
                   flag=np.full((num_chunks, n_blocks), NOT_CANDIDATE, dtype=np.uint8),
                   touched_blocks=np.empty((num_chunks, n_blocks), dtype=np.int32),
                   order=np.empty((num_chunks, n_blocks), dtype=np.int32),
                   marks=np.zeros((num_chunks, n_slots // 64 + 1 if n_slots >= SPARSE_DRAIN_MIN_SLOTS else 0),
                                  dtype=np.uint64))


@nb.njit(cache=True, nogil=True)
def _search_chunk(c, index, queries, k, alpha, exhaustive_band, slice_slots, scratch, results, stats):
    """The queries c, c + chunks, ... (chunks = rows of scratch) with row c of the scratch arrays and of stats."""
    num_chunks = scratch.acc.shape[0]
    row = Scratch(scratch.acc[c], scratch.ub[c], scratch.flag[c], scratch.touched_blocks[c], scratch.order[c],
                  scratch.marks[c])
    top = np.empty(2 * k + 16, dtype=np.int64)  # the top-k buffer (see _offer)
    for q in range(c, queries.indptr.shape[0] - 1, num_chunks):
        a, b = queries.indptr[q], queries.indptr[q + 1]
        if exhaustive_band[0] <= _postings_of(index, queries.terms[a:b]) < exhaustive_band[1]:
            results.counts[q] = exhaustive_search(index, queries.terms[a:b], queries.weights[a:b], k, row, top,
                                                  results.docs[q], results.scores[q], slice_slots)
        else:
            results.counts[q] = block_search(index, queries.terms[a:b], queries.weights[a:b], k, alpha, row, top,
                                             results.docs[q], results.scores[q], stats[c])


@nb.njit(cache=True, parallel=True)
def search_batch(index, queries, k, alpha, exhaustive_band, slice_slots, scratch, results, stats):
    """Many queries over all cores: chunk c of the queries (one per row of `scratch`) uses row c of the scratch
    arrays and of stats.

    Args:
        index: IndexArrays of the loaded index.
        queries: Queries (quantised CSR rows, positive integer weights).
        k: results per query. alpha: 1 for exact pruned search, below for approximate.
        exhaustive_band: (lo, hi) int64: a query whose postings p satisfy lo <= p < hi is searched by scoring every
            posting, the others by pruning ((0, 2**62): all exhaustive; (0, 0): all pruned).
        slice_slots: accumulator slots exhaustive search scores and drains at a time (0: all; see SLICE_SLOTS).
        scratch: Scratch of new_scratch(chunks, ...), left as found.
        results: Results of [n, k] rows that receive the top k of each query (and counts[q] how many).
        stats: int64 [chunks, NUM_STATS], added to (pruned search only).
    """
    for c in nb.prange(scratch.acc.shape[0]):
        _search_chunk(c, index, queries, k, alpha, exhaustive_band, slice_slots, scratch, results, stats)


@nb.njit(cache=True, nogil=True)
def search_serial(index, queries, k, alpha, exhaustive_band, slice_slots, scratch, results, stats):
    """search_batch on the calling thread alone: waking numba's thread pool costs more than a pruned query, and
    on a busy machine much more (the pool's threads wait for a core)."""
    for c in range(scratch.acc.shape[0]):
        _search_chunk(c, index, queries, k, alpha, exhaustive_band, slice_slots, scratch, results, stats)
