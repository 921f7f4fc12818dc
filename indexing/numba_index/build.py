"""Building the numba impact index from an encoded folder: quantise, reorder, lay out blocks, write arrays."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from contracts.atomic import save_npy, write_json, write_text
from contracts.encoded import iter_shards, open_encoded, read_vocab
from indexing.base import default_scale
from indexing.numba_index import layout
from indexing.numba_index.index import ARRAYS, DEFAULT_BLOCK_SIZE, FORMAT, FORMAT_VERSION, ImpactIndex


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
    quantised = layout.quantize_rows(corpus, scale, bits, dtype)
    vocab_size = int(corpus.shape[1])
    order = layout.document_order(quantised, reorder)
    arrays = layout.block_layout(quantised, order, block_size, dtype)
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
