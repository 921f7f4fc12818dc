"""Building the numba impact index from an encoded folder: quantise, reorder, lay out blocks, write arrays.

`build_index` streams the encoded shards and never holds the corpus (DESIGN.md: built out of core). What it keeps
in memory is per document (the sort key, the order: 12 bytes a document) or per term, plus one bucket of
postings at a time. The passes:

  1. every shard's weights: the largest weight, for the scale (skipped when `scale` is given); doc ids streamed
     to doc_ids.txt
  2. every shard quantised: each document's sort key (its two heaviest terms), each term's posting count
  3. every shard quantised again, its rows spilled in slot order to bucket files of consecutive slots (the
     document order is known now), 3 bytes a posting
  4. each bucket read back and walked in slot order: first the (term, block) entries are counted, then the
     postings are sorted by term and written term by term into the output arrays (the index itself: 2 bytes a
     posting, 3-6 an entry)

The shards are read into reused buffers (ShardReader) and quantised inside the kernels of each pass, so no
pass copies a shard or allocates per shard; per-step wall and CPU seconds are logged at DEBUG.

`build_index_from_matrix` is the in-memory builder of one CSR matrix: the reference that the streaming build
must equal byte for byte (tests/indexing/test_numba_build.py), and the quick path for matrices already in memory.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from contracts.atomic import atomic_folder, write_json
from contracts.encoded import ShardReader, check_encoded_ids, read_vocab, validate_shards
from contracts.manifest import read_json
from indexing.base import (
    ARRAYS_KEY,
    DOC_IDS_FILE,
    check_bits,
    check_overwrite,
    common_manifest,
    default_scale,
    describe_arrays,
    directory_size,
    index_of_format,
    read_doc_ids,
    write_folder_files,
)
from indexing.numba_index import layout
from indexing.numba_index.index import ARRAYS, DEFAULT_BLOCK_SIZE, FORMAT, FORMAT_VERSION, ImpactIndex
from indexing.numba_index.kernels import ANCHOR_SHIFT

logger = logging.getLogger(__name__)

# Postings spilled per bucket: the one part of the corpus in memory at a time. 64 MiB rather than 256: at 1M
# documents a fifth less CPU (14.9-15.6 -> 12.8-13.1 s) and 0.47 GiB less peak memory, in one run; the buckets'
# count (1 per 64 MiB of spill, 53 at 8.8M) costs only file appends.
BUCKET_BYTES = 64 * 2**20
SPILL_DIR = "spill"
WHAT = "numba impact index"  # what atomic_folder's messages call the folder
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
        FileNotFoundError / ValueError: a shard missing, truncated, damaged (a member's CRC), of another
            vocabulary, or holding term ids outside it (named); a document id used twice (both documents named).
        OSError: not enough free disk for the index (the figures are given).
    """
    encoded_dir, index_dir = Path(encoded_dir), Path(index_dir)
    check_bits(bits)
    layout.check_block_size(block_size)
    if reorder not in layout.REORDERINGS:
        raise ValueError(f"unknown document reordering {reorder!r}; expected one of {layout.REORDERINGS}")
    check_overwrite(index_dir, overwrite, FORMAT)
    encoded, shards = validate_shards(encoded_dir)
    check_encoded_ids(encoded_dir)  # a folder encoded before ids were checked, or edited: hits under the wrong id
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
    with atomic_folder(index_dir, overwrite, index_of_format(FORMAT), what=WHAT) as work:
        # vocab.json through the shared writer; doc_ids.txt is rewritten by pass 1, streamed, not listed in memory.
        write_folder_files(work, [], vocab)
        reader = ShardReader()
        with _timed("pass 1 (ids, largest weight)"):
            max_weight = _pass_ids_and_max(shards, reader, work / DOC_IDS_FILE, need_max=scale is None,
                                           progress=progress)
        if scale is None:
            scale = default_scale(max_weight, bits)
        with _timed("pass 2 (sort keys, term counts)"):
            first, second, df = _pass_keys(shards, reader, num_docs, vocab_size, scale, bits, progress)
        with _timed("document order"):
            order = (layout.order_from_keys(first, second) if reorder == "top-terms"
                     else np.arange(num_docs, dtype=np.int32))
        del first, second
        slot_of_doc = np.empty(num_docs, dtype=np.int32)
        slot_of_doc[order] = np.arange(num_docs, dtype=np.int32)
        num_postings = int(df.sum())
        bucket_slots = max(1, int(bucket_bytes / spill_per_posting / max(1.0, num_postings / num_docs)))
        n_buckets = -(-num_docs // bucket_slots)
        spill = work / SPILL_DIR
        with _timed("pass 3 (spill by slot)"):
            _pass_spill(shards, reader, slot_of_doc, spill, bucket_slots, n_buckets, scale, bits, dtype, term_dtype,
                        progress)
        del slot_of_doc, reader
        arrays = _write_layout(work, spill, order, df, num_docs, bucket_slots, n_buckets, block_size, dtype,
                               term_dtype, index_dir, progress)
        shutil.rmtree(spill)
        info = {key: encoded.get(key) for key in _INFO_KEYS}
        info["encoded"] = str(encoded_dir)
        with _timed("manifest (checksums)"):
            _write_manifest(work, info, arrays, vocab_size, num_docs, num_postings, scale, bits, block_size,
                            reorder)
        size = directory_size(work)
    logger.info("indexed %s documents, %s postings, scale %.3f, %d bits, blocks of %d, %.1f MiB, in %.1f s -> %s",
                f"{num_docs:,}", f"{num_postings:,}", scale, bits, block_size, size / 2**20,
                time.perf_counter() - started, index_dir)
    # The arrays just written, not read back: ImpactIndex.load's checks are for folders that come from disk, and
    # reading the index back (with its checks' temporaries) doubled the peak memory of an MS MARCO-sized build.
    return ImpactIndex(path=index_dir, manifest=read_json(index_dir / "manifest.json", what="index manifest"),
                       doc_ids=read_doc_ids(index_dir, num_docs), **{name: arrays[name] for name in ARRAYS})


def build_index_from_matrix(corpus: sp.csr_matrix, ids: list[str], index_dir: str | Path, vocab: list[str] | None,
                            info: dict, bits: int = 8, scale: float | None = None, overwrite: bool = False,
                            progress: bool = True, block_size: int = DEFAULT_BLOCK_SIZE,
                            reorder: str = "top-terms") -> ImpactIndex:
    """The index of an in-memory CSR corpus: the reference the streaming `build_index` must equal byte for byte.

    Args:
        corpus: [num_docs, vocab] float weights, rows = documents.
        ids: the external document ids, one per row.
        index_dir: the index folder; an existing index there is replaced only with `overwrite`.
        vocab: the model's tokens in id order, or None (no vocab.json).
        info: the manifest's "model", "vocab_hash", "query_max_length", "doc_max_length", "encoded".
        bits, scale, overwrite, progress, block_size, reorder: as for `build_index`.

    Returns:
        The built index, read into memory.

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
    with atomic_folder(index_dir, overwrite, index_of_format(FORMAT), what=WHAT) as work:
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


@contextlib.contextmanager
def _timed(step: str):
    """Logs a step's wall and CPU seconds at DEBUG; the record's `timing` (step, wall, CPU) is what
    benchmarks/scale.py tabulates per pass."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    logger.debug("index %s: %.1f s, %.1f s CPU", step, wall, cpu, extra={"timing": (step, wall, cpu)})


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="doc", disable=not progress, unit_scale=True)


