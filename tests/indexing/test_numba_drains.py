"""The two drains of exhaustive search's marked slots give the same top k: the plain one (a document key per entry)
and the slot-keyed one of large k (kernels._drain_marked_by_slot), whatever the ties, including those that fill its
buffer and send it over to the plain drain half-way. Both leave the accumulator and the marks clear; the full drain
over every slot is checked against the same expectation, and over a range of slots by itself: with many chunks per
result it starts from the k-th largest chunk maximum (kernels.DRAIN_FLOOR_CHUNKS), which must lose no tie."""
from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from indexing.numba_index import kernels


def drained(by_slot: bool, marked: bool, acc: np.ndarray, marks: np.ndarray, doc_order: np.ndarray, k: int):
    """(documents, scores) of the top k a drain finds, best first; acc (and marks, when `marked`) are drained in
    place."""
    num_docs = doc_order.shape[0]
    base = np.int64(num_docs + 1)
    top = np.empty(2 * k + 16, dtype=np.int64)  # the buffer _search_chunk gives the kernels
    if marked and by_slot:
        size, _ = kernels._drain_marked_by_slot(acc, marks, doc_order, num_docs, base, k, top)
    elif marked:
        size, _ = kernels._drain_marked(acc, marks, doc_order, num_docs, base, k, top, 0, np.int64(-1))
    else:
        size, _ = kernels._drain_block(acc, 0, acc.shape[0], doc_order, num_docs, base, k, top, 0, np.int64(-1))
    docs, scores = np.empty(k, dtype=np.int32), np.empty(k, dtype=np.int64)
    n = kernels._write_top(top, size, k, base, num_docs, docs, scores)
    return docs[:n], scores[:n]


@settings(max_examples=200, deadline=None)
@given(num_docs=st.integers(1, 3000), density=st.floats(0.0, 1.0), top_score=st.sampled_from([1, 3, 50, 10**6]),
       k=st.sampled_from([1, 2, 7, 100, 1000]), seed=st.integers(0, 2**32 - 1))
@example(num_docs=3000, density=1.0, top_score=1, k=100, seed=0)  # ties fill the buffer: the hand-over to the plain
@example(num_docs=3000, density=0.5, top_score=10**6, k=100, seed=1)  # few ties: compactions, no hand-over
def test_slot_keyed_drains_equal_plain_drains(num_docs, density, top_score, k, seed):
    rng = np.random.default_rng(seed)
    acc = np.zeros(num_docs, dtype=np.int32)
    reached = np.flatnonzero(rng.random(num_docs) < density)
    acc[reached] = rng.integers(0, top_score + 1, reached.shape[0])  # a reached slot may score 0 (impact 0)
    marks = np.zeros(num_docs // 64 + 1, dtype=np.uint64)
    np.bitwise_or.at(marks, reached >> 6, np.uint64(1) << (reached & 63).astype(np.uint64))
    doc_order = rng.permutation(num_docs).astype(np.int32)  # ties go by document, not by slot

    positive = acc > 0
    expected_order = np.lexsort((doc_order[positive], -acc[positive].astype(np.int64)))[:k]
    expected = doc_order[positive][expected_order], acc[positive][expected_order].astype(np.int64)
    for marked, by_slot in ((True, False), (True, True), (False, False)):
        a, m = acc.copy(), marks.copy()
        docs, scores = drained(by_slot, marked, a, m, doc_order, k)
        np.testing.assert_array_equal(scores, expected[1], err_msg=f"marked={marked}, by_slot={by_slot}")
        np.testing.assert_array_equal(docs, expected[0], err_msg=f"marked={marked}, by_slot={by_slot}")
        assert not a.any() and (not marked or not m.any())


@settings(max_examples=150, deadline=None)
@given(num_docs=st.integers(1, 40_000), first=st.integers(0, 200), density=st.floats(0.0, 1.0),
       top_score=st.sampled_from([1, 3, 50, 10**6]), k=st.sampled_from([1, 2, 7, 100, 1000]),
       seed=st.integers(0, 2**32 - 1))
@example(num_docs=40_000, first=0, density=1.0, top_score=1, k=7, seed=0)  # every slot ties at the floor
@example(num_docs=40_000, first=131, density=0.05, top_score=3, k=100, seed=1)  # a floor of few distinct scores
@example(num_docs=30_000, first=0, density=0.5, top_score=10**6, k=2, seed=2)  # a range ending mid-chunk
def test_full_drain_of_a_range_equals_sorting(num_docs, first, density, top_score, k, seed):
    rng = np.random.default_rng(seed)
    first = min(first, num_docs - 1)
    count = int(rng.integers(1, num_docs - first + 1))
    acc = np.zeros(num_docs, dtype=np.int64 if top_score > 50 else np.int32)
    reached = np.flatnonzero(rng.random(num_docs) < density)
    acc[reached] = rng.integers(0, top_score + 1, reached.shape[0])
    doc_order = rng.permutation(num_docs).astype(np.int32)
    window = slice(first, first + count)
    positive = np.flatnonzero(acc[window] > 0) + first
    order = np.lexsort((doc_order[positive], -acc[positive].astype(np.int64)))[:k]
    outside = np.concatenate([acc[:first], acc[first + count:]])

    base = np.int64(num_docs + 1)
    top = np.empty(2 * k + 16, dtype=np.int64)
    a = acc.copy()
    size, _ = kernels._drain_block(a, first, count, doc_order, num_docs, base, k, top, 0, np.int64(-1))
    docs, scores = np.empty(k, dtype=np.int32), np.empty(k, dtype=np.int64)
    n = kernels._write_top(top, size, k, base, num_docs, docs, scores)
    np.testing.assert_array_equal(scores[:n], acc[positive[order]].astype(np.int64))
    np.testing.assert_array_equal(docs[:n], doc_order[positive[order]])
    assert not a[window].any()
    np.testing.assert_array_equal(np.concatenate([a[:first], a[first + count:]]), outside)
