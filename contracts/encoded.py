"""Encoded corpus on disk: numbered shards of CSR matrices plus a manifest, resumable shard by shard.

Layout of an encoded folder written by one worker:
  manifest.json       model, vocabulary size and hash, max lengths, precision, shard size, the corpus it was made
                      from (its path and a fingerprint: size, mtime, documents and a digest of ids and texts), the
                      shards done (each with the digest of its documents), complete flag
  vocab.json          token strings in id order (the Lucene export spells terms with them)
  shard-00000.npz     data, indices, indptr (CSR float32 over the vocabulary) and the shard's doc ids

Written by N workers (`splade encode --shard-id I --shard-num N`), manifest.json holds what the workers share
(model, lengths, shard size, `workers`: N, the corpus's size and document count), and each worker I keeps its own
part manifest `part-I-of-N.json` (its range of documents, its shards `part-I-of-N-shard-00000.npz`, ..., complete
flag). A reader takes the folder only when every part is complete, in corpus order (`open_encoded`).

A shard is written atomically and only then recorded in the manifest, so a killed run resumes at the first
missing shard and produces the same files as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from contracts.atomic import atomic_path, write_json, write_text
from contracts.manifest import read_json

FORMAT = "splade-encoded"
FORMAT_VERSION = 1

# What must match for a folder to be resumed or reused: vectors of another model, vocabulary, length or
# precision must never be mixed with its shards.
IDENTITY = ("vocab_hash", "vocab_size", "doc_max_length", "model", "precision")
DEFAULTS = {"precision": "fp32"}  # folders written before a key existed hold what was then the only choice


class EncodedMismatch(ValueError):
    """The folder holds another encoding (model, vocabulary, length, precision, corpus, shard size or workers):
    `splade encode --overwrite` encodes it again."""


def part_name(shard_id: int, shard_num: int) -> str:
    """The part manifest of worker `shard_id` of `shard_num`."""
    return f"part-{shard_id}-of-{shard_num}.json"


def shard_name(number: int, shard_id: int = 0, shard_num: int = 1) -> str:
    """The file of shard `number` of a worker's part (one worker: shard-00000.npz, as always)."""
    prefix = "" if shard_num == 1 else f"part-{shard_id}-of-{shard_num}-"
    return f"{prefix}shard-{number:05d}.npz"


def worker_range(shard_id: int, shard_num: int, total: int) -> tuple[int, int]:
    """[start, stop) of the documents worker `shard_id` of `shard_num` encodes: the I-th contiguous range.

    Raises:
        ValueError: shard_id outside [0, shard_num) or shard_num below 1.
    """
    if shard_num < 1 or not 0 <= shard_id < shard_num:
        raise ValueError(f"--shard-id {shard_id} --shard-num {shard_num}: expected 0 <= shard id < shard count")
    return shard_id * total // shard_num, (shard_id + 1) * total // shard_num


class DocumentDigest:
    """A streaming SHA-256 of (id, text) pairs: the fingerprint of a range of the corpus, computed while encoding."""

    def __init__(self):
        self._hash = hashlib.sha256()

    def update(self, doc_id: str, text: str) -> None:
        """Add one document (length-prefixed, so that no two different sequences give the same bytes)."""
        for value in (doc_id, text):
            data = value.encode("utf-8", "surrogatepass")
            self._hash.update(len(data).to_bytes(8, "little"))
            self._hash.update(data)

    def hexdigest(self) -> str:
        """The first 32 hex digits of the digest."""
        return self._hash.hexdigest()[:32]


def file_stamp(source: str | None) -> dict:
    """Size and modification time of the corpus file `source` ({} when it is not a file): if both are unchanged,
    a finished folder is taken as current without reading the corpus again."""
    if not source or not Path(source).is_file():
        return {}
    stat = Path(source).stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def check_identity(manifest: dict, info: dict, path: Path) -> None:
    """Refuse a folder made with another model, vocabulary, document length or precision.

    Raises:
        ValueError: naming the manifest, the key and both values.
    """
    for key in IDENTITY:
        recorded, wanted = manifest.get(key, DEFAULTS.get(key)), info.get(key, DEFAULTS.get(key))
        if recorded != wanted:
            raise EncodedMismatch(
                f"{path}: this folder was encoded with {key}={recorded!r}, not {wanted!r}; "
                f"use another --output folder, or pass --overwrite to encode it again"
            )


