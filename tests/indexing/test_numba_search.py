"""Block-max pruned search returns exactly what scoring every posting returns; its approximate mode degrades
monotonically with its one knob; old index folders are refused with a clear message."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from contracts.encoded import read_encoded
from indexing.numba_index.build import build_index_from_matrix
from indexing.numba_index.index import FORMAT_VERSION, ImpactIndex
from tests.reference import quantized, top_k


def topical_collection(seed: int, num_docs: int = 3000, vocab: int = 400, num_queries: int = 40):
    """Documents around latent topics (topic terms weigh 4..6, background terms 1..2): skewed scores, as in real
    SPLADE, and small integers, so that exact ties are frequent."""
    rng = np.random.default_rng(seed)
    topics = [rng.choice(vocab, size=25, replace=False) for _ in range(30)]
    popular = 1.0 / np.arange(1, vocab + 1)
    popular /= popular.sum()

    def draw(n, lo, hi, max_weight):
        rows = []
        for _ in range(n):
            topic = topics[rng.integers(len(topics))]
            background = rng.choice(vocab, size=rng.integers(lo, hi), p=popular)
            weights = {int(t): int(rng.integers(1, 3)) for t in background}
            for t in rng.choice(topic, size=rng.integers(lo, hi)):
                weights[int(t)] = int(rng.integers(max_weight, max_weight + 3))
            terms = np.array(sorted(weights))
            rows.append((terms, np.array([weights[t] for t in terms])))
        indptr = np.cumsum([0] + [t.size for t, _ in rows])
        return sp.csr_matrix((np.concatenate([w for _, w in rows]).astype(np.float32),
                              np.concatenate([t for t, _ in rows]), indptr), shape=(n, vocab))

    return draw(num_docs, 5, 30, 4), draw(num_queries, 2, 8, 2)


@pytest.fixture(scope="module")
def random_indexes(tmp_path_factory):
    docs, queries = topical_collection(7)
    out = {}
    for reorder in ("top-terms", "none"):
        folder = tmp_path_factory.mktemp(f"random-{reorder}") / "index"
        out[reorder] = build_index_from_matrix(docs, [f"d{i}" for i in range(docs.shape[0])], folder, None,
                                               {"model": "random"}, scale=1.0, block_size=16, reorder=reorder,
                                               progress=False)
    return docs, queries, out


def assert_same(found, expected):
    docs, scores, counts = found
    for i, (exp_docs, exp_scores) in enumerate(expected):
        assert counts[i] == len(exp_docs), f"query {i}: {counts[i]} results, expected {len(exp_docs)}"
        np.testing.assert_array_equal(scores[i, : counts[i]], exp_scores, err_msg=f"query {i} scores")
        np.testing.assert_array_equal(docs[i, : counts[i]], exp_docs, err_msg=f"query {i} documents (tie order)")


@pytest.mark.parametrize("reorder", ["top-terms", "none"])
@pytest.mark.parametrize("k", [1, 3, 10, 1000])
def test_pruned_equals_brute_force_on_random_collection(random_indexes, reorder, k):
    docs, queries, indexes = random_indexes
    index = indexes[reorder]
    expected = top_k(queries, docs, k)
    assert any(len(e[0]) == k for e in expected)  # the cut at k falls inside the matching documents
    # batch over two threads
    assert_same(index.search_arrays(queries, k, quantized=True, threads=2, method="pruned"), expected)
    assert_same(index.search_arrays(queries, k, quantized=True, method="exhaustive"), expected)
    for i in range(queries.shape[0]):  # one query at a time, on the calling thread
        d, s, c = index.search_arrays(queries[i], k, quantized=True, threads=1, method="pruned")
        assert_same((d, s, c), expected[i : i + 1])


def test_pruning_skips_work_and_ties_are_frequent(random_indexes):
    docs, queries, indexes = random_indexes
    index = indexes["top-terms"]
    pruned = np.zeros(3, np.int64)
    index.search_arrays(queries, 10, quantized=True, threads=1, stats=pruned, method="pruned")
    touched = sum(int(index.offsets[t + 1] - index.offsets[t]) for t in queries.indices)
    assert pruned[1] < 0.7 * touched, f"pruned search scored {pruned[1]} of {touched} postings"
    _, scores, counts = index.search_arrays(queries, 10, quantized=True, method="pruned")
    assert any(len(set(scores[i, : counts[i]])) < counts[i] for i in range(len(counts)))  # ties are exercised


@pytest.mark.parametrize("k", [10, 1000])
def test_pruned_equals_brute_force_on_cranfield(cranfield_index, cranfield_encoded, cranfield_queries, k):
    _, matrix = cranfield_queries
    index = cranfield_index
    _, encoded = read_encoded(cranfield_encoded)
    q = index.quantize_queries(matrix)
    expected = top_k(quantized(matrix, index.scale), quantized(encoded, index.scale, index.manifest["bits"]), k)
    assert_same(index.search_arrays(q, k, quantized=True, method="pruned"), expected)
    assert_same(index.search_arrays(q[:20], k, quantized=True, threads=1, method="pruned"), expected[:20])
    hits = index.search(matrix[:3], k)  # the public API: external ids, float scores
    assert [h[0] for h in hits[0]] == [index.doc_ids[d] for d in expected[0][0]]


def test_approximate_overlap_is_monotone_in_alpha(cranfield_index, cranfield_queries):
    _, matrix = cranfield_queries
    index = cranfield_index
    exact_docs, exact_scores, exact_counts = index.search_arrays(matrix, 10)
    overlaps, scored = [], []
    for alpha in (0.2, 0.4, 0.6, 0.8, 0.9, 1.0):
        stats = np.zeros(3, np.int64)
        docs, scores, counts = index.search_arrays(matrix, 10, alpha=alpha, stats=stats, method="pruned")
        overlap = np.mean([len(set(docs[i, : counts[i]]) & set(exact_docs[i, : exact_counts[i]]))
                           / max(1, exact_counts[i])
                           for i in range(len(counts))])
        # Approximate results are real documents with their true scores, never worse than the exact k-th.
        assert (scores[:, 0] <= exact_scores[:, 0]).all()
        overlaps.append(overlap)
        scored.append(stats[1])
    print("top-10 overlap at alpha 0.2 .. 1.0:", [round(o, 3) for o in overlaps])
    assert overlaps == sorted(overlaps), overlaps
    assert scored == sorted(scored), scored
    assert overlaps[-1] == 1.0 and overlaps[0] < 1.0


def test_alpha_out_of_range_is_refused(cranfield_index, cranfield_queries):
    with pytest.raises(ValueError, match="alpha"):
        cranfield_index.search_arrays(cranfield_queries[1][:1], 10, alpha=0.0)
    with pytest.raises(ValueError, match="method"):
        cranfield_index.search_arrays(cranfield_queries[1][:1], 10, method="wand")


def test_old_format_version_is_refused(random_indexes, tmp_path):
    import shutil

    _, _, indexes = random_indexes
    copy = tmp_path / "old"
    shutil.copytree(indexes["none"].path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION - 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"version {FORMAT_VERSION - 1}.*rebuild"):
        ImpactIndex.load(copy)


def test_block_size_must_fit_a_byte(tmp_path):
    docs, _ = topical_collection(1, num_docs=50, num_queries=1)
    with pytest.raises(ValueError, match="block size"):
        build_index_from_matrix(docs, [str(i) for i in range(50)], tmp_path / "i", None, {}, scale=1.0, block_size=300,
                                progress=False)


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_exhaustive_marked_and_full_drains_equal_brute_force(random_indexes, k, monkeypatch):
    """Exhaustive search drains either the slots it marked (queries with few postings) or every slot: both ways
    return the exact top k, and the queries below reach both ways (kernels.SPARSE_DRAIN; the marks are allocated
    here although this index is below SPARSE_DRAIN_MIN_SLOTS)."""
    from indexing.numba_index import kernels
    from indexing.numba_index.kernels import SPARSE_DRAIN

    monkeypatch.setattr(kernels, "SPARSE_DRAIN_MIN_SLOTS", 0)
    docs, _, indexes = random_indexes
    index = indexes["top-terms"]
    monkeypatch.setattr(index, "_scratch", {})  # scratch made now, with marks
    df = np.diff(index.offsets)
    slots = -(-index.num_docs // index.block_size) * index.block_size
    terms = np.argsort(df)[::-1]  # most postings first
    rows = [terms[:40], terms[:2], *[[t] for t in terms[df[terms] > 0][-6:]], terms[100:130]]  # heavy .. light
    queries = sp.vstack([sp.csr_matrix((np.arange(1, len(r) + 1, dtype=np.float32) % 5 + 1,
                                        (np.zeros(len(r), int), np.sort(r))), shape=(1, docs.shape[1])) for r in rows])
    marked = [int(df[np.asarray(r)].sum()) * SPARSE_DRAIN[1] < slots * SPARSE_DRAIN[0] for r in rows]
    assert any(marked) and not all(marked)
    expected = top_k(queries, docs, k)
    assert_same(index.search_arrays(queries, k, quantized=True, threads=1, method="exhaustive"), expected)
    assert_same(index.search_arrays(queries, k, quantized=True, threads=2, method="exhaustive"), expected)
    # The accumulator and the marks are left clear: the same queries again, in reverse order, give the same rows.
    again = index.search_arrays(queries[::-1], k, quantized=True, threads=1, method="exhaustive")
    assert_same(again, expected[::-1])


def search_in_slices(arrays, queries, k, slice_slots, acc_dtype):
    """kernels._score_and_drain_by_slice on each query row, as search_arrays' (docs, scores, counts); asserts that
    the accumulator is left clear after every query."""
    from indexing.numba_index import kernels

    acc = kernels.new_scratch(1, arrays.num_docs, arrays.block_size, acc_dtype).acc[0]
    base = np.int64(arrays.num_docs + 1)
    top = np.empty(2 * k + 16, dtype=np.int64)
    n = queries.shape[0]
    found_docs, found_scores, counts = np.zeros((n, k), np.int32), np.zeros((n, k), np.int64), np.zeros(n, np.int64)
    for i in range(n):
        row = queries[i]
        size, _ = kernels._score_and_drain_by_slice(arrays, row.indices.astype(np.int32), row.data.astype(np.int64),
                                                    acc, base, k, top, slice_slots)
        counts[i] = kernels._write_top(top, size, k, base, arrays.num_docs, found_docs[i], found_scores[i])
        assert not acc.any(), f"slices of {slice_slots}: accumulator left dirty by query {i}"
    return found_docs, found_scores, counts


def test_index_past_65536_blocks_equals_brute_force(tmp_path):
    """Blocks past 65,536 are kept in segments (bm_blocks uint16, the high part in bm_offsets): pruned (one query
    and batches), exhaustive whole and in accumulator slices, k=10 and k=1000, exact against brute force; approximate
    search returns the documents' true scores."""
    rng = np.random.default_rng(8)
    docs = sp.random(150_000, 50, density=0.04, random_state=rng, format="csr", dtype=np.float32)
    docs.data = rng.integers(1, 8, docs.nnz).astype(np.float32)
    queries = sp.random(12, 50, density=0.12, random_state=rng, format="csr", dtype=np.float32)
    queries.data = rng.integers(1, 4, queries.nnz).astype(np.float32)
    index = build_index_from_matrix(docs, [f"d{i}" for i in range(docs.shape[0])], tmp_path / "index", None,
                                    {"model": "random"}, scale=1.0, block_size=2, progress=False)
    assert index.block_segments == 2 and index.bm_blocks.dtype == np.uint16
    arrays = index._kernel_arrays()
    for k in (10, 1000):
        expected = top_k(queries, docs, k)
        assert_same(index.search_arrays(queries, k, quantized=True, threads=2, method="pruned"), expected)
        assert_same(index.search_arrays(queries, k, quantized=True, threads=1, method="exhaustive"), expected)
        assert_same(search_in_slices(arrays, queries, k, 3 * 2**14 + 6, np.int64), expected)
    found_docs, found_scores, counts = index.search_arrays(queries, 10, quantized=True, method="pruned", alpha=0.5)
    scores = (docs @ queries.T).toarray()
    for i in range(queries.shape[0]):  # approximate: true scores of real documents, each block found whole
        assert counts[i] == 10
        np.testing.assert_array_equal(found_scores[i], scores[found_docs[i], i])


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_exhaustive_search_in_accumulator_slices_equals_brute_force(random_indexes, k):
    """Beyond the last-level cache the full drain scores and drains the accumulator a slice at a time, each
    term's cursor carried across slices: the exact top k for slices of one block, of a few blocks (a size that
    is not a multiple of the block size is cut down to one), and larger than the whole accumulator; the
    accumulator is left clear."""
    docs, queries, indexes = random_indexes
    index = indexes["top-terms"]
    expected = top_k(queries, docs, k)
    for slice_slots in (index.block_size, 3 * index.block_size + 5, 2**20):
        assert_same(search_in_slices(index._kernel_arrays(), queries, k, slice_slots, np.int32), expected)


