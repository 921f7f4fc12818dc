"""The numba impact index, loaded: its arrays checked against the manifest, read into memory (or mapped), searched.

Folder layout:
  manifest.json   format and version, vocabulary size and hash, number of docs and postings, scale, bits, model,
                  block size, and the length, dtype and sha256 of every array ("arrays", indexing.base.describe_arrays)
  offsets.npy     int64 [vocab + 1]: postings of term t are [offsets[t], offsets[t+1])
  slots.npy       uint8 position of each posting's document inside its block (documents sit in "slots")
  impacts.npy     uint8 / uint16 quantised weights, round(w * scale), zeros dropped
  term_max.npy    largest impact of each term
  doc_order.npy   int32 internal document number of each slot (documents grouped by their heavy terms)
  bm_offsets.npy  int64 [vocab x segments + 1]: block entries of term t in segment h (blocks h x 65,536 to
                  (h + 1) x 65,536 - 1) are [bm_offsets[t x segments + h], bm_offsets[t x segments + h + 1]);
                  segments (manifest "block_segments") is 1 up to 65,536 blocks
  bm_blocks.npy   uint16 blocks of `block_size` slots holding the term, ascending, less their segment's start
  bm_max.npy      the term's largest impact in each of those blocks (the block maxima)
  bm_counts.npy   uint8 postings of each entry minus one (a term's postings follow its entries in order)
  bm_anchors.npy  uint32 (int64 past 2**32 postings) first posting of every 32nd entry, for jumps to an entry
  doc_ids.txt     external document id of each internal number, one per line
  vocab.json      token strings in id order

Search is exact either way: block-max pruning ("pruned") or every posting ("exhaustive"); "auto", the default,
picks the one measured faster for the k asked and the collection's size (`ImpactIndex.auto_exhaustive_k`), then
below that k by each query's postings (AUTO_POSTINGS_BAND).
`alpha` < 1 makes pruned search approximate.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
import numpy as np
import scipy.sparse as sp

from indexing.base import (
    ARRAYS_KEY,
    QuantizedIndex,
    check_arrays,
    check_memory,
    directory_size,
    open_index_folder,
    read_doc_ids,
    verify_arrays,
)
from indexing.numba_index import kernels, layout

logger = logging.getLogger(__name__)

__all__ = ["ARRAYS", "AUTO_K_AT_100K", "AUTO_K_EXPONENT", "AUTO_POSTINGS_BAND",
           "DEFAULT_BLOCK_SIZE", "FORMAT", "FORMAT_VERSION", "METHODS", "ImpactIndex"]

FORMAT = "splade-impact-index"
# 2 -> 3: per-entry posting starts (4 bytes) became counts (1 byte) plus anchors.
# 3 -> 4: the manifest records every array's length, dtype and sha256, checked on load.
# 4 -> 5: bm_blocks is uint16 at every size, its high part in segments of bm_offsets (it was int32 past 65,536
#         blocks: 2.4x PISA's size at 3M and 8.84M documents, now 1.9x). Indexes of up to 65,536 blocks are the
#         same bytes as before, but every index records its segments.
FORMAT_VERSION = 5
ARRAYS = ("offsets", "slots", "impacts", "term_max", "doc_order", "bm_offsets", "bm_blocks", "bm_max", "bm_counts",
          "bm_anchors")
DEFAULT_BLOCK_SIZE = 32
METHODS = ("auto", "pruned", "exhaustive")
# "auto" scores every posting once k reaches AUTO_K_AT_100K x (num_docs / 100,000) ** AUTO_K_EXPONENT (exact
# either way). WHY k against the collection size: pruning pays for its bounds, its sort and its look-ups only
# while the k-th score is high enough to skip most blocks, and the deeper k reaches into the collection, the lower
# that score. Measured on the seeded synthetic collection of `make bench` (one query at a time, CPU time, light
# and heavy query sets): pruned and exhaustive cost the same near k = 16 at 100k documents and near k = 100 at 1M
# (pruned 7.7 / 15.2 ms against exhaustive 8.6 / 13.6 ms at k = 100, light / heavy); on the TREC DL 2019 pool
# (30k splade-tiny documents) exhaustive was the faster at k = 10 already (0.29 against 0.33 ms). The rule puts
# the cut at k = 6 for 30k documents, 16 for 100k, 101 for 1M and 577 for MS MARCO's 8.8M.
AUTO_K_AT_100K = 16
AUTO_K_EXPONENT = 0.8
# Beyond the last-level cache the cut moves up AUTO_K_BEYOND_CACHE times. WHY: measured at 8.84M documents (an
# int32 accumulator of 35 MB against a 32 MiB L3; `make bench-scale`, idle machine, one query at a time, the
# branch-free exhaustive pass): at k = 1000 exhaustive was 1.04x / 1.20x / 1.06x faster than pruned (dev 12.9
# against 13.4 ms, light 53.6 / 64.6, heavy 102.2 / 108.0), at k = 10 pruned 2.0-5.4x faster, so the cut lies
# just below 1000 there: 866 with this factor (k between 10 and 1000 not measured at that size).
AUTO_K_BEYOND_CACHE = 1.5
# Below its cut, "auto" still scores every posting of each query whose postings per document lie in
# AUTO_POSTINGS_BAND (a fraction of the documents: from 0 to a fifth), while the accumulator fits the last-level
# cache. WHY: measured at 1M synthetic documents on the idle machine, k=10, query by query (dev, light and prefixes
# of heavy queries, pruned and exhaustive paired; `python -m benchmarks.scale crossover --docs 1000000`), the
# branch-free exhaustive pass took 0.75-0.97x the pruned time below 0.2 postings per document (the MS MARCO dev
# queries have 0.04 on average) and 1.8-3.3x above.
AUTO_POSTINGS_BAND = (0.0, 0.2)
# From its cut "auto" scores every posting of every query, beyond the last-level cache too. Measured at 8.84M
# documents (AMD EPYC, 32 MiB L3, `python -m benchmarks.scale crossover --docs 8841823`, query by query, best of 3),
# k=1000, exhaustive against pruned time: with the kernels of before the unsigned indices (kernels.py) 1.03-1.43x
# below 0.2 postings per document, 1.23-1.69x in [0.2, 0.5) and 0.57-0.68x from 0.5 on, so only queries from 0.5
# postings per document were searched exhaustively there; with them 0.74-0.83x below 0.2 (the MS MARCO dev queries
# among them), 0.76-1.05x in [0.2, 0.5) and 0.52-0.57x from 0.5 on: exhaustive for all.
_DEFAULT_CACHE_BYTES = 32 * 2**20  # where the kernel does not say (an L3 of today's server CPUs)
_DOC_ID_BYTES = 80  # memory of one external id in a Python list (object, pointer, a short string), for check_memory


@functools.cache
def last_level_cache_bytes() -> int:
    """The largest CPU cache's size, from Linux's sysfs; 32 MiB where it cannot be read (another OS, a VM hiding it).

    Returns:
        Bytes.
    """
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        try:
            sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
        except (ValueError, IndexError):
            continue
    return max(sizes, default=_DEFAULT_CACHE_BYTES)


@dataclass
class ImpactIndex(QuantizedIndex):
    """A loaded numba impact index: the arrays (in memory or memory-mapped) and the manifest that says how to read them.

    Implements `indexing.base.SearchableIndex`, so `retrieval.retrieve()` takes it.
    """

    path: Path
    manifest: dict
    offsets: np.ndarray
    slots: np.ndarray
    impacts: np.ndarray
    term_max: np.ndarray
    doc_order: np.ndarray
    bm_offsets: np.ndarray
    bm_blocks: np.ndarray
    bm_max: np.ndarray
    bm_counts: np.ndarray
    bm_anchors: np.ndarray
    doc_ids: list[str]
    # Scratch arrays per thread count, reused across calls (one search at a time per ImpactIndex object).
    _scratch: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path, mmap: bool = False) -> ImpactIndex:
        """Reads an index folder into memory, or with mmap=True maps it (for an index larger than the RAM).

        Every array is checked against the manifest (length, dtype) and for the bounds the kernels rely on
        (offsets, slots, blocks, the document order), so a damaged or partial copy is refused here instead of
        crashing or silently mis-ranking in search. `verify()` also compares content checksums.

        WHY not mapped by default: pruned search jumps around the arrays, and a mapped file pays a page fault
        on the first touch of every 4 KiB page and a TLB miss on most jumps after that. At 1M documents that
        made a k=10 query 2-4x slower (8.9 vs 2.2 ms) than the same arrays read into memory.

        Args:
            path: the index folder (the one holding manifest.json).
            mmap: map the arrays instead of reading them.

        Returns:
            The loaded index.

        Raises:
            FileNotFoundError: no folder, manifest or array file there.
            ValueError: `path` is a file, the manifest is of another format or version, or an array does not match
                the manifest or breaks a bound (the message names the file and what was expected).
            indexing.base.IndexTooLargeError: without mmap, the arrays need more memory than is available.
        """
        path, manifest = open_index_folder(path, FORMAT, FORMAT_VERSION, "index",
                                           "rebuild the index with `splade index`")
        if not mmap:
            check_memory(path, _memory_needed(manifest))
        arrays = {name: _load_array(path / f"{name}.npy", mmap) for name in ARRAYS}
        check_arrays(path, manifest, arrays)
        _check_bounds(path, manifest, arrays)
        doc_ids = read_doc_ids(path, int(manifest["num_docs"]))
        return cls(path=path, manifest=manifest, doc_ids=doc_ids, **arrays)

    def verify(self) -> dict[str, bool]:
        """Recomputes the sha256 of every array and compares it with the manifest (for a copied index).

        Returns:
            {array name: True when its content is what the build wrote}.
        """
        return verify_arrays(self.path, self.manifest, {name: getattr(self, name) for name in ARRAYS})

    @property
    def doc_freqs(self) -> np.ndarray:
        """Number of documents holding each term (for FLOPS)."""
        return np.diff(np.asarray(self.offsets))

    @property
    def block_size(self) -> int:
        """Slots per block of the block-max layout."""
        return int(self.manifest["block_size"])

    @property
    def block_segments(self) -> int:
        """Segments of 65,536 blocks that bm_offsets splits each term's entries into (layout.SEGMENT_BITS)."""
        return int(self.manifest["block_segments"])

    def size_bytes(self) -> int:
        """Bytes on disk of the whole index folder.

        Returns:
            The folder's size in bytes.
        """
        return directory_size(self.path)

    def resolve_method(self, method: str, k: int, alpha: float = 1.0) -> str:
        """The search method "auto" stands for at this k ("pruned" or "exhaustive"); others unchanged.

        Approximate search (alpha < 1) is pruned search by definition, so "auto" keeps it pruned.

        Args:
            method: "auto", "pruned" or "exhaustive".
            k: results per query.
            alpha: the approximation knob (1 = exact).

        Returns:
            "pruned" or "exhaustive".

        Raises:
            ValueError: an unknown method.
        """
        if method not in METHODS:
            raise ValueError(f"unknown search method {method!r}; expected one of {METHODS}")
        if method != "auto":
            return method
        return "exhaustive" if k >= self.auto_exhaustive_k and alpha == 1.0 else "pruned"

    @property
    def auto_exhaustive_k(self) -> int:
        """The smallest k that method "auto" searches exhaustively (see AUTO_K_AT_100K, AUTO_K_BEYOND_CACHE)."""
        cut = AUTO_K_AT_100K * (self.num_docs / 100_000) ** AUTO_K_EXPONENT
        if not self._accumulator_fits_cache():
            cut *= AUTO_K_BEYOND_CACHE
        return max(1, round(cut))

    def _accumulator_fits_cache(self, acc_dtype=np.int32) -> bool:
        """Whether one accumulator of the index (one slot a document) fits the last-level cache: the rule behind
        "auto" (int32, its measured crossovers) and the accumulator slices (the dtype searched with)."""
        return self.num_docs * np.dtype(acc_dtype).itemsize <= last_level_cache_bytes()

    def search(self, queries: sp.csr_matrix, k: int = 1000, quantized: bool = False, alpha: float = 1.0,
               method: str = "auto", threads: int | None = None) -> list[list[tuple[str, float]]]:
        """Top-k documents of each query row, best first, ties by index order; exact unless alpha < 1.

        Args:
            queries: float query vectors over the index's vocabulary (or integer weights with quantized=True).
            k: documents per query.
            quantized: the queries already carry the index's integer weights.
            alpha: below 1, approximate pruned search (see search_arrays).
            method: "auto" (the faster exact method for this k), "pruned" or "exhaustive".
            threads: chunks of queries searched in parallel (default: numba's thread count).

        Returns:
            For each query, [(external doc id, integer score as float), ...].

        Raises:
            ValueError: bad k, alpha or method, or queries of another vocabulary size.
        """
        docs, scores, counts = self.search_arrays(queries, k, quantized, threads=threads, alpha=alpha, method=method)
        ids = self.doc_ids
        return [[(ids[d], float(s)) for d, s in zip(docs[i, : counts[i]], scores[i, : counts[i]])]
                for i in range(len(counts))]

    def search_arrays(self, queries: sp.csr_matrix, k: int = 1000, quantized: bool = False, threads: int | None = None,
                      alpha: float = 1.0, method: str = "auto",
                      stats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k as arrays: what `search` returns, with internal document numbers.

        Args:
            queries, k, quantized, threads: as in `search`.
            alpha: pruned search scores a block only while alpha x its upper bound reaches the k-th best score so
                far: exact at 1, approximate below.
            method: "auto", "pruned" (block-max pruning) or "exhaustive" (every posting); all exact at alpha 1.
            stats: if given, an int64 array of kernels.NUM_STATS that receives the blocks scored, postings scored
                and block maxima read (kernels.STAT_*), summed over the queries (pruned search only).

        Returns:
            (internal doc numbers int32 [n, k], scores int64 [n, k], counts int64 [n]); rows shorter than k padded.

        Raises:
            ValueError: k < 1, alpha outside (0, 1], an unknown method, or queries of another vocabulary size.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1] (1 = exact), got {alpha}")
        requested, method = method, self.resolve_method(method, k, alpha)
        if not quantized:
            q = self.quantize_queries(queries)
        else:  # a CSR matrix as it is: re-checking its format cost ~25 us a call (measured)
            q = queries if isinstance(queries, sp.csr_matrix) else sp.csr_matrix(queries)
        n = q.shape[0]
        results = kernels.Results(docs=np.zeros((n, k), dtype=np.int32), scores=np.zeros((n, k), dtype=np.int64),
                                  counts=np.zeros(n, dtype=np.int64))
        if n == 0:
            return results
        chunks = max(1, min(n, threads or nb.get_num_threads()))
        batch = kernels.Queries(indptr=q.indptr.astype(np.int64), terms=q.indices.astype(np.int32),
                                weights=q.data.astype(np.int64))
        chunk_stats = np.zeros((chunks, kernels.NUM_STATS), dtype=np.int64)
        # Largest score any of these queries can reach: within int32, the accumulator takes half the cache. One query
        # (the latency path) by a dot product: the per-row sums cost ~8 us more (measured).
        term_max = self.term_max[batch.terms].astype(np.float64)
        if n == 1:
            largest = float(np.abs(batch.weights) @ term_max)
        else:
            largest = float(np.bincount(np.repeat(np.arange(n), np.diff(batch.indptr)), minlength=n,
                                        weights=np.abs(batch.weights) * term_max).max(initial=0))
        acc_dtype = np.int32 if largest < 2**31 - 1 else np.int64
        scratch = self._scratch.get((chunks, acc_dtype))
        if scratch is None:
            scratch = self._scratch[(chunks, acc_dtype)] = kernels.new_scratch(chunks, self.num_docs, self.block_size,
                                                                               acc_dtype)
        run = kernels.search_serial if chunks == 1 else kernels.search_batch
        # beyond the cache, a slice at a time (measured: kernels.SLICE_SLOTS)
        slice_slots = 0 if self._accumulator_fits_cache(acc_dtype) else kernels.SLICE_SLOTS
        run(self._kernel_arrays(), batch, k, float(alpha), self._exhaustive_band(requested, method, alpha), slice_slots,
            scratch, results, chunk_stats)
        if stats is not None:
            stats += chunk_stats.sum(axis=0)
        return results

    def _exhaustive_band(self, requested: str, method: str, alpha: float) -> tuple[int, int]:
        """Postings (lo, hi) of the queries kernels.search_batch searches exhaustively: all for "exhaustive" (forced,
        or "auto" from its cut), none for a forced "pruned"; for "auto" below its cut those in AUTO_POSTINGS_BAND
        while the accumulator fits the last-level cache (none beyond it)."""
        if method == "exhaustive":
            return 0, 2**62
        if requested != "auto" or alpha != 1.0 or not self._accumulator_fits_cache():
            return 0, 0
        return int(self.num_docs * AUTO_POSTINGS_BAND[0]), int(self.num_docs * AUTO_POSTINGS_BAND[1])

    def _kernel_arrays(self) -> kernels.IndexArrays:
        return kernels.IndexArrays(
            bm_offsets=self.bm_offsets, bm_blocks=self.bm_blocks, bm_max=self.bm_max, offsets=self.offsets,
            bm_counts=self.bm_counts, bm_anchors=self.bm_anchors, slots=self.slots, impacts=self.impacts,
            doc_order=self.doc_order, block_size=self.block_size, num_docs=self.num_docs,
            segments=self.block_segments,
        )


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (a partial copy of the index?); rebuild the index")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy array ({e}); rebuild the index") from None


