"""The impact inverted index: built from encoded shards, saved as flat arrays, read into memory (or mapped).

Folder layout:
  manifest.json   format and version, vocabulary size and hash, number of docs and postings, scale, bits, model
  offsets.npy     int64 [vocab + 1]: postings of term t are [offsets[t], offsets[t+1])
  slots.npy       uint8 position of each posting's document inside its block (documents sit in "slots")
  impacts.npy     uint8 / uint16 quantised weights, round(w * scale), zeros dropped
  term_max.npy    largest impact of each term
  doc_order.npy   int32 internal document number of each slot (documents grouped by their heavy terms)
  bm_offsets.npy  int64 [vocab + 1]: block entries of term t are [bm_offsets[t], bm_offsets[t+1])
  bm_blocks.npy   uint16 (int32 past 65,536 blocks) blocks of `block_size` slots holding the term, ascending
  bm_max.npy      the term's largest impact in each of those blocks (the block maxima)
  bm_counts.npy   uint8 postings of each entry minus one (a term's postings follow its entries in order)
  bm_anchors.npy  uint32 (int64 past 2**32 postings) first posting of every 32nd entry, for jumps to an entry
  doc_ids.txt     external document id of each internal number, one per line
  vocab.json      token strings in id order

Search is exact block-max pruning by default (same documents, scores and tie order as scoring every posting);
`alpha` < 1 makes it approximate, `method="exhaustive"` scores every posting.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
import numpy as np
import scipy.sparse as sp

from contracts.manifest import read_manifest
from indexing.base import QuantizedIndex
from indexing.numba_index import kernels

FORMAT = "splade-impact-index"
FORMAT_VERSION = 3  # 2 -> 3: per-entry posting starts (4 bytes) became counts (1 byte) plus anchors
ARRAYS = ("offsets", "slots", "impacts", "term_max", "doc_order", "bm_offsets", "bm_blocks", "bm_max", "bm_counts",
          "bm_anchors")
DEFAULT_BLOCK_SIZE = 32
METHODS = ("pruned", "exhaustive")


@dataclass
class ImpactIndex(QuantizedIndex):
    """A loaded index: memory-mapped arrays and the manifest that says how to read them."""

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
    def load(cls, path: str | Path, mmap: bool = False) -> "ImpactIndex":
        """Reads the arrays into memory, or with mmap=True maps them (for an index larger than the RAM).

        WHY not mapped by default: pruned search jumps around the arrays, and a mapped file pays a page fault
        on the first touch of every 4 KiB page and a TLB miss on most jumps after that. At 1M documents that
        made a k=10 query 2-4x slower (8.9 vs 2.2 ms) than the same arrays read into memory.
        """
        path = Path(path)
        manifest = read_manifest(path, FORMAT, FORMAT_VERSION, "index", "rebuild the index with `splade index`")
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None) for name in ARRAYS}
        doc_ids = (path / "doc_ids.txt").read_text(encoding="utf-8").split("\n")[:-1]
        if len(doc_ids) != manifest["num_docs"] or arrays["offsets"].shape[0] != manifest["vocab_size"] + 1:
            raise ValueError(f"{path}: arrays do not match the manifest (a partial copy?); rebuild the index")
        return cls(path=path, manifest=manifest, doc_ids=doc_ids, **arrays)

    @property
    def doc_freqs(self) -> np.ndarray:
        """Number of documents holding each term (for FLOPS)."""
        return np.diff(np.asarray(self.offsets))

    def vocab(self) -> list[str]:
        return json.loads((self.path / "vocab.json").read_text(encoding="utf-8"))

    @property
    def block_size(self) -> int:
        return int(self.manifest["block_size"])

    def search(self, queries: sp.csr_matrix, k: int = 1000, quantized: bool = False, alpha: float = 1.0,
               method: str = "pruned") -> list[list[tuple[str, float]]]:
        """Top-k for each query row: (doc id, integer score) best first, ties by index order; exact unless alpha < 1."""
        docs, scores, counts = self.search_arrays(queries, k, quantized, alpha=alpha, method=method)
        ids = self.doc_ids
        return [[(ids[d], float(s)) for d, s in zip(docs[i, : counts[i]], scores[i, : counts[i]])] for i in range(len(counts))]

    def search_arrays(self, queries: sp.csr_matrix, k: int = 1000, quantized: bool = False, threads: int | None = None,
                      alpha: float = 1.0, method: str = "pruned", stats: np.ndarray | None = None):
        """Internal doc numbers [n, k], scores [n, k] and counts [n] (rows shorter than k are padded).

        method "pruned" (block-max pruning; exact at alpha = 1, approximate below: a block is scored only while
        alpha x its upper bound reaches the k-th best score so far) or "exhaustive" (every posting).
        `stats`, if given, is an int64 array of 3 that receives the blocks scored, postings scored and
        block maxima read, summed over the queries.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if method not in METHODS:
            raise ValueError(f"unknown search method {method!r}; expected one of {METHODS}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1] (1 = exact), got {alpha}")
        q = sp.csr_matrix(queries) if quantized else self.quantize_queries(queries)
        n = q.shape[0]
        out_docs = np.zeros((n, k), dtype=np.int32)
        out_scores = np.zeros((n, k), dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
        if n == 0:
            return out_docs, out_scores, counts
        chunks = max(1, min(n, threads or nb.get_num_threads()))
        indptr, terms, weights = q.indptr.astype(np.int64), q.indices.astype(np.int32), q.data.astype(np.int64)
        chunk_stats = np.zeros((chunks, 3), dtype=np.int64)
        # Largest score any of these queries can reach: within int32, the accumulator takes half the cache.
        bound = np.bincount(np.repeat(np.arange(n), np.diff(indptr)), minlength=n,
                            weights=np.abs(weights) * self.term_max[terms].astype(np.float64))
        acc_dtype = np.int32 if float(bound.max(initial=0)) < 2**31 - 1 else np.int64
        scratch = self._scratch.get((chunks, acc_dtype))
        if scratch is None:
            scratch = self._scratch[(chunks, acc_dtype)] = kernels.new_scratch(chunks, self.num_docs, self.block_size, acc_dtype)
        run = kernels.search_serial if chunks == 1 else kernels.search_batch
        run(
            tuple(getattr(self, name) for name in kernels.INDEX_ARRAYS), self.block_size, self.num_docs, indptr, terms,
            weights, k, float(alpha), method == "exhaustive", chunks, *scratch, out_docs, out_scores, counts,
            chunk_stats,
        )
        if stats is not None:
            stats += chunk_stats.sum(axis=0)
        return out_docs, out_scores, counts

    def size_bytes(self) -> int:
        """Bytes on disk of the whole index folder."""
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