def test_index_beyond_the_cache_searches_exhaustively_in_slices(random_indexes, monkeypatch):
    """ImpactIndex hands the kernels a slice size when the accumulator is larger than the last-level cache (here
    made 0 bytes): the exhaustive search through it is exact, on one thread and on two."""
    from indexing.numba_index import index as index_module
    from indexing.numba_index import kernels

    docs, queries, indexes = random_indexes
    index = indexes["top-terms"]
    monkeypatch.setattr(index_module, "last_level_cache_bytes", lambda: 0)
    monkeypatch.setattr(kernels, "SLICE_SLOTS", 3 * index.block_size)
    for k in (10, 1000):
        expected = top_k(queries, docs, k)
        for threads in (1, 2):
            assert_same(index.search_arrays(queries, k, quantized=True, threads=threads, method="exhaustive"), expected)


def test_entry_lookup_matches_searchsorted():
    """The interpolation + gallop lookup of a block among a term's blocks, against numpy on random lists."""
    from indexing.numba_index.kernels import _find_entry

    rng = np.random.default_rng(0)
    for _ in range(300):
        n_blocks = int(rng.integers(1, 300))
        blocks = np.sort(rng.choice(n_blocks, size=int(rng.integers(0, n_blocks + 1)), replace=False)).astype(np.uint16)
        pad = int(rng.integers(0, 5))  # other terms' entries around this one's
        arr = np.concatenate([np.full(pad, 7, np.uint16), blocks, np.full(3, 2, np.uint16)])
        present = set(blocks.tolist())
        for blk in range(n_blocks + 2):
            expected = pad + int(np.searchsorted(blocks, blk)) if blk in present else -1
            assert _find_entry(arr, pad, pad + blocks.size, blk) == expected


