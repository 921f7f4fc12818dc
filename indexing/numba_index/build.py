"""Building the numba impact index from an encoded folder: quantise, reorder, lay out blocks, write arrays.

`build_index` streams the encoded shards and never holds the corpus (DESIGN.md: built out of core). What it keeps
in memory is per document (the sort key, the order: 12 bytes a document) or per term, plus one bucket of
postings at a time. The passes:

  1. every shard's weights: the largest weight, for the scale (skipped when `scale` is given); doc ids streamed
     to doc_ids.txt
  2. every shard quantised: each document's sort key (its two heaviest terms), each term's posting count
  3. every shard quantised again, its rows spilled to bucket files of consecutive slots (the document order is
     known now), 3 bytes a posting
  4. each bucket read back and walked in slot order: first the (term, block) entries are counted, then the
     postings are scattered into the output arrays (the index itself: 2 bytes a posting, 3-6 an entry)

`build_index_from_matrix` is the in-memory builder of one CSR matrix: the reference that the streaming build
must equal byte for byte (tests/test_index_build.py), and the quick path for matrices already in memory.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from contracts.atomic import write_json
from contracts.encoded import read_vocab, validate_shards
from indexing.base import (
    ARRAYS_KEY,
    DOC_IDS_FILE,
    check_bits,
    check_overwrite,
    common_manifest,
    default_scale,
    describe_arrays,
    directory_size,
    staged_folder,
    write_folder_files,
)
from indexing.numba_index import layout
from indexing.numba_index.index import ARRAYS, DEFAULT_BLOCK_SIZE, FORMAT, FORMAT_VERSION, ImpactIndex
from indexing.numba_index.kernels import ANCHOR_SHIFT

logger = logging.getLogger(__name__)

BUCKET_BYTES = 256 * 2**20  # postings spilled per bucket: the one part of the corpus in memory at a time
SPILL_DIR = "spill"
_INFO_KEYS = ("model", "vocab_hash", "query_max_length", "doc_max_length")


def build_index(encoded_dir: str | Path, index_dir: str | Path, bits: int = 8, scale: float | None = None,
                overwrite: bool = False, progress: bool = True, block_size: int = DEFAULT_BLOCK_SIZE,
                reorder: str = "top-terms", bucket_bytes: int = BUCKET_BYTES) -> ImpactIndex:
    """Quantise the encoded corpus shard by shard and write the index folder, swapped in only when complete.

    Args:
        encoded_dir: a complete encoded folder (contracts/encoded.py).
        index_dir: the index folder; an existing index there is replaced only with `overwrite`.
        bits: 8 or 16 bits per impact. scale: None = the largest that keeps every weight within `bits`.
        block_size: slots per block (1..256). reorder: document order, "top-terms" or "none".
        bucket_bytes: spilled postings read back at a time (memory against number of reads).

    Returns:
        The built index, read into memory.

    Raises:
        FileExistsError: `index_dir` holds something that may not be replaced.
        FileNotFoundError / ValueError: a shard missing, truncated or of another vocabulary (named).
        OSError: not enough free disk for the index (the figures are given).
    """
    encoded_dir, index_dir = Path(encoded_dir), Path(index_dir)
    check_bits(bits)
    layout.check_block_size(block_size)
    if reorder not in layout.REORDERINGS:
        raise ValueError(f"unknown document reordering {reorder!r}; expected one of {layout.REORDERINGS}")
    check_overwrite(index_dir, overwrite, FORMAT)
    encoded, shards = validate_shards(encoded_dir)
    vocab = read_vocab(encoded_dir)
    vocab_size = int(encoded["vocab_size"])
    num_docs = sum(s["num_docs"] for s in shards)
    raw_postings = sum(s["nnz"] for s in shards)
    if num_docs == 0:
        raise ValueError(f"{encoded_dir}: the encoded corpus holds no documents")
    dtype = np.uint8 if bits == 8 else np.uint16
    term_dtype = np.uint16 if vocab_size <= 2**16 else np.int32
    spill_per_posting = np.dtype(term_dtype).itemsize + np.dtype(dtype).itemsize
    # Before any heavy work: the spill files and the postings arrays (the block entries are counted later).
    _check_disk(index_dir, raw_postings * (spill_per_posting + 1 + np.dtype(dtype).itemsize) + num_docs * 16,
                "the spilled postings and the postings arrays")
    started = time.perf_counter()
    with staged_folder(index_dir) as work:
        # vocab.json through the shared writer; doc_ids.txt is rewritten by pass 1, streamed, not listed in memory.
        write_folder_files(work, [], vocab)
        max_weight = _pass_ids_and_max(shards, work / DOC_IDS_FILE, need_max=scale is None, progress=progress)
        if scale is None:
            scale = default_scale(max_weight, bits)
        first, second, df = _pass_keys(shards, num_docs, vocab_size, scale, bits, dtype, progress)
        order = layout.order_from_keys(first, second) if reorder == "top-terms" else np.arange(num_docs, dtype=np.int32)
        del first, second
        slot_of_doc = np.empty(num_docs, dtype=np.int32)
        slot_of_doc[order] = np.arange(num_docs, dtype=np.int32)
        num_postings = int(df.sum())
        bucket_slots = max(1, int(bucket_bytes / spill_per_posting / max(1.0, num_postings / num_docs)))
        n_buckets = -(-num_docs // bucket_slots)
        spill = work / SPILL_DIR
        _pass_spill(shards, slot_of_doc, spill, bucket_slots, n_buckets, scale, bits, dtype, term_dtype, progress)
        del slot_of_doc
        arrays = _write_layout(work, spill, order, df, num_docs, bucket_slots, n_buckets, block_size, dtype,
                               term_dtype, index_dir, progress)
        shutil.rmtree(spill)
        info = {key: encoded.get(key) for key in _INFO_KEYS}
        info["encoded"] = str(encoded_dir)
        _write_manifest(work, info, arrays, vocab_size, num_docs, num_postings, scale, bits, block_size, reorder)
        del arrays
        size = directory_size(work)
    logger.info("indexed %s documents, %s postings, scale %.3f, %d bits, blocks of %d, %.1f MiB, in %.1f s -> %s",
                f"{num_docs:,}", f"{num_postings:,}", scale, bits, block_size, size / 2**20,
                time.perf_counter() - started, index_dir)
    return ImpactIndex.load(index_dir)


def build_index_from_matrix(corpus: sp.csr_matrix, ids: list[str], index_dir: str | Path, vocab: list[str] | None,
                            info: dict, bits: int = 8, scale: float | None = None, overwrite: bool = False,
                            progress: bool = True, block_size: int = DEFAULT_BLOCK_SIZE,
                            reorder: str = "top-terms") -> ImpactIndex:
    """The index of an in-memory CSR corpus (rows = documents); `info` gives model, vocab_hash, max lengths, encoded.

    Raises:
        ValueError: bits, block size or reordering unknown, or ids and rows of different numbers.
        FileExistsError: `index_dir` holds something that may not be replaced.
    """
    index_dir = Path(index_dir)
    check_bits(bits)
    if len(ids) != corpus.shape[0]:
        raise ValueError(f"{len(ids)} document ids for {corpus.shape[0]} rows")
    check_overwrite(index_dir, overwrite, FORMAT)
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
    num_postings = int(arrays["impacts"].shape[0])
    with staged_folder(index_dir) as work:
        for name, array in arrays.items():
            np.save(work / f"{name}.npy", array)  # plain writes: the whole folder is swapped in when complete
        write_folder_files(work, ids, vocab)
        _write_manifest(work, info, arrays, vocab_size, len(ids), num_postings, scale, bits, block_size, reorder)
    if progress:
        logger.info("indexed %s documents, %s postings, scale %.3f, %d bits, blocks of %d, in %.1f s -> %s",
                    f"{len(ids):,}", f"{num_postings:,}", scale, bits, block_size, time.perf_counter() - started,
                    index_dir)
    return ImpactIndex.load(index_dir)


# ---------------------------------------------------------------------------------------------------- passes


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="doc", disable=not progress, unit_scale=True)


def _pass_ids_and_max(shards: list[dict], doc_ids_path: Path, need_max: bool, progress: bool) -> float:
    """Pass 1: doc ids appended to doc_ids.txt shard by shard; the largest weight when the scale is not given."""
    max_weight = 0.0
    bar = _bar(sum(s["num_docs"] for s in shards), "index pass 1/4: ids, largest weight", progress)
    with open(doc_ids_path, "w", encoding="utf-8") as out, bar:
        for shard in shards:
            with np.load(shard["path"]) as z:  # reads only the members asked for
                out.write("".join(f"{i}\n" for i in z["ids"].tolist()))
                if need_max:
                    data = z["data"]
                    if data.size:
                        max_weight = max(max_weight, float(data.max()))
            bar.update(shard["num_docs"])
    return max_weight


def _quantised_shard(shard: dict, scale: float, bits: int, dtype) -> sp.csr_matrix:
    with np.load(shard["path"]) as z:
        matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(int(x) for x in z["shape"]))
    matrix.sort_indices()
    return layout.quantize_rows(matrix, scale, bits, dtype)


def _pass_keys(shards, num_docs, vocab_size, scale, bits, dtype, progress):
    """Pass 2: each document's "top-terms" key and each term's number of postings, after quantisation."""
    first = np.empty(num_docs, dtype=np.int32)
    second = np.empty(num_docs, dtype=np.int32)
    df = np.zeros(vocab_size, dtype=np.int64)
    start = 0
    with _bar(num_docs, "index pass 2/4: sort keys, term counts", progress) as bar:
        for shard in shards:
            q = _quantised_shard(shard, scale, bits, dtype)
            f, s = layout.top_two_terms(q)
            first[start : start + q.shape[0]] = f
            second[start : start + q.shape[0]] = s
            df += np.bincount(q.indices, minlength=vocab_size)
            start += q.shape[0]
            bar.update(q.shape[0])
    return first, second, df


def _spill_files(spill: Path, b: int) -> tuple[Path, Path, Path]:
    return spill / f"rows-{b:05d}.bin", spill / f"terms-{b:05d}.bin", spill / f"impacts-{b:05d}.bin"


def _pass_spill(shards, slot_of_doc, spill, bucket_slots, n_buckets, scale, bits, dtype, term_dtype, progress):
    """Pass 3: every quantised row appended to the bucket of its slot (slot, length; terms; impacts)."""
    spill.mkdir()
    for b in range(n_buckets):
        for path in _spill_files(spill, b):
            path.touch()
    start = 0
    with _bar(slot_of_doc.shape[0], "index pass 3/4: spill by slot", progress) as bar:
        for shard in shards:
            q = _quantised_shard(shard, scale, bits, dtype)
            rows, terms, impacts, row_bounds, post_bounds = layout.bucket_rows(
                q, slot_of_doc[start : start + q.shape[0]], bucket_slots, n_buckets, term_dtype)
            for b in np.flatnonzero(np.diff(row_bounds)):
                for path, part in zip(_spill_files(spill, b), (rows[row_bounds[b] : row_bounds[b + 1]],
                                                               terms[post_bounds[b] : post_bounds[b + 1]],
                                                               impacts[post_bounds[b] : post_bounds[b + 1]])):
                    with open(path, "ab") as f:
                        part.tofile(f)
            start += q.shape[0]
            bar.update(q.shape[0])


def _read_bucket(spill: Path, b: int, term_dtype, dtype, with_impacts: bool):
    rows_path, terms_path, impacts_path = _spill_files(spill, b)
    rows = np.fromfile(rows_path, dtype=np.int32).reshape(-1, 2)
    terms = np.fromfile(terms_path, dtype=term_dtype)
    impacts = np.fromfile(impacts_path, dtype=dtype) if with_impacts else None
    return rows, terms, impacts


def _write_layout(work, spill, order, df, num_docs, bucket_slots, n_buckets, block_size, dtype, term_dtype,
                  index_dir, progress) -> dict[str, np.ndarray]:
    """Pass 4: entries counted bucket by bucket, then the postings scattered into memory-mapped arrays."""
    vocab_size = df.shape[0]
    last_block = np.full(vocab_size, -1, dtype=np.int64)
    entries = np.zeros(vocab_size, dtype=np.int64)
    for b in tqdm(range(n_buckets), desc="index pass 4/4: count blocks", unit="bucket", disable=not progress):
        rows, terms, _ = _read_bucket(spill, b, term_dtype, dtype, with_impacts=False)
        row_of_slot, row_start = layout.slot_walk(rows, b * bucket_slots)
        layout.count_entries(b * bucket_slots, row_of_slot, row_start, rows, terms, block_size, last_block, entries)
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    bm_offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(entries, out=bm_offsets[1:])
    num_postings, num_entries = int(offsets[-1]), int(bm_offsets[-1])
    bm_dtype = layout.block_dtype(num_docs, block_size)
    sizes = {"slots": (np.uint8, num_postings), "impacts": (dtype, num_postings),
             "bm_blocks": (bm_dtype, num_entries), "bm_max": (dtype, num_entries), "bm_counts": (np.uint8, num_entries),
             "bm_anchors": (layout.anchor_dtype(num_postings), (num_entries >> ANCHOR_SHIFT) + 1)}
    _check_disk(index_dir, sum(np.dtype(t).itemsize * n for t, n in sizes.values()), "the index arrays")
    # In memory, saved when complete: these arrays are the index (the memory limit is its size + 1.5 GiB). WHY not
    # memory-mapped output files: the scatter writes to ~30k places at once, and the kernel's write-back of such
    # scattered dirty pages made the scatter 20x slower than the same loop into memory.
    out = {name: np.empty(n, dtype=t) for name, (t, n) in sizes.items()}
    post_fill = offsets[:-1].copy()
    entry_fill = bm_offsets[:-1].copy()
    last_block[:] = -1
    term_max = np.zeros(vocab_size, dtype=dtype)
    for b in tqdm(range(n_buckets), desc="index pass 4/4: scatter postings", unit="bucket", disable=not progress):
        rows, terms, impacts = _read_bucket(spill, b, term_dtype, dtype, with_impacts=True)
        row_of_slot, row_start = layout.slot_walk(rows, b * bucket_slots)
        layout.fill_bucket(b * bucket_slots, row_of_slot, row_start, rows, terms, impacts, block_size, post_fill,
                           entry_fill, last_block, term_max, out["bm_blocks"], out["bm_max"], out["bm_counts"],
                           out["bm_anchors"], out["slots"], out["impacts"])
        for path in _spill_files(spill, b):
            path.unlink()  # disk back as the scatter proceeds
    if num_entries % (1 << ANCHOR_SHIFT) == 0:
        out["bm_anchors"][num_entries >> ANCHOR_SHIFT] = num_postings  # block_layout's final start, when on an anchor
    arrays = {**out, "offsets": offsets, "term_max": term_max, "doc_order": order, "bm_offsets": bm_offsets}
    for name, array in arrays.items():
        np.save(work / f"{name}.npy", array)
    return arrays


def _write_manifest(work: Path, info: dict, arrays: dict, vocab_size: int, num_docs: int, num_postings: int,
                    scale: float, bits: int, block_size: int, reorder: str) -> None:
    manifest = common_manifest(FORMAT, FORMAT_VERSION, info, vocab_size=vocab_size, num_docs=num_docs,
                               num_postings=num_postings, scale=scale, bits=bits)
    manifest.update({"block_size": int(block_size), "reorder": reorder,
                     ARRAYS_KEY: describe_arrays({name: arrays[name] for name in ARRAYS})})
    write_json(work / "manifest.json", manifest)


def _check_disk(index_dir: Path, needed: int, what: str) -> None:
    """Refuses to start writing what would not fit on the disk of `index_dir`."""
    probe = index_dir.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise OSError(f"{index_dir}: building this index needs about {_size(needed)} free for {what}, and {probe} "
                      f"has {_size(free)}; free some space or choose another --output")


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _term_max(offsets: np.ndarray, impacts: np.ndarray) -> np.ndarray:
    out = np.zeros(offsets.shape[0] - 1, dtype=impacts.dtype)
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    if nonempty.size:
        out[nonempty] = np.maximum.reduceat(impacts, offsets[nonempty])
    return out