def start_or_resume(out: Path, info: dict, shard_size: int, shard_id: int = 0, shard_num: int = 1,
                    corpus: dict | None = None, replace: bool = False) -> dict:
    """The manifest a worker appends its shards to: a new one, or the one it resumes.

    One worker keeps everything in manifest.json; worker I of N > 1 writes the shared manifest.json (the same
    content from every worker) and its own part manifest.

    Args:
        out: the encoded folder.
        info: the encoder's description (`SpladeEncoder.describe()`) and `source`.
        shard_size: documents per shard.
        shard_id, shard_num: this worker and the number of workers.
        corpus: what every worker knows of the corpus (`documents`, and the file's `size` when known).
        replace: start afresh (--overwrite): write the shared manifest and this worker's part anew.

    Returns:
        The worker's manifest (manifest.json for one worker, its part manifest otherwise), with "shards",
        "complete" and, for a part, "start" and "stop".

    Raises:
        EncodedMismatch (a ValueError): the folder holds another model's, length's or precision's encoding,
            another shard size or number of workers, or a part of another range.
    """
    path = out / "manifest.json"
    corpus = corpus or {}
    common = {"format": FORMAT, "format_version": FORMAT_VERSION, **info, "shard_size": shard_size}
    if shard_num > 1:
        common.update({"workers": shard_num, "corpus": {k: corpus[k] for k in ("documents", "size") if k in corpus}})
    if path.exists() and not replace:
        manifest = read_json(path, what="encoded-corpus manifest")
        check_format(manifest, path)
        check_identity(manifest, info, path)
        if manifest["shard_size"] != shard_size:
            raise EncodedMismatch(f"{path}: shard size {manifest['shard_size']} differs from {shard_size}; resume with "
                             f"the same one")
        workers = int(manifest.get("workers", 1))
        if workers != shard_num:
            raise EncodedMismatch(f"{path}: this folder is being encoded by {workers} worker(s) "
                                  f"(--shard-num {workers}), "
                             f"not {shard_num}; use the same --shard-num or another --output folder")
        if shard_num == 1:
            return manifest
        if manifest.get("corpus") != common["corpus"]:
            raise EncodedMismatch(f"{path}: the other workers encode a corpus of {manifest.get('corpus')}, this one "
                             f"{common['corpus']}: the corpus changed; pass --overwrite to every worker")
    else:
        write_json(path, {**common, **({} if shard_num > 1 else {"shards": [], "complete": False})})
        if shard_num == 1:
            return read_json(path, what="encoded-corpus manifest")
    part_path = out / part_name(shard_id, shard_num)
    start, stop = worker_range(shard_id, shard_num, int(corpus["documents"]))
    if part_path.exists() and not replace:
        part = read_json(part_path, what="encoded-corpus part manifest")
        if (part.get("start"), part.get("stop")) != (start, stop):
            raise EncodedMismatch(f"{part_path}: this part holds documents {part.get('start')}..{part.get('stop')}, "
                             f"not {start}..{stop}; the corpus changed, pass --overwrite")
        return part
    part = {"format": FORMAT, "format_version": FORMAT_VERSION, "part": shard_id, "workers": shard_num,
            "start": start, "stop": stop, "shards": [], "complete": False}
    write_json(part_path, part)
    return part


def check_format(manifest: dict, path: Path) -> None:
    """Raises ValueError when `manifest` is not an encoded folder's manifest of this format version."""
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )


def save_shard(path: Path, ids: list[str], matrix: sp.csr_matrix) -> None:
    """Write one shard (CSR float32 and its doc ids) atomically."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, data=matrix.data, indices=matrix.indices.astype(np.int32),
                     indptr=matrix.indptr.astype(np.int64), shape=np.asarray(matrix.shape, dtype=np.int64),
                     ids=np.asarray(ids, dtype=str))


def write_encoded(folder: str | Path, ids: Sequence[str], matrix: sp.spmatrix, vocab: Sequence[str], info: Mapping,
                  shard_size: int) -> Path:
    """A complete encoded folder of vectors already in memory (benchmarks, tests), written as `encode_corpus`
    writes one: the manifest of `start_or_resume`, the shards of `save_shard`, vocab.json.

    Args:
        folder: the encoded folder (created; a manifest already there is replaced).
        ids: the document ids, one per row of `matrix`.
        matrix: [num_docs, vocab] document weights.
        vocab: the token strings in id order (vocab_size is its length).
        info: what the manifest says of the vectors: "model", "vocab_hash", "query_max_length", "doc_max_length".
        shard_size: rows per shard.

    Returns:
        `folder`, ready for `open_encoded` and the index builders.

    Raises:
        ValueError: the ids are not one per row, or the matrix has another width than the vocabulary.
    """
    folder = Path(folder)
    if len(ids) != matrix.shape[0] or matrix.shape[1] != len(vocab):
        raise ValueError(f"{folder}: {len(ids)} ids and {len(vocab)} tokens for a matrix of shape {matrix.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = start_or_resume(folder, {**info, "vocab_size": len(vocab)}, shard_size, replace=True)
    write_text(folder / "vocab.json", json.dumps(list(vocab), ensure_ascii=False))
    matrix = sp.csr_matrix(matrix)
    for start in range(0, len(ids), shard_size):
        part = matrix[start : start + shard_size]
        name = shard_name(len(manifest["shards"]))
        save_shard(folder / name, list(ids[start : start + shard_size]), part)
        manifest["shards"].append({"file": name, "num_docs": part.shape[0], "nnz": int(part.nnz)})
    manifest.update(complete=True, num_docs=len(ids))
    write_json(folder / "manifest.json", manifest)
    return folder


def load_shard(path: Path) -> tuple[list[str], sp.csr_matrix]:
    """(doc ids, CSR matrix) of one shard."""
    with np.load(path) as z:
        shape = tuple(int(x) for x in z["shape"])
        matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        return z["ids"].tolist(), matrix


def load_shard_ids(path: Path) -> list[str]:
    """The doc ids of one shard, without reading its weights."""
    with np.load(path) as z:
        return z["ids"].tolist()


def open_encoded(folder: str | Path) -> dict:
    """The manifest of a complete encoded folder, or a clear error.

    For a folder of N workers, the parts are merged: "shards" lists every part's shards in corpus order and
    "num_docs" counts them all, so a reader sees one folder whoever wrote it.

    Raises:
        FileNotFoundError: no manifest.
        ValueError: another format, an unfinished encoding, or (N workers) missing or unfinished parts, named,
            or parts that do not cover the corpus in order.
    """
    folder = Path(folder)
    path = folder / "manifest.json"
    manifest = read_json(path, what="encoded-corpus manifest")
    check_format(manifest, path)
    workers = int(manifest.get("workers", 1))
    if workers == 1:
        if not manifest.get("complete"):
            raise ValueError(f"{folder}: encoding stopped after {len(manifest['shards'])} shards; run `splade encode` "
                             f"again to finish it")
        return manifest
    parts, missing, unfinished = [], [], []
    for shard_id in range(workers):
        part_path = folder / part_name(shard_id, workers)
        if not part_path.exists():
            missing.append(shard_id)
            continue
        part = read_json(part_path, what="encoded-corpus part manifest")
        if not part.get("complete"):
            unfinished.append(f"{shard_id} ({len(part['shards'])} shards done)")
        parts.append(part)
    if missing or unfinished:
        said = ([f"parts not started: {', '.join(map(str, missing))}"] if missing else []) + \
               ([f"parts not finished: {', '.join(unfinished)}"] if unfinished else [])
        raise ValueError(f"{folder}: encoded by {workers} workers, but {'; '.join(said)}; run `splade encode "
                         f"--shard-id I --shard-num {workers}` for each of them to finish it")
    expected = 0
    for part in parts:
        if part["start"] != expected:
            raise ValueError(f"{folder / part_name(part['part'], workers)}: starts at document {part['start']}, "
                             f"expected {expected}; the parts do not cover the corpus in order")
        expected = part["stop"]
    if expected != manifest["corpus"]["documents"]:
        raise ValueError(f"{folder}: the parts cover {expected} documents, the corpus has "
                         f"{manifest['corpus']['documents']}")
    shards = [shard for part in parts for shard in part["shards"]]
    return {**manifest, "shards": shards, "complete": True, "num_docs": sum(s["num_docs"] for s in shards)}


def check_unique_ids(ids: Iterable[str], where: str = "the corpus") -> None:
    """Refuse duplicate document ids: a search hit on the second would be reported under the first's id.

    Args:
        ids: the doc ids in corpus order.
        where: what they come from, for the message.

    Raises:
        ValueError: naming the id and both documents (1-based, in corpus order).
    """
    seen: dict[str, int] = {}
    for number, doc_id in enumerate(ids, 1):
        first = seen.setdefault(doc_id, number)
        if first != number:
            raise ValueError(f"{where}: document id {doc_id!r} is used twice, by documents {first} and {number} (in "
                             f"corpus order); ids must be unique")


def check_encoded_ids(folder: str | Path) -> None:
    """Refuse a complete encoded folder (one worker or N) whose shards repeat a document id; reads ids only.

    WHY hashes first: a dict of MS MARCO's 8.8M ids takes over a GB, their 8-byte hashes 70 MB; only ids whose hash
    repeats (a duplicate, or rarely a collision) are then compared exactly, in a second pass over the ids.

    Raises:
        ValueError: as `check_unique_ids`, naming the folder; or as `validate_shards`, naming a damaged shard.
        FileNotFoundError: a shard is missing (named).
    """
    folder = Path(folder)
    files = [shard["path"] for shard in validate_shards(folder)[1]]  # a missing or truncated shard named first
    hashes = np.concatenate([np.fromiter(map(hash, load_shard_ids(f)), dtype=np.int64) for f in files]
                            or [np.empty(0, dtype=np.int64)])
    hashes.sort()
    repeated = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
    if not repeated:
        return
    seen: dict[str, int] = {}
    for number, doc_id in enumerate((doc_id for f in files for doc_id in load_shard_ids(f)), 1):
        if hash(doc_id) in repeated:
            first = seen.setdefault(doc_id, number)
            if first != number:
                raise ValueError(f"{folder}: document id {doc_id!r} is used twice, by documents {first} and {number} "
                                 f"(in corpus order); ids must be unique")


def iter_shards(folder: str | Path) -> Iterator[tuple[list[str], sp.csr_matrix]]:
    """(doc ids, CSR matrix) of every shard of a complete folder, in corpus order."""
    folder = Path(folder)
    for shard in open_encoded(folder)["shards"]:
        yield load_shard(folder / shard["file"])


def read_encoded(folder: str | Path) -> tuple[list[str], sp.csr_matrix]:
    """All doc ids and one CSR matrix (float32) for the whole encoded corpus.

    Raises:
        ValueError: an incomplete folder, or one that holds no documents.
    """
    ids, parts = [], []
    for shard_ids, matrix in iter_shards(folder):
        ids.extend(shard_ids)
        parts.append(matrix)
    if not parts:
        raise ValueError(f"{folder}: the encoded corpus holds no documents")
    return ids, sp.vstack(parts, format="csr")


def read_vocab(folder: str | Path) -> list[str]:
    """The token strings of an encoded folder, in id order."""
    return json.loads((Path(folder) / "vocab.json").read_text(encoding="utf-8"))


_SHARD_MEMBERS = ("data", "indices", "indptr", "shape", "ids")


def validate_shards(folder: str | Path) -> tuple[dict, list[dict]]:
    """Checks every shard of a complete encoded folder before hours of work, reading headers, not weights.

    Each shard must exist, be a readable archive of the five arrays whose stored sizes match their headers (a
    truncated copy fails here), have the manifest's vocabulary size, and one id per row.

    Returns:
        (the manifest, [{"path", "num_docs", "nnz"} per shard, in order]).

    Raises:
        FileNotFoundError: a shard listed in the manifest is missing (named).
        ValueError: a shard is unreadable, truncated, or of another shape or vocabulary size (named, with why).
    """
    folder = Path(folder)
    manifest = open_encoded(folder)
    vocab_size = manifest.get("vocab_size")
    out = []
    for number, entry in enumerate(manifest["shards"]):
        path = folder / entry["file"]
        where = f"{path} (shard {number} of {folder / 'manifest.json'})"
        if not path.is_file():
            raise FileNotFoundError(f"{where}: missing; re-run `splade encode` on this folder to write it again")
        try:
            headers, shape, indptr_end = _shard_headers(path)
        except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as error:
            raise ValueError(f"{where}: unreadable or truncated ({error}); delete it and re-run `splade encode`") \
                from None
        rows, cols = shape
        nnz = headers["data"][0]
        problems = []
        if vocab_size is not None and cols != int(vocab_size):
            problems.append(f"{cols} columns, the folder's vocabulary has {vocab_size} terms")
        if headers["ids"][0] != rows or headers["indptr"][0] != rows + 1:
            problems.append(f"{headers['ids'][0]} ids and {headers['indptr'][0]} row pointers for {rows} rows")
        if headers["indices"][0] != nnz or indptr_end != nnz:
            problems.append(f"{headers['indices'][0]} term ids, {nnz} weights, row pointers ending at {indptr_end}")
        if entry.get("num_docs") is not None and int(entry["num_docs"]) != rows:
            problems.append(f"{rows} rows, the manifest records {entry['num_docs']}")
        if problems:
            raise ValueError(f"{where}: {'; '.join(problems)}; re-encode this folder")
        out.append({"path": path, "num_docs": rows, "nnz": nnz})
    return manifest, out


def read_npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the .npy array that starts at `f`'s position, leaving `f` at its first data byte.

    Args:
        f: a binary file (or zip member) positioned at a .npy magic string.

    Returns:
        (shape, dtype).
    """
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    return shape, dtype