def test_build_quantisation_equals_quantize():
    """The one-pass quantisation of the build is DESIGN.md's round(w * scale), clipped, zeros dropped."""
    from indexing.base import quantize
    from indexing.numba_index.layout import quantize_rows

    rng = np.random.default_rng(3)
    m = sp.random(200, 300, density=0.05, format="csr", random_state=4, dtype=np.float32)
    m.data = (m.data * 3).astype(np.float32)
    m.data[::7] = 0.001  # rounds to zero: dropped
    for bits, dtype in ((8, np.uint8), (16, np.uint16)):
        scale = float(rng.uniform(50, 120)) if bits == 8 else 20000.0
        fast, ref = quantize_rows(m, scale, bits, dtype), quantize(m, scale, bits)
        ref.sort_indices()
        np.testing.assert_array_equal(fast.indptr, ref.indptr)
        np.testing.assert_array_equal(fast.indices, ref.indices)
        np.testing.assert_array_equal(fast.data, ref.data)


@pytest.mark.parametrize("block_size", [16, 256])
def test_layout_holds_every_posting_once(tmp_path, block_size):
    """Walking each term's entries (counts, from offsets[t]) and jumping to any entry (anchors) both give back the
    term's column of the corpus, full blocks of 256 postings included (a count stored minus one in a byte)."""
    from indexing.numba_index.kernels import _entry_start

    docs, _ = topical_collection(11, num_docs=700)
    docs = docs.tolil()
    docs[:, 3] = 5.0  # one term in every document: entries of block_size postings
    docs = docs.tocsr()
    index = build_index_from_matrix(docs, [str(i) for i in range(docs.shape[0])], tmp_path / "i", None, {}, scale=1.0,
                                    block_size=block_size, progress=False)
    csc = sp.csc_matrix(docs)
    csc.sort_indices()
    for t in range(docs.shape[1]):
        p, found = int(index.offsets[t]), []
        for e in range(int(index.bm_offsets[t]), int(index.bm_offsets[t + 1])):
            assert _entry_start(index.bm_anchors, index.bm_counts, e) == p, f"term {t} entry {e}"
            n = int(index.bm_counts[e]) + 1
            slots = int(index.bm_blocks[e]) * block_size + index.slots[p : p + n].astype(np.int64)
            found += list(zip(index.doc_order[slots].tolist(), index.impacts[p : p + n].tolist()))
            assert index.bm_max[e] == index.impacts[p : p + n].max()
            p += n
        assert p == index.offsets[t + 1]
        col = csc[:, t]
        assert sorted(found) == list(zip(col.indices.tolist(), col.data.astype(int).tolist())), f"term {t}"
    assert int(index.bm_counts.max()) == min(block_size, docs.shape[0]) - 1