def _pass_ids_and_max(shards: list[dict], reader: ShardReader, doc_ids_path: Path, need_max: bool,
                      progress: bool) -> float:
    """Pass 1: doc ids appended to doc_ids.txt shard by shard; the largest weight when the scale is not given."""
    max_weight = 0.0
    bar = _bar(sum(s["num_docs"] for s in shards), "index pass 1/4: ids, largest weight", progress)
    with open(doc_ids_path, "w", encoding="utf-8") as out, bar:
        for shard in shards:
            z = reader.read(shard["path"], ("ids", "data") if need_max else ("ids",))
            out.write("".join(f"{i}\n" for i in z["ids"].tolist()))
            if need_max and z["data"].size:
                max_weight = max(max_weight, float(z["data"].max()))
            bar.update(shard["num_docs"])
    return max_weight


def _shard_csr(shard: dict, reader: ShardReader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, indices, data) of one shard, as its kernels read them."""
    z = reader.read(shard["path"], ("indptr", "indices", "data"))
    return z["indptr"].astype(np.int64, copy=False), z["indices"], z["data"]


def _pass_keys(shards, reader, num_docs, vocab_size, scale, bits, progress):
    """Pass 2: each document's "top-terms" key and each term's number of postings, after quantisation."""
    first = np.empty(num_docs, dtype=np.int32)
    second = np.empty(num_docs, dtype=np.int32)
    df = np.zeros(vocab_size, dtype=np.int64)
    start = 0
    with _bar(num_docs, "index pass 2/4: sort keys, term counts", progress) as bar:
        for shard in shards:
            indptr, indices, data = _shard_csr(shard, reader)
            rows = slice(start, start + shard["num_docs"])
            answer = layout.shard_keys(indptr, indices, data, float(scale), float(2**bits - 1), vocab_size,
                                       first[rows], second[rows], df)
            if answer == layout.KEYS_UNSORTED:  # term ids out of order in some row: sorted as the reference does
                matrix = sp.csr_matrix((data.copy(), indices.copy(), indptr), shape=(shard["num_docs"], vocab_size))
                matrix.sort_indices()
                answer = layout.shard_keys(matrix.indptr.astype(np.int64), matrix.indices, matrix.data,
                                           float(scale), float(2**bits - 1), vocab_size, first[rows], second[rows],
                                           df)
                shard["sort"] = True  # pass 3 sorts it again
            if answer == layout.KEYS_BAD_TERM:
                raise ValueError(f"{shard['path']}: term ids from {int(indices.min())} to {int(indices.max())}, "
                                 f"the vocabulary has {vocab_size} terms; re-encode this shard")
            if answer == layout.KEYS_BAD_ROWS:
                raise ValueError(f"{shard['path']}: its row pointers descend or pass the end of its "
                                 f"{indices.shape[0]} postings; re-encode this shard")
            start += shard["num_docs"]
            bar.update(shard["num_docs"])
    return first, second, df


def _spill_files(spill: Path, b: int) -> tuple[Path, Path, Path]:
    return spill / f"rows-{b:05d}.bin", spill / f"terms-{b:05d}.bin", spill / f"impacts-{b:05d}.bin"


def _pass_spill(shards, reader, slot_of_doc, spill, bucket_slots, n_buckets, scale, bits, dtype, term_dtype,
                progress):
    """Pass 3: every quantised row appended to the bucket of its slot (slot, length; terms; impacts), each shard's
    rows in slot order (pass 4 then reads each bucket in a few sequential runs, not row by row at random)."""
    spill.mkdir()
    for b in range(n_buckets):
        for path in _spill_files(spill, b):
            path.touch()
    most_rows = max(s["num_docs"] for s in shards)
    most_postings = max(s["nnz"] for s in shards)
    rows = np.empty((most_rows, 2), dtype=np.int32)
    terms = np.empty(most_postings, dtype=term_dtype)
    impacts = np.empty(most_postings, dtype=dtype)
    bounds = np.empty((n_buckets + 1, 2), dtype=np.int64)
    start = 0
    with _bar(slot_of_doc.shape[0], "index pass 3/4: spill by slot", progress) as bar:
        for shard in shards:
            indptr, indices, data = _shard_csr(shard, reader)
            if shard.get("sort"):
                matrix = sp.csr_matrix((data.copy(), indices.copy(), indptr), shape=(shard["num_docs"], 1 + int(
                    indices.max(initial=0))))
                matrix.sort_indices()
                indptr, indices, data = matrix.indptr.astype(np.int64), matrix.indices, matrix.data
            n = shard["num_docs"]
            doc_slots = slot_of_doc[start : start + n]
            by_slot = np.argsort(doc_slots, kind="stable")
            layout.spill_shard(indptr, indices, data, float(scale), float(2**bits - 1), by_slot, doc_slots,
                               bucket_slots, rows, terms, impacts, bounds)
            for b in np.flatnonzero(np.diff(bounds[:, 0])):
                (r0, p0), (r1, p1) = bounds[b], bounds[b + 1]
                for path, part in zip(_spill_files(spill, b), (rows[r0:r1], terms[p0:p1], impacts[p0:p1])):
                    with open(path, "ab") as f:
                        part.tofile(f)
            start += n
            bar.update(n)


def _read_bucket(spill: Path, b: int, term_dtype, dtype, with_impacts: bool):
    rows_path, terms_path, impacts_path = _spill_files(spill, b)
    rows = np.fromfile(rows_path, dtype=np.int32).reshape(-1, 2)
    terms = np.fromfile(terms_path, dtype=term_dtype)
    impacts = np.fromfile(impacts_path, dtype=dtype) if with_impacts else None
    return rows, terms, impacts


def _write_layout(work, spill, order, df, num_docs, bucket_slots, n_buckets, block_size, dtype, term_dtype,
                  index_dir, progress) -> dict[str, np.ndarray]:
    """Pass 4: entries counted bucket by bucket, then the postings of each bucket placed in the output arrays."""
    vocab_size = df.shape[0]
    segments = layout.block_segments(num_docs, block_size)
    last_block = np.full(vocab_size, -1, dtype=np.int64)
    entries = np.zeros(vocab_size * segments, dtype=np.int64)
    largest_bucket = 0
    with _timed("pass 4a (count blocks)"):
        for b in tqdm(range(n_buckets), desc="index pass 4/4: count blocks", unit="bucket", disable=not progress):
            rows, terms, _ = _read_bucket(spill, b, term_dtype, dtype, with_impacts=False)
            row_of_slot, row_start = layout.slot_walk(rows, b * bucket_slots)
            layout.count_entries(b * bucket_slots, row_of_slot, row_start, rows, terms, block_size, segments,
                                 last_block, entries)
            largest_bucket = max(largest_bucket, terms.shape[0])
            del rows, terms, row_of_slot, row_start  # one bucket in memory at a time
    offsets = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    bm_offsets = np.zeros(vocab_size * segments + 1, dtype=np.int64)
    np.cumsum(entries, out=bm_offsets[1:])
    num_postings, num_entries = int(offsets[-1]), int(bm_offsets[-1])
    sizes = {"slots": (np.uint8, num_postings), "impacts": (dtype, num_postings),
             "bm_blocks": (np.uint16, num_entries), "bm_max": (dtype, num_entries),
             "bm_counts": (np.uint8, num_entries),
             "bm_anchors": (layout.anchor_dtype(num_postings), (num_entries >> ANCHOR_SHIFT) + 1)}
    _check_disk(index_dir, sum(np.dtype(t).itemsize * n for t, n in sizes.values()), "the index arrays")
    # In memory, saved when complete: these arrays are the index (the memory limit is its size + 1.5 GiB). WHY not
    # memory-mapped output files: the scatter writes to ~30k places at once, and the kernel's write-back of such
    # scattered dirty pages made the scatter 20x slower than the same loop into memory.
    out = {name: np.empty(n, dtype=t) for name, (t, n) in sizes.items()}
    sort_buffer = np.empty(largest_bucket, dtype=layout.fill_key_dtype(bucket_slots, 8 * np.dtype(dtype).itemsize))
    post_fill = offsets[:-1].copy()
    entry_fill = layout.term_entry_starts(bm_offsets, segments)
    last_block[:] = -1
    term_max = np.zeros(vocab_size, dtype=dtype)
    with _timed("pass 4b (scatter postings)"):
        for b in tqdm(range(n_buckets), desc="index pass 4/4: scatter postings", unit="bucket",
                      disable=not progress):
            rows, terms, impacts = _read_bucket(spill, b, term_dtype, dtype, with_impacts=True)
            row_of_slot, row_start = layout.slot_walk(rows, b * bucket_slots)
            layout.fill_bucket(b * bucket_slots, row_of_slot, row_start, rows, terms, impacts, block_size, post_fill,
                               entry_fill, last_block, term_max, out, sort_buffer[: terms.shape[0]])
            for path in _spill_files(spill, b):
                path.unlink()  # disk back as the scatter proceeds
            del rows, terms, impacts, row_of_slot, row_start
    del sort_buffer
    if num_entries % (1 << ANCHOR_SHIFT) == 0:
        out["bm_anchors"][num_entries >> ANCHOR_SHIFT] = num_postings  # block_layout's final start, when on an anchor
    arrays = {**out, "offsets": offsets, "term_max": term_max, "doc_order": order, "bm_offsets": bm_offsets}
    with _timed("arrays written"):
        for name, array in arrays.items():
            np.save(work / f"{name}.npy", array)
    return arrays


def _write_manifest(work: Path, info: dict, arrays: dict, vocab_size: int, num_docs: int, num_postings: int,
                    scale: float, bits: int, block_size: int, reorder: str) -> None:
    manifest = common_manifest(FORMAT, FORMAT_VERSION, info, vocab_size=vocab_size, num_docs=num_docs,
                               num_postings=num_postings, scale=scale, bits=bits)
    manifest.update({"block_size": int(block_size), "block_segments": layout.block_segments(num_docs, block_size),
                     "reorder": reorder,
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