class ShardReader:
    """Shard members read straight into buffers reused from shard to shard (and pass to pass): the fast reader of
    the shard format, for a caller that reads every shard several times (the index build).

    WHY not np.load: it reads a member through zipfile (a copy per chunk and a CRC per read) into fresh memory
    each time, and the build reads every shard three times; at 1M documents that was a fifth of the build. The
    shards are np.savez archives (contracts.encoded.save_shard), whose members are stored, not compressed, so
    each is a plain .npy at a known offset of the file. Each member's CRC is still checked, the first time the
    build reads it; a compressed member (another writer) is read with numpy.
    """

    def __init__(self):
        self._buffers: dict[tuple[str, str], np.ndarray] = {}
        self._checked: set[tuple[Path, str]] = set()

    def read(self, path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """{name: array} of one shard; the arrays are views of the reader's buffers, valid until its next read.

        Raises:
            ValueError: a member that does not match its CRC or ends early (the shard named).
        """
        out = {}
        with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
            for name in names:
                info = archive.getinfo(f"{name}.npy")
                if info.compress_type != zipfile.ZIP_STORED:
                    with archive.open(info) as member:
                        out[name] = np.lib.format.read_array(member)
                    continue
                f.seek(info.header_offset)
                local = f.read(30)  # the local file header: fixed part, then the name and an extra field
                member_start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
                    int.from_bytes(local[28:30], "little")
                f.seek(member_start)
                shape, dtype = read_npy_header(f)
                header_end = f.tell()
                count = int(np.prod(shape)) if shape else 1
                array = self._buffer(name, dtype, count)
                got = f.readinto(memoryview(array).cast("B")) if array.nbytes else 0
                if got != array.nbytes:
                    raise ValueError(f"{path}: member {name}.npy ends after {got} of {array.nbytes} bytes")
                if (path, name) not in self._checked:
                    f.seek(member_start)
                    crc = zlib.crc32(memoryview(array).cast("B"), zlib.crc32(f.read(header_end - member_start)))
                    if crc != info.CRC:
                        raise ValueError(f"{path}: member {name}.npy does not match its CRC (the file is damaged); "
                                         f"re-encode this shard")
                    self._checked.add((path, name))
                out[name] = array.reshape(shape)
        return out

    def _buffer(self, name: str, dtype: np.dtype, count: int) -> np.ndarray:
        key = (name, dtype.str)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.shape[0] < count:
            buffer = self._buffers[key] = np.empty(max(count, 1), dtype=dtype)
        return buffer[:count]


def _shard_headers(path: Path) -> tuple[dict[str, tuple[int, int]], tuple[int, int], int]:
    """{member: (length, stored bytes)}, the matrix shape and the last row pointer of one shard archive."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for name in _SHARD_MEMBERS:
            info = archive.getinfo(f"{name}.npy")
            with archive.open(info) as f:
                shape, dtype = read_npy_header(f)
                header_bytes = f.tell()
            length = int(np.prod(shape)) if shape else 1
            if info.file_size != header_bytes + length * dtype.itemsize:
                raise ValueError(f"{name} holds {info.file_size - header_bytes} bytes, its header says "
                                 f"{length * dtype.itemsize}")
            headers[name] = (length, info.file_size)
        with archive.open("shape.npy") as f:
            shape = tuple(int(x) for x in np.lib.format.read_array(f))
        with archive.open("indptr.npy") as f:
            indptr = np.lib.format.read_array(f)
    if len(shape) != 2:
        raise ValueError(f"shape {shape} is not a matrix's")
    return headers, shape, int(indptr[-1]) if indptr.size else 0