# ------------------------------------------------------------------------------------------- method="auto"


@pytest.mark.parametrize("k_at_100k", [16, 10**7])  # the measured rule; one that keeps every k here pruned
@pytest.mark.parametrize("k", [1, 10, 1000])
def test_auto_method_equals_pruned_and_exhaustive(random_indexes, monkeypatch, k_at_100k, k):
    import indexing.numba_index.index as numba_index

    monkeypatch.setattr(numba_index, "AUTO_K_AT_100K", k_at_100k)
    docs, queries, indexes = random_indexes
    index = indexes["top-terms"]
    expected = top_k(queries, docs, k)
    chosen = index.resolve_method("auto", k)
    assert chosen == ("exhaustive" if k_at_100k == 16 else "pruned")  # 3,000 documents: exhaustive from k = 1
    for threads in (1, 2):
        stats = np.zeros(3, np.int64)
        auto = index.search_arrays(queries, k, quantized=True, threads=threads, stats=stats)  # the default: auto
        assert (stats.sum() > 0) == (chosen == "pruned")  # the kernel that ran is the one chosen
        assert_same(auto, expected)
        for method in ("pruned", "exhaustive"):
            forced = index.search_arrays(queries, k, quantized=True, threads=threads, method=method)
            for a, b in zip(auto, forced):
                np.testing.assert_array_equal(a, b)


