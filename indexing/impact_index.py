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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
import numpy as np
import scipy.sparse as sp

from indexing import blocks, kernels
from indexing.files import read_manifest, save_npy, write_json, write_text
from indexing.shards import iter_shards, open_encoded, read_vocab

FORMAT = "splade-impact-index"
FORMAT_VERSION = 3  # 2 -> 3: per-entry posting starts (4 bytes) became counts (1 byte) plus anchors
ARRAYS = ("offsets", "slots", "impacts", "term_max", "doc_order", "bm_offsets", "bm_blocks", "bm_max", "bm_counts",
          "bm_anchors")
DEFAULT_BLOCK_SIZE = 32
METHODS = ("pruned", "exhaustive")


def quantize(matrix: sp.csr_matrix, scale: float, bits: int | None) -> sp.csr_matrix:
    """round(w * scale) as integers (DESIGN.md); with `bits`, clipped to what that many bits hold; zeros dropped."""
    q = matrix.copy().astype(np.float64)
    q.data = np.rint(q.data * scale)
    if bits is not None:
        np.clip(q.data, 0, 2**bits - 1, out=q.data)
    q.data = q.data.astype(np.int64)
    q.eliminate_zeros()
    return q


def default_scale(max_weight: float, bits: int) -> float:
    """The largest scale at which the heaviest weight of the corpus still fits in `bits` bits."""
    if max_weight <= 0:
        raise ValueError("the encoded corpus has no positive weight: nothing to index")
    return (2**bits - 1) / max_weight


def build_index(encoded_dir: str | Path, index_dir: str | Path, bits: int = 8, scale: float | None = None,
                overwrite: bool = False, progress: bool = True, block_size: int = DEFAULT_BLOCK_SIZE,
                reorder: str = "top-terms") -> "ImpactIndex":
    """Quantise the encoded corpus and write the index folder (all files atomically, the manifest last)."""
    encoded_dir, index_dir = Path(encoded_dir), Path(index_dir)
    encoded = open_encoded(encoded_dir)
    if (index_dir / "manifest.json").exists() and not overwrite:
        raise FileExistsError(f"{index_dir}: an index is already there; pass --overwrite to replace it")
    ids, parts = [], []
    for shard_ids, matrix in iter_shards(encoded_dir):
        ids.extend(shard_ids)
        parts.append(matrix)
    corpus = sp.vstack(parts, format="csr")
    info = {key: encoded.get(key) for key in ("model", "vocab_hash", "query_max_length", "doc_max_length")}
    info["encoded"] = str(encoded_dir)
    return build_index_from_matrix(corpus, ids, index_dir, read_vocab(encoded_dir), info, bits=bits, scale=scale,
                                   overwrite=overwrite, progress=progress, block_size=block_size, reorder=reorder)


def build_index_from_matrix(corpus: sp.csr_matrix, ids: list[str], index_dir: str | Path, vocab: list[str] | None,
                            info: dict, bits: int = 8, scale: float | None = None, overwrite: bool = False,
                            progress: bool = True, block_size: int = DEFAULT_BLOCK_SIZE,
                            reorder: str = "top-terms") -> "ImpactIndex":
    """The index of an in-memory CSR corpus (rows = documents); `info` gives model, vocab_hash and max lengths."""
    index_dir = Path(index_dir)
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if len(ids) != corpus.shape[0]:
        raise ValueError(f"{len(ids)} document ids for {corpus.shape[0]} rows")
    if (index_dir / "manifest.json").exists() and not overwrite:
        raise FileExistsError(f"{index_dir}: an index is already there; pass --overwrite to replace it")
    started = time.perf_counter()
    if scale is None:
        scale = default_scale(float(corpus.data.max()) if corpus.nnz else 0.0, bits)
    dtype = np.uint8 if bits == 8 else np.uint16
    corpus = sp.csr_matrix(corpus)
    corpus.sort_indices()
    quantised = blocks.quantize_rows(corpus, scale, bits, dtype)
    vocab_size = int(corpus.shape[1])
    order = blocks.document_order(quantised, reorder)
    arrays = blocks.block_layout(quantised, order, block_size, dtype)
    del quantised
    arrays["doc_order"] = order
    arrays["term_max"] = _term_max(arrays["offsets"], arrays["impacts"])
    index_dir.mkdir(parents=True, exist_ok=True)
    if (index_dir / "manifest.json").exists():
        os.unlink(index_dir / "manifest.json")  # an index without its manifest is never mistaken for a complete one
    for name, array in arrays.items():
        save_npy(index_dir / f"{name}.npy", array)
    write_text(index_dir / "doc_ids.txt", "".join(f"{i}\n" for i in ids))
    if vocab is not None:
        write_text(index_dir / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    num_postings = int(arrays["impacts"].shape[0])
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": info.get("model"),
        "vocab_size": vocab_size,
        "vocab_hash": info.get("vocab_hash"),
        "query_max_length": info.get("query_max_length"),
        "doc_max_length": info.get("doc_max_length"),
        "num_docs": len(ids),
        "num_postings": num_postings,
        "scale": float(scale),
        "bits": bits,
        "block_size": int(block_size),
        "reorder": reorder,
        "encoded": info.get("encoded"),
    }
    write_json(index_dir / "manifest.json", manifest)
    if progress:
        size = sum((index_dir / f"{n}.npy").stat().st_size for n in ARRAYS) / 2**20
        print(f"indexed {len(ids):,} documents, {num_postings:,} postings, scale {scale:.3f}, {bits} bits, "
              f"blocks of {block_size}, {size:.1f} MiB, in {time.perf_counter() - started:.1f} s -> {index_dir}")
    return ImpactIndex.load(index_dir)


def _term_max(offsets: np.ndarray, impacts: np.ndarray) -> np.ndarray:
    out = np.zeros(offsets.shape[0] - 1, dtype=impacts.dtype)
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    if nonempty.size:
        out[nonempty] = np.maximum.reduceat(impacts, offsets[nonempty])
    return out


class QuantizedIndex:
    """What every back end shares: a manifest with the vocabulary and the scale that queries are quantised with."""

    path: Path
    manifest: dict
    kind = "index"

    @property
    def num_docs(self) -> int:
        return int(self.manifest["num_docs"])

    @property
    def scale(self) -> float:
        return float(self.manifest["scale"])

    def check_vocabulary(self, vocab_hash: str, vocab_size: int, what: str = "the query encoder") -> None:
        if vocab_hash != self.manifest["vocab_hash"] or vocab_size != self.manifest["vocab_size"]:
            raise ValueError(
                f"{self.path}: this {self.kind} was built for vocabulary {self.manifest['vocab_hash']} "
                f"({self.manifest['vocab_size']} terms, model {self.manifest['model']}), but {what} uses "
                f"{vocab_hash} ({vocab_size} terms): encode queries with the index's model"
            )

    def quantize_queries(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        """Queries get the index's scale (no bit limit: query weights are never stored), zeros dropped."""
        if queries.shape[1] != self.manifest["vocab_size"]:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.path} {self.manifest['vocab_size']}")
        q = quantize(sp.csr_matrix(queries), self.scale, None)
        q.sort_indices()
        return q


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
