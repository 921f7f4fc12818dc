"""The streaming (out-of-core) build writes the same index folder, byte for byte, as the in-memory reference
builder; bad shards and a full disk are refused, naming the shard or the space, before any heavy work."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks import synthetic
from contracts.atomic import write_json
from contracts.encoded import read_encoded, read_vocab, save_shard, validate_shards, write_encoded
from indexing.numba_index import build as build_module
from indexing.numba_index import layout
from indexing.numba_index.build import build_index, build_index_from_matrix
from indexing.numba_index.index import ARRAYS

SYNTHETIC = {"model": "synthetic", "vocab_hash": "synthetic", "query_max_length": 16, "doc_max_length": 64}


def reference_index(encoded: Path, out: Path, **options):
    """Today's in-memory builder on the whole corpus read at once: the reference."""
    ids, corpus = read_encoded(encoded)
    manifest = json.loads((encoded / "manifest.json").read_text())
    info = {key: manifest.get(key) for key in ("model", "vocab_hash", "query_max_length", "doc_max_length")}
    info["encoded"] = str(encoded)
    return build_index_from_matrix(corpus, ids, out, read_vocab(encoded), info, progress=False, **options)


def assert_same_folder(streamed: Path, reference: Path) -> None:
    names = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in streamed.iterdir()) == names
    for name in ARRAYS:
        a, b = np.load(streamed / f"{name}.npy"), np.load(reference / f"{name}.npy")
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert json.loads((streamed / "manifest.json").read_text()) == json.loads((reference / "manifest.json").read_text())
    for name in names:  # and byte for byte: .npy headers, doc_ids.txt, vocab.json
        assert (streamed / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.fixture(scope="module")
def synthetic_encoded(tmp_path_factory) -> Path:
    """3,000 topical synthetic documents (benchmarks/synthetic.py) in 7 shards, plus 10 empty documents."""
    spec = synthetic.SyntheticSpec(num_docs=3000, num_queries=5, seed=3)
    docs = synthetic.documents(spec)
    docs = sp.vstack([docs[:1500], sp.csr_matrix((10, spec.vocab), dtype=np.float32), docs[1500:]], format="csr")
    # Weights that are not integers: quantisation rounds, and some round to zero (dropped postings).
    rng = np.random.default_rng(0)
    docs.data = (docs.data * rng.uniform(0.001, 1.0, docs.nnz)).astype(np.float32)
    ids = [f"doc{i}" for i in range(docs.shape[0])]
    return write_encoded(tmp_path_factory.mktemp("synthetic") / "encoded", ids, docs,
                         [f"t{i}" for i in range(spec.vocab)], SYNTHETIC, shard_size=450)


@pytest.mark.parametrize("options", [
    {},
    {"bits": 16},
    {"block_size": 7, "reorder": "none"},
    {"block_size": 256, "scale": 3.0},
    {"block_size": 1},
], ids=["default", "16-bits", "block-7-no-reorder", "block-256-scale", "block-1"])
def test_streaming_build_equals_in_memory_build(synthetic_encoded, tmp_path, options):
    # Small buckets: the spill/read-back path runs over many buckets, as it does at MS MARCO size.
    build_index(synthetic_encoded, tmp_path / "streamed", progress=False, bucket_bytes=20_000, **options)
    reference_index(synthetic_encoded, tmp_path / "reference", **options)
    assert_same_folder(tmp_path / "streamed", tmp_path / "reference")


def test_16_bits_in_one_large_bucket_equals_in_memory_build(tmp_path):
    """70,000 slots in one bucket at 16 bits: the sort keys (slot << 16 | impact) pass 32 bits and take the
    8-byte buffer, which the small-bucket tests never reach."""
    assert layout.fill_key_dtype(70_000, 16) == np.uint64 and layout.fill_key_dtype(70_000, 8) == np.uint32
    rng = np.random.default_rng(11)
    matrix = sp.random(70_000, 40, density=0.06, random_state=rng, format="csr", dtype=np.float32) * 5
    encoded = write_encoded(tmp_path / "encoded", [f"d{i}" for i in range(70_000)], matrix,
                            [f"w{i}" for i in range(40)], SYNTHETIC, shard_size=30_000)
    build_index(encoded, tmp_path / "streamed", progress=False, bits=16, block_size=64)
    reference_index(encoded, tmp_path / "reference", bits=16, block_size=64)
    assert_same_folder(tmp_path / "streamed", tmp_path / "reference")


def test_past_65536_blocks_equals_in_memory_build(tmp_path):
    """140,000 one-slot blocks: three segments of 65,536 blocks (layout.block_segments), bm_blocks still uint16,
    each term's entries split by segment in bm_offsets; the streaming build, over many buckets, writes the same
    bytes as the in-memory one."""
    rng = np.random.default_rng(5)
    matrix = sp.random(140_000, 30, density=0.05, random_state=rng, format="csr", dtype=np.float32) * 5
    encoded = write_encoded(tmp_path / "encoded", [f"d{i}" for i in range(140_000)], matrix,
                            [f"w{i}" for i in range(30)], SYNTHETIC, shard_size=50_000)
    build_index(encoded, tmp_path / "streamed", progress=False, block_size=1, bucket_bytes=200_000)
    reference_index(encoded, tmp_path / "reference", block_size=1)
    assert_same_folder(tmp_path / "streamed", tmp_path / "reference")
    manifest = json.loads((tmp_path / "streamed" / "manifest.json").read_text())
    assert manifest["block_segments"] == 3 == layout.block_segments(140_000, 1)
    assert np.load(tmp_path / "streamed" / "bm_blocks.npy").dtype == np.uint16
    assert np.load(tmp_path / "streamed" / "bm_offsets.npy").shape == (30 * 3 + 1,)


def test_one_bucket_equals_many(synthetic_encoded, tmp_path):
    build_index(synthetic_encoded, tmp_path / "one", progress=False)
    build_index(synthetic_encoded, tmp_path / "many", progress=False, bucket_bytes=5_000)
    assert_same_folder(tmp_path / "one", tmp_path / "many")


def test_streaming_build_equals_in_memory_build_on_cranfield(cranfield_encoded, tmp_path):
    build_index(cranfield_encoded, tmp_path / "streamed", progress=False, bucket_bytes=50_000)
    reference_index(cranfield_encoded, tmp_path / "reference")
    assert_same_folder(tmp_path / "streamed", tmp_path / "reference")


def test_streaming_build_equals_in_memory_build_on_odd_small_corpus(tmp_path):
    """Few terms, exact duplicates (ties in the sort key), an empty document, one shard per document."""
    rng = np.random.default_rng(7)
    base = sp.random(20, 25, density=0.3, random_state=rng, format="csr", dtype=np.float32) * 3
    matrix = sp.vstack([base, base[::-1], sp.csr_matrix((1, 25), dtype=np.float32)], format="csr")
    encoded = write_encoded(tmp_path / "encoded", [f"d{41 - i}" for i in range(41)], matrix,
                            [f"w{i}" for i in range(25)], SYNTHETIC, shard_size=1)
    build_index(encoded, tmp_path / "streamed", progress=False, block_size=4, bucket_bytes=1)
    reference_index(encoded, tmp_path / "reference", block_size=4)
    assert_same_folder(tmp_path / "streamed", tmp_path / "reference")


# ------------------------------------------------------------------------------------------------ bad input


@pytest.fixture()
def small_encoded(synthetic_encoded, tmp_path) -> Path:
    copy = tmp_path / "encoded"
    shutil.copytree(synthetic_encoded, copy)
    return copy


def test_missing_shard_is_named(small_encoded, tmp_path):
    (small_encoded / "shard-00003.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"shard-00003\.npz \(shard 3 of .*manifest.json\): missing"):
        build_index(small_encoded, tmp_path / "index", progress=False)
    assert not (tmp_path / "index").exists()


def test_truncated_shard_is_named(small_encoded, tmp_path):
    shard = small_encoded / "shard-00005.npz"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"shard-00005\.npz .*unreadable or truncated"):
        build_index(small_encoded, tmp_path / "index", progress=False)


def test_shard_of_another_vocabulary_is_named(small_encoded, tmp_path):
    ids, matrix = read_encoded(small_encoded)
    save_shard(small_encoded / "shard-00002.npz", ids[900:1350], sp.csr_matrix(matrix[900:1350, :1000]))
    with pytest.raises(ValueError, match=r"shard-00002\.npz .*1000 columns, the folder's vocabulary has 30522 terms"):
        validate_shards(small_encoded)


def test_shard_with_other_row_count_than_manifest_is_named(small_encoded):
    manifest = json.loads((small_encoded / "manifest.json").read_text())
    manifest["shards"][1]["num_docs"] += 1
    write_json(small_encoded / "manifest.json", manifest)
    with pytest.raises(ValueError, match=r"shard-00001\.npz .*450 rows, the manifest records 451"):
        validate_shards(small_encoded)


def test_repeated_document_id_is_refused_by_the_library_call(tmp_path):
    """build_index itself (not only `splade index`) refuses ids used twice, even in two shards."""
    matrix = sp.random(6, 25, density=0.3, random_state=3, format="csr", dtype=np.float32)
    ids = ["d0", "d1", "d2", "d3", "d1", "d5"]
    encoded = write_encoded(tmp_path / "encoded", ids, matrix, [f"w{i}" for i in range(25)], SYNTHETIC, shard_size=3)
    with pytest.raises(ValueError, match="document id 'd1' is used twice, by documents 2 and 5"):
        build_index(encoded, tmp_path / "index", progress=False)
    assert not (tmp_path / "index").exists()


def test_full_disk_is_refused_before_writing(small_encoded, tmp_path, monkeypatch):
    monkeypatch.setattr(build_module.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(OSError, match=r"needs about \d+\.\d MiB free for the spilled postings.* has 0\.0 MiB"):
        build_index(small_encoded, tmp_path / "index", progress=False)
    assert not (tmp_path / "index").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index.")]


def test_encoded_folder_is_never_overwritten(small_encoded):
    before = {p.name: p.read_bytes() for p in small_encoded.iterdir()}
    with pytest.raises(FileExistsError, match="--overwrite only replaces an index .* format .splade-encoded."):
        build_index(small_encoded, small_encoded, overwrite=True, progress=False)
    assert {p.name: p.read_bytes() for p in small_encoded.iterdir()} == before


def test_index_files_follow_the_umask(small_encoded, tmp_path):
    old = os.umask(0o022)
    try:
        build_index(small_encoded, tmp_path / "index", progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "index").stat().st_mode & 0o777 == 0o755
    for path in (tmp_path / "index").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name


def _rewrite_shard(path: Path, mutate, save=np.savez) -> None:
    """The shard's arrays through `mutate(dict)`, written back by `save` (not through save_shard, which would
    sort and check what these tests break on purpose)."""
    with np.load(path) as z:
        members = {name: z[name] for name in z.files}
    mutate(members)
    with open(path, "wb") as f:
        save(f, **members)


def test_shard_with_unsorted_rows_builds_as_the_reference(small_encoded, tmp_path):
    """A shard of another writer whose rows are not sorted by term: sorted as the in-memory builder sorts them."""
    def reverse_rows(z):
        for d in range(z["indptr"].shape[0] - 1):
            row = slice(z["indptr"][d], z["indptr"][d + 1])
            z["indices"][row], z["data"][row] = z["indices"][row][::-1].copy(), z["data"][row][::-1].copy()

    _rewrite_shard(small_encoded / "shard-00004.npz", reverse_rows)
    build_index(small_encoded, tmp_path / "streamed", progress=False, bucket_bytes=20_000)
    reference_index(small_encoded, tmp_path / "reference")
    assert_same_folder(tmp_path / "streamed", tmp_path / "reference")


def test_compressed_shard_builds_as_the_reference(small_encoded, tmp_path):
    """Members compressed by another writer (np.savez_compressed) are read with numpy, not at their offsets."""
    _rewrite_shard(small_encoded / "shard-00003.npz", lambda z: None, save=np.savez_compressed)
    build_index(small_encoded, tmp_path / "streamed", progress=False, bucket_bytes=20_000)
    reference_index(small_encoded, tmp_path / "reference")
    assert_same_folder(tmp_path / "streamed", tmp_path / "reference")


def test_term_id_outside_the_vocabulary_is_named(small_encoded, tmp_path):
    def corrupt(z):
        z["indices"][5] = 40_000

    _rewrite_shard(small_encoded / "shard-00002.npz", corrupt)
    with pytest.raises(ValueError, match=r"shard-00002\.npz: term ids from \d+ to 40000, the vocabulary has 30522"):
        build_index(small_encoded, tmp_path / "index", progress=False)
    assert not (tmp_path / "index").exists()


def test_damaged_shard_is_named(small_encoded, tmp_path):
    """Same size, one byte of the weights changed: the CRC of the archive member tells."""
    shard = small_encoded / "shard-00001.npz"
    content = bytearray(shard.read_bytes())
    content[300] ^= 0xFF  # inside data.npy, the first member
    shard.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"shard-00001\.npz: member data\.npy does not match its CRC"):
        build_index(small_encoded, tmp_path / "index", progress=False)