def test_auto_method_per_query_postings(random_indexes, monkeypatch):
    """Below the k cut, "auto" searches exhaustively exactly the queries whose postings fall in AUTO_POSTINGS_BAND
    (pruned search adds to the stats, exhaustive does not), the results unchanged, and none beyond the cache."""
    import indexing.numba_index.index as numba_index

    monkeypatch.setattr(numba_index, "AUTO_K_AT_100K", 10**7)  # every k pruned by the k rule
    docs, queries, indexes = random_indexes
    index = indexes["top-terms"]
    postings = np.diff(index.offsets)[queries.indices]
    per_query = np.add.reduceat(postings, queries.indptr[:-1]) * (np.diff(queries.indptr) > 0)
    low, high = sorted(np.percentile(per_query, [25, 75]).astype(int))
    monkeypatch.setattr(numba_index, "AUTO_POSTINGS_BAND", (low / index.num_docs, high / index.num_docs))
    band = index._exhaustive_band("auto", "pruned", 1.0)
    assert abs(band[0] - low) <= 1 and abs(band[1] - high) <= 1
    inside = (band[0] <= per_query) & (per_query < band[1])
    assert 0 < inside.sum() < len(inside)
    for q in range(queries.shape[0]):
        stats = np.zeros(3, np.int64)
        auto = index.search_arrays(queries[q], 10, quantized=True, threads=1, stats=stats)
        assert (stats.sum() == 0) == bool(inside[q]), f"query {q}: {per_query[q]} postings, band {band}"
        assert_same(auto, top_k(queries[q], docs, 10))
    assert index._exhaustive_band("pruned", "pruned", 1.0) == (0, 0)  # forced stays forced
    assert index._exhaustive_band("auto", "pruned", 0.8) == (0, 0)  # approximate is pruned
    monkeypatch.setattr(numba_index, "last_level_cache_bytes", lambda: 1024)  # beyond the cache: no band
    assert index._exhaustive_band("auto", "pruned", 1.0) == (0, 0)