def _memory_needed(manifest: dict) -> int:
    """Bytes that reading the index takes: its arrays (from the manifest's record) and the external ids."""
    arrays = manifest.get(ARRAYS_KEY) or {}
    total = sum(int(a["length"]) * np.dtype(a["dtype"]).itemsize for a in arrays.values())
    return total + int(manifest["num_docs"]) * _DOC_ID_BYTES


_CHUNK = 1 << 24  # elements per step of the bound checks: a multi-GB mapped array is never copied whole


def _check_bounds(path: Path, manifest: dict, a: dict[str, np.ndarray]) -> None:
    """The invariants the kernels index by without checking (O(n) numpy, in chunks); ValueError naming the file.

    A violation would make a kernel read or write outside an array (a crash, or heap corruption) or silently
    give wrong results; the manifest's lengths and dtypes are already checked.
    """
    def bad(name: str, what: str) -> ValueError:
        return ValueError(f"{path / (name + '.npy')}: expected {what} (a damaged or mixed copy?); rebuild the index")

    vocab, num_docs = int(manifest["vocab_size"]), int(manifest["num_docs"])
    num_postings, block_size = int(manifest["num_postings"]), int(manifest["block_size"])
    n_blocks = max(1, -(-num_docs // block_size))
    segments = layout.block_segments(num_docs, block_size)
    if manifest.get("block_segments") != segments:
        raise ValueError(f"{path / 'manifest.json'}: expected block_segments {segments} for {num_docs:,} documents "
                         f"in blocks of {block_size} (a damaged or mixed copy?); rebuild the index")
    if a["bm_blocks"].dtype != np.uint16:
        raise bad("bm_blocks", "uint16 block numbers")
    num_entries = a["bm_blocks"].shape[0]
    bits_dtype = {8: "uint8", 16: "uint16"}[int(manifest["bits"])]
    for name in ("impacts", "term_max", "bm_max"):
        if a[name].dtype.name != bits_dtype:
            raise bad(name, f"{bits_dtype} values ({manifest['bits']} bits)")
    for name, end, length in (("offsets", num_postings, vocab + 1), ("bm_offsets", num_entries, vocab * segments + 1)):
        arr = a[name]
        if arr.shape[0] != length or int(arr[0]) != 0 or int(arr[-1]) != end or not _ascending(arr):
            raise bad(name, f"{length:,} non-decreasing offsets from 0 to {end:,}")
    for name in ("slots", "impacts"):
        if a[name].shape[0] != num_postings:
            raise bad(name, f"{num_postings:,} values, one per posting")
    for name in ("bm_max", "bm_counts"):
        if a[name].shape[0] != num_entries:
            raise bad(name, f"{num_entries:,} values, one per block entry (as bm_blocks.npy)")
    if a["term_max"].shape[0] != vocab:
        raise bad("term_max", f"{vocab:,} values, one per term")
    if a["bm_anchors"].shape[0] != num_entries // (1 << kernels.ANCHOR_SHIFT) + 1:
        raise bad("bm_anchors", f"{num_entries // (1 << kernels.ANCHOR_SHIFT) + 1:,} anchors")
    if _chunked_max(a["slots"]) >= block_size:
        raise bad("slots", f"slots below the block size {block_size}")
    if int(a["bm_counts"].shape[0]) and _chunked_max(a["bm_counts"]) >= block_size:
        raise bad("bm_counts", f"counts below the block size {block_size}")
    order = a["doc_order"]
    if order.shape[0] != num_docs or not _is_permutation(order, num_docs):
        raise bad("doc_order", f"a permutation of the {num_docs:,} internal document numbers")
    # Each term's entries hold exactly its postings, every anchor is the posting start of its entry, and block
    # numbers ascend within a term: one pass in numba, since numpy's reduceat would copy bm_counts to int64 (8 bytes
    # an entry: 5.5 GiB more at MS MARCO size, measured).
    problem = _entry_problem(np.asarray(a["offsets"]), np.asarray(a["bm_offsets"]), segments, n_blocks,
                             a["bm_counts"], a["bm_blocks"], a["bm_anchors"], kernels.ANCHOR_SHIFT)
    if problem == _BAD_COUNTS:
        raise bad("bm_counts", "counts that add up to each term's postings in offsets.npy")
    if problem == _BAD_ANCHORS:
        raise bad("bm_anchors", "the posting start of every 32nd entry")
    if problem == _BAD_BLOCK_ORDER:
        raise bad("bm_blocks", "block numbers ascending within each term")
    if problem == _BAD_BLOCK_RANGE:
        raise bad("bm_blocks", f"block numbers below {n_blocks:,}")


_BAD_COUNTS, _BAD_ANCHORS, _BAD_BLOCK_ORDER, _BAD_BLOCK_RANGE = 1, 2, 3, 4


@nb.njit(cache=True, nogil=True)
def _entry_problem(offsets, bm_offsets, segments, n_blocks, bm_counts, bm_blocks, bm_anchors, shift):
    """0 when the block entries agree with offsets and anchors, their blocks (segment start + bm_blocks) ascend
    within each term and lie below n_blocks, else which invariant fails (_BAD_*)."""
    step = 1 << shift
    posting = 0
    for t in range(offsets.shape[0] - 1):
        if posting != offsets[t]:
            return _BAD_COUNTS
        previous = np.int64(-1)
        for h in range(segments):
            high = np.int64(h) << kernels.SEGMENT_BITS
            for e in range(bm_offsets[t * segments + h], bm_offsets[t * segments + h + 1]):
                if e % step == 0 and np.int64(bm_anchors[e >> shift]) != posting:
                    return _BAD_ANCHORS
                blk = high + np.int64(bm_blocks[e])
                if blk <= previous:
                    return _BAD_BLOCK_ORDER
                if blk >= n_blocks:
                    return _BAD_BLOCK_RANGE
                previous = blk
                posting += np.int64(bm_counts[e]) + 1
    if posting != offsets[offsets.shape[0] - 1]:
        return _BAD_COUNTS
    n = bm_counts.shape[0]
    if n == 0 and np.int64(bm_anchors[0]) != 0:
        return _BAD_ANCHORS
    return 0


def _ascending(arr: np.ndarray) -> bool:
    for start in range(0, arr.shape[0] - 1, _CHUNK):
        part = np.asarray(arr[start : start + _CHUNK + 1])
        if (part[1:] < part[:-1]).any():
            return False
    return True


def _chunked_max(arr: np.ndarray) -> int:
    best = 0
    for start in range(0, arr.shape[0], _CHUNK):
        best = max(best, int(np.asarray(arr[start : start + _CHUNK]).max()))
    return best


def _is_permutation(order: np.ndarray, n: int) -> bool:
    if n == 0:
        return True
    if int(np.asarray(order).min()) < 0 or _chunked_max(order) >= n:
        return False
    seen = np.zeros(n, dtype=bool)
    seen[np.asarray(order)] = True
    return bool(seen.all())