def test_auto_method_from_its_cut_scores_every_posting_beyond_the_cache_too(random_indexes, monkeypatch):
    """From the k cut "auto" scores every posting of every query (pruned search adds to the stats, exhaustive does
    not), beyond the last-level cache as within it, and the results stay exact."""
    import indexing.numba_index.index as numba_index

    docs, queries, indexes = random_indexes
    index = indexes["top-terms"]
    k = 2 * index.auto_exhaustive_k  # from the cut: "auto" resolves to exhaustive
    assert index.resolve_method("auto", k) == "exhaustive"
    for cache in (1024, 2**40):
        monkeypatch.setattr(numba_index, "last_level_cache_bytes", lambda cache=cache: cache)
        assert index._exhaustive_band("auto", "exhaustive", 1.0) == (0, 2**62)
        stats = np.zeros(3, np.int64)
        for q in range(queries.shape[0]):
            assert_same(index.search_arrays(queries[q], k, quantized=True, threads=1, stats=stats),
                        top_k(queries[q], docs, k))
        assert stats.sum() == 0, f"cache of {cache} bytes: some queries were pruned"
    assert index._exhaustive_band("pruned", "pruned", 1.0) == (0, 0)  # forced stays forced


def test_auto_method_rule(random_indexes, monkeypatch):
    from indexing.numba_index import index as index_module
    from indexing.numba_index.index import AUTO_K_AT_100K, AUTO_K_BEYOND_CACHE

    index = random_indexes[2]["top-terms"]
    assert index.auto_exhaustive_k == 1  # 3,000 documents
    index_100k = ImpactIndex(**{**index.__dict__, "manifest": {**index.manifest, "num_docs": 100_000}})
    assert index_100k.auto_exhaustive_k == AUTO_K_AT_100K
    assert index_100k.resolve_method("auto", AUTO_K_AT_100K - 1) == "pruned"
    assert index_100k.resolve_method("auto", AUTO_K_AT_100K) == "exhaustive"
    assert index_100k.resolve_method("auto", 1000, alpha=0.8) == "pruned"  # approximate search is pruned search
    assert index_100k.resolve_method("pruned", 10_000) == "pruned"  # a forced method stays forced
    index_8m = ImpactIndex(**{**index.__dict__, "manifest": {**index.manifest, "num_docs": 8_841_823}})
    # an accumulator within the cache (a 64 MiB L3): the cut of the formula, 577 at MS MARCO's size
    monkeypatch.setattr(index_module, "last_level_cache_bytes", lambda: 64 * 2**20)
    assert index_8m.auto_exhaustive_k == 577
    assert index_8m.resolve_method("auto", 10) == "pruned" and index_8m.resolve_method("auto", 1000) == "exhaustive"
    # beyond it (35 MB of int32 against 32 MiB): the cut moves up, and k = 1000 is still searched exhaustively
    monkeypatch.setattr(index_module, "last_level_cache_bytes", lambda: 32 * 2**20)
    assert index_8m.auto_exhaustive_k == round(16 * 88.41823 ** 0.8 * AUTO_K_BEYOND_CACHE) == 866
    assert index_8m.resolve_method("auto", 800) == "pruned" and index_8m.resolve_method("auto", 1000) == "exhaustive"
    assert index_100k.auto_exhaustive_k == AUTO_K_AT_100K  # 400 KB: within any cache


# ------------------------------------------------------------------------------------ damaged index folders


def _copy(index, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(index.path, copy)
    return copy


@pytest.mark.parametrize("name, damage, expected", [
    ("slots", lambda a: a[:-1], r"slots\.npy: expected [\d,]+ values, found"),
    ("doc_order", lambda a: a[:-3], r"doc_order\.npy: expected [\d,]+ values, found"),
    ("impacts", lambda a: a.astype(np.float32), r"impacts\.npy: expected dtype uint8, found float32"),
    ("bm_counts", lambda a: a[:-1], r"bm_counts\.npy: expected [\d,]+ values"),
])
def test_array_of_another_length_or_dtype_is_refused(random_indexes, tmp_path, name, damage, expected):
    copy = _copy(random_indexes[2]["top-terms"], tmp_path)
    np.save(copy / f"{name}.npy", damage(np.load(copy / f"{name}.npy")))
    for mmap in (False, True):
        with pytest.raises(ValueError, match=expected):
            ImpactIndex.load(copy, mmap=mmap)


@pytest.mark.parametrize("name, damage, expected", [
    ("doc_order", lambda a: np.where(a == 0, 1, a), r"doc_order\.npy: expected a permutation"),
    ("slots", lambda a: np.where(np.arange(a.size) == 5, 200, a).astype(np.uint8), r"slots\.npy: expected slots below"),
    ("offsets", lambda a: a[::-1].copy(), r"offsets\.npy: expected [\d,]+ non-decreasing offsets"),
    ("bm_blocks", lambda a: np.sort(a), r"bm_blocks\.npy: expected block numbers ascending"),
    ("bm_anchors", lambda a: a + np.uint32(1), r"bm_anchors\.npy: expected the posting start"),
])
def test_array_breaking_a_kernel_bound_is_refused(random_indexes, tmp_path, name, damage, expected):
    """Same length and dtype (the manifest's record holds), but a value the kernels would index out of bounds by,
    or that would silently mis-rank: refused on load, naming the file."""
    copy = _copy(random_indexes[2]["top-terms"], tmp_path)
    array = np.load(copy / f"{name}.npy")
    damaged = damage(array).astype(array.dtype)
    assert damaged.shape == array.shape and not np.array_equal(damaged, array)
    np.save(copy / f"{name}.npy", damaged)
    with pytest.raises(ValueError, match=expected):
        ImpactIndex.load(copy)


def test_verify_finds_changed_content_and_check_command_says_so(random_indexes, tmp_path, capsys):
    from pipelines.cli import main

    index = random_indexes[2]["top-terms"]
    assert all(index.verify().values())
    assert main(["check", "--index", str(index.path)]) == 0
    assert "all 10 arrays match" in capsys.readouterr().out
    copy = _copy(index, tmp_path)
    impacts = np.load(copy / "impacts.npy")
    impacts[7] = impacts[7] % 3 + 1  # a changed weight: every length, dtype and bound still holds
    np.save(copy / "impacts.npy", impacts)
    verified = ImpactIndex.load(copy).verify()
    assert [name for name, ok in verified.items() if not ok] == ["impacts"]
    assert main(["check", "--index", str(copy)]) == 2
    assert "impacts.npy differs" in capsys.readouterr().err


def test_index_path_that_is_a_file_is_refused(random_indexes, tmp_path):
    index = random_indexes[2]["none"]
    with pytest.raises(ValueError, match=r"this is the manifest; pass the index folder itself"):
        ImpactIndex.load(index.path / "manifest.json")
    with pytest.raises(ValueError, match="a file; expected the index folder"):
        ImpactIndex.load(index.path / "doc_ids.txt")
    with pytest.raises(FileNotFoundError, match="no such index folder"):
        ImpactIndex.load(tmp_path / "nothing-here")


def test_index_larger_than_memory_suggests_mmap(random_indexes, monkeypatch):
    import indexing.base
    from indexing.base import IndexTooLargeError

    index = random_indexes[2]["none"]
    monkeypatch.setattr(indexing.base, "_available_memory", lambda: 1000)
    with pytest.raises(IndexTooLargeError, match=r"needs 0\.\d+ GiB .* mmap=True.*--mmap"):
        ImpactIndex.load(index.path)
    mapped = ImpactIndex.load(index.path, mmap=True)  # mapped, it loads and answers the same
    q = random_indexes[1]
    for a, b in zip(mapped.search_arrays(q, 10, quantized=True), index.search_arrays(q, 10, quantized=True)):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------------------- queries with no content


@pytest.mark.parametrize("text", ["\u200b\u200b\u200b", "\U0001F600\U0001F389", " \u200b "])
def test_query_without_content_is_refused_by_id(encoder, cranfield_index, text):
    from retrieval.search import retrieve

    queries = [("q1", "what is the boundary layer"), ("q-empty", text)]
    with pytest.raises(ValueError, match=r"query q-empty .* has no content"):
        retrieve(encoder, cranfield_index, queries, k=10, progress=False)


def test_query_without_positive_weight_is_refused_by_id(encoder, cranfield_index):
    """A query whose weights all round to zero at the index's scale matches nothing: refused, named."""
    from retrieval.search import retrieve

    queries = [("q1", "boundary layer"), ("q2", "heat transfer")]
    vectors = encoder.encode_queries([t for _, t in queries]).tolil()
    vectors[1] = vectors[1] * (0.4 / cranfield_index.scale / max(vectors[1].toarray().max(), 1e-9))
    with pytest.raises(ValueError, match=r"query q2 .* no positive weight at the index's scale"):
        retrieve(encoder, cranfield_index, queries, k=10, progress=False, vectors=sp.csr_matrix(vectors))


def test_retrieve_command_mmap_and_methods_write_the_same_run(cranfield_index, cranfield, splade_tiny_path, tmp_path):
    """`splade retrieve --mmap` (mapped arrays) and every --method give the run of the default (auto, in memory)."""
    from pipelines.cli import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "queries.tsv").write_text("\n".join(cranfield.queries_path.read_text().splitlines()[:8]) + "\n")
    (data / "corpus.jsonl").write_text(cranfield.corpus_path.read_text())
    common = ["retrieve", "--model", str(splade_tiny_path), "--dataset", str(data),
              "--index", str(cranfield_index.path), "--k", "20"]
    runs = {}
    for name, extra in {"auto": [], "mmap": ["--mmap"], "pruned": ["--method", "pruned"],
                        "exhaustive": ["--method", "exhaustive", "--mmap"]}.items():
        assert main([*common, "--output", str(tmp_path / f"{name}.trec"), *extra]) == 0
        runs[name] = (tmp_path / f"{name}.trec").read_text()
    assert runs["auto"].count("\n") == 8 * 20
    assert runs["mmap"] == runs["auto"] == runs["pruned"] == runs["exhaustive"]
