"""What every index folder shares, whatever the back end: the quantisation rule, the folder files and checks.

An index folder (numba or Lucene) holds a `manifest.json` with the common keys of `common_manifest`, the
external document ids in `doc_ids.txt` (one per line, in internal order) and the model's tokens in
`vocab.json`; queries are quantised with the index's scale by `quantize`, the one quantisation rule
(DESIGN.md: round(w * scale), unsigned integers, zeros dropped).

FOR THE BUILDERS (SCALE; these names stay stable):
  check_bits(bits)                               8 or 16, else ValueError
  check_overwrite(index_dir, overwrite, fmt)     FileExistsError unless the folder may be (re)built
  default_scale(max_weight, bits)                the largest scale that keeps every weight within `bits`
  common_manifest(fmt, version, info, vocab_size=, num_docs=, num_postings=, scale=, bits=)
                                                 the manifest keys every index folder has (add your own after)
  write_folder_files(folder, doc_ids, vocab)     doc_ids.txt and vocab.json, atomically
  describe_arrays(arrays)                        {name: {"length", "dtype", "sha256"}}: store it under the
                                                 manifest key ARRAYS_KEY ("arrays"); the loader checks every
                                                 array's length and dtype against it, `verify_arrays` the sha256
                                                 (the hash of the array's data bytes in C order, not of the .npy file)
  index_of_format(fmt)                           what `contracts.atomic.atomic_folder(index_dir, overwrite,
                                                 index_of_format(FORMAT), what)` may replace: build in a fresh
                                                 folder beside index_dir, swapped in only when the block completes
  directory_size(path)                           bytes of the files under a folder
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from contracts.atomic import write_text
from contracts.manifest import read_json, read_manifest

__all__ = [
    "ARRAYS_KEY", "BITS", "DOC_IDS_FILE", "IndexTooLargeError", "QuantizedIndex", "SearchableIndex", "VOCAB_FILE",
    "array_sha256", "check_arrays", "check_bits", "check_memory", "check_overwrite", "common_manifest",
    "default_scale", "describe_arrays", "directory_size", "empty_query_rows", "index_of_format", "open_index_folder",
    "quantize", "read_doc_ids", "read_vocab_file", "verify_arrays", "write_folder_files",
]

BITS = (8, 16)
DOC_IDS_FILE = "doc_ids.txt"
VOCAB_FILE = "vocab.json"
MANIFEST_FILE = "manifest.json"
ARRAYS_KEY = "arrays"  # manifest key of describe_arrays' output
_HASH_CHUNK = 64 * 2**20  # bytes hashed at a time: a multi-GB memory-mapped array is never copied whole


# ---------------------------------------------------------------------------------------------- quantisation


def quantize(matrix: sp.csr_matrix, scale: float, bits: int | None) -> sp.csr_matrix:
    """The quantisation rule of every back end (DESIGN.md): round(w * scale) as integers, zeros dropped.

    Args:
        matrix: float weights, one row per document or query.
        scale: the index's quantisation scale.
        bits: clip to what this many bits hold (documents); None for no limit (queries are never stored).

    Returns:
        A CSR matrix of int64 values.
    """
    q = matrix.copy().astype(np.float64)
    q.data = np.rint(q.data * scale)
    if bits is not None:
        np.clip(q.data, 0, 2**bits - 1, out=q.data)
    q.data = q.data.astype(np.int64)
    q.eliminate_zeros()
    return q


def default_scale(max_weight: float, bits: int) -> float:
    """The largest scale at which the heaviest weight of the corpus still fits in `bits` bits.

    Args:
        max_weight: the heaviest document weight of the corpus.
        bits: the bits of a stored impact (8 or 16).

    Returns:
        (2**bits - 1) / max_weight.

    Raises:
        ValueError: the corpus has no positive weight.
    """
    if max_weight <= 0:
        raise ValueError("the encoded corpus has no positive weight: nothing to index")
    return (2**bits - 1) / max_weight


def empty_query_rows(queries: sp.csr_matrix) -> np.ndarray:
    """Rows of quantised queries without a positive weight: they would match nothing, or by accident anything.

    Args:
        queries: quantised query vectors, one row per query.

    Returns:
        The numbers of the empty rows, ascending.
    """
    q = sp.csr_matrix(queries)
    rows = np.repeat(np.arange(q.shape[0]), np.diff(q.indptr))
    has_weight = np.zeros(q.shape[0], dtype=bool)
    has_weight[rows[q.data > 0]] = True
    return np.flatnonzero(~has_weight)


# ------------------------------------------------------------------------------------------- building a folder


def check_bits(bits: int) -> None:
    """Refuses bits that no back end stores, before any work.

    Args:
        bits: the requested bits per impact.

    Raises:
        ValueError: `bits` is not 8 or 16.
    """
    if bits not in BITS:
        raise ValueError(f"bits must be 8 or 16, got {bits}")


def check_overwrite(index_dir: str | Path, overwrite: bool, fmt: str) -> None:
    """Refuses to build into a folder that holds something, unless `overwrite` and it is an index of format `fmt`.

    A missing or empty folder is always fine. WHY refuse another kind with --overwrite: `splade index --output E
    --overwrite` pointed at an encoded folder (or any folder) would destroy it. Checked before any work, with the
    format found in the message; `atomic_folder` checks again (`index_of_format`) just before the swap.

    Args:
        index_dir: the folder to build.
        overwrite: whether an existing index there may be replaced (--overwrite).
        fmt: the format of the index being built.

    Raises:
        FileExistsError: the folder holds something and overwrite is off, or it is not an index of `fmt`.
    """
    index_dir = Path(index_dir)
    if not index_dir.exists():
        return
    if not index_dir.is_dir():
        raise FileExistsError(f"{index_dir}: a file is there, not an index folder; choose another output folder")
    if not any(index_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{index_dir}: the folder already exists; pass --overwrite to replace it")
    found = _manifest_format(index_dir)
    if found != fmt:
        what = f"a folder of format {found!r}" if found else "a folder that is not an index"
        raise FileExistsError(
            f"{index_dir}: --overwrite only replaces an index of format {fmt!r} built by this project, and this is "
            f"{what}; choose another output folder or delete it yourself"
        )


def index_of_format(fmt: str) -> Callable[[Path], bool]:
    """The `is_replaceable` test that the builders give `contracts.atomic.atomic_folder`: True only for an index
    folder of format `fmt`, so that `--overwrite` never replaces an encoded folder, another back end's index or
    anything else (checked again just before the swap; `check_overwrite` says why earlier, before any work).

    Args:
        fmt: the back end's format name (its manifest's "format").

    Returns:
        A function of a folder: whether its manifest.json names format `fmt`.
    """
    return lambda folder: _manifest_format(folder) == fmt


def _manifest_format(folder: Path) -> str | None:
    try:
        return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def common_manifest(fmt: str, version: int, info: Mapping, *, vocab_size: int, num_docs: int, num_postings: int,
                    scale: float, bits: int) -> dict:
    """The manifest keys every index folder has.

    Args:
        fmt, version: the back end's format name and version.
        info: where the vectors came from: the encoded folder's manifest or a dict with "model", "vocab_hash",
            "query_max_length", "doc_max_length" and "encoded" (the encoded folder), any of them missing = None.
        vocab_size, num_docs, num_postings, scale, bits: what the index holds and how it was quantised.

    Returns:
        A new dict; the back end adds its own keys.
    """
    return {
        "format": fmt,
        "format_version": int(version),
        "model": info.get("model"),
        "vocab_size": int(vocab_size),
        "vocab_hash": info.get("vocab_hash"),
        "query_max_length": info.get("query_max_length"),
        "doc_max_length": info.get("doc_max_length"),
        "num_docs": int(num_docs),
        "num_postings": int(num_postings),
        "scale": float(scale),
        "bits": int(bits),
        "encoded": None if info.get("encoded") is None else str(info.get("encoded")),
    }


def write_folder_files(folder: str | Path, doc_ids: Sequence[str], vocab: Sequence[str] | None) -> None:
    """Writes `doc_ids.txt` (one id per line, internal order) and, when given, `vocab.json`, atomically.

    Args:
        folder: the index folder being built.
        doc_ids: the external document ids in internal order.
        vocab: the model's tokens in id order; None writes no vocab.json.
    """
    folder = Path(folder)
    write_text(folder / DOC_IDS_FILE, "".join(f"{i}\n" for i in doc_ids))
    if vocab is not None:
        write_text(folder / VOCAB_FILE, json.dumps(list(vocab), ensure_ascii=False))


def _array_bytes(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array)).cast("B")


def array_sha256(array: np.ndarray) -> str:
    """sha256 of the array's data bytes, streamed in chunks (a memory-mapped array is read once, not copied).

    Args:
        array: any numpy array (hashed in C order).

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    data = _array_bytes(array)
    for start in range(0, data.nbytes, _HASH_CHUNK):
        digest.update(data[start : start + _HASH_CHUNK])
    return digest.hexdigest()


def describe_arrays(arrays: Mapping[str, np.ndarray], checksums: bool = True) -> dict[str, dict]:
    """What the manifest records of each 1-D array: {name: {"length": n, "dtype": "uint8", "sha256": hex}}.

    Args:
        arrays: name (the file is `{name}.npy`) -> the array as saved.
        checksums: False leaves out "sha256" (then `verify_arrays` has nothing to compare).

    Returns:
        {name: record}, to store under the manifest key ARRAYS_KEY.

    Raises:
        ValueError: an array is not one-dimensional.
    """
    out = {}
    for name, array in arrays.items():
        if np.ndim(array) != 1:
            raise ValueError(f"{name}: index arrays are one-dimensional, this one has shape {np.shape(array)}")
        entry = {"length": int(array.shape[0]), "dtype": np.dtype(array.dtype).name}
        if checksums:
            entry["sha256"] = array_sha256(array)
        out[name] = entry
    return out


def check_arrays(folder: str | Path, manifest: Mapping, arrays: Mapping[str, np.ndarray]) -> None:
    """Checks every loaded array against the manifest's record (length and dtype; cheap, no hashing).

    Args:
        folder: the index folder (for the messages).
        manifest: its manifest, with the ARRAYS_KEY record.
        arrays: name -> the array as loaded.

    Raises:
        ValueError: an array missing from the record, or of another length or dtype, naming the file.
    """
    folder = Path(folder)
    record = manifest.get(ARRAYS_KEY) or {}
    for name, array in arrays.items():
        path = folder / f"{name}.npy"
        expected = record.get(name)
        if expected is None:
            raise ValueError(f"{folder / MANIFEST_FILE}: no record of {name}.npy (a damaged manifest?); "
                             f"rebuild the index")
        if np.ndim(array) != 1:
            raise ValueError(f"{path}: expected a one-dimensional array, found shape {np.shape(array)}; "
                             f"rebuild the index")
        if np.dtype(array.dtype).name != expected["dtype"]:
            raise ValueError(f"{path}: expected dtype {expected['dtype']}, found {np.dtype(array.dtype).name} "
                             f"(a file replaced or damaged?); rebuild the index")
        if int(array.shape[0]) != int(expected["length"]):
            raise ValueError(f"{path}: expected {int(expected['length']):,} values, found {int(array.shape[0]):,} "
                             f"(a truncated or partial copy?); rebuild the index")


def verify_arrays(folder: str | Path, manifest: Mapping, arrays: Mapping[str, np.ndarray]) -> dict[str, bool]:
    """Recomputes every array's sha256 and compares it with the manifest (for a copied or suspect index).

    Args:
        folder: the index folder (for the messages).
        manifest: its manifest, with the ARRAYS_KEY record.
        arrays: name -> the array as loaded.

    Returns:
        {name: True when its checksum matches}.

    Raises:
        ValueError: the manifest records no checksum for an array.
    """
    record = manifest.get(ARRAYS_KEY) or {}
    result = {}
    for name, array in arrays.items():
        expected = (record.get(name) or {}).get("sha256")
        if expected is None:
            raise ValueError(f"{Path(folder) / MANIFEST_FILE}: no checksum recorded for {name}.npy")
        result[name] = array_sha256(array) == expected
    return result


def directory_size(path: str | Path) -> int:
    """Bytes of all files under a folder (recursively): what an index takes on disk.

    Args:
        path: the folder.

    Returns:
        The sum of the files' sizes.
    """
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# -------------------------------------------------------------------------------------------- loading a folder


def open_index_folder(path: str | Path, fmt: str, version: int, what: str, rebuild: str) -> tuple[Path, dict]:
    """The folder and its manifest, after checking that `path` is an index folder of this format and version.

    Args:
        path: what the user named as the index.
        fmt, version: the back end's format name and version.
        what: the kind of folder, for the messages ("numba impact index").
        rebuild: what to do about another version, for the message (the command that rebuilds it).

    Returns:
        (the folder, its manifest).

    Raises:
        FileNotFoundError: nothing at `path`, or no manifest in it.
        ValueError: `path` is a file (manifest.json itself, or any other), or the manifest is of another format
            or version.
    """
    path = Path(path)
    if path.is_file():
        if path.name == MANIFEST_FILE:
            raise ValueError(f"{path}: this is the manifest; pass the {what} folder itself: {path.parent}")
        raise ValueError(f"{path}: a file; expected the {what} folder (a folder with manifest.json, written by "
                         f"`splade index`)")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what} folder")
    return path, read_manifest(path, fmt, version, what, rebuild)


def read_doc_ids(folder: str | Path, expected: int | None = None) -> list[str]:
    """The external document ids of `doc_ids.txt`, in internal order.

    Args:
        folder: the index folder.
        expected: the number of documents the manifest records; None checks nothing.

    Returns:
        The ids, one per internal document number.

    Raises:
        FileNotFoundError: the file is missing. ValueError: it holds another number of ids than `expected`.
    """
    path = Path(folder) / DOC_IDS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (a partial copy of the index?); rebuild the index")
    ids = path.read_text(encoding="utf-8").split("\n")[:-1]
    if expected is not None and len(ids) != expected:
        raise ValueError(f"{path}: {len(ids):,} ids, the manifest says {expected:,} documents (a partial copy?); "
                         f"rebuild the index")
    return ids


def read_vocab_file(folder: str | Path, expected: int | None = None) -> list[str]:
    """The model's tokens of `vocab.json`, in id order.

    Args:
        folder: the index (or encoded) folder.
        expected: the vocabulary size the manifest records; None checks nothing.

    Returns:
        The tokens.

    Raises:
        FileNotFoundError: the file is missing. ValueError: not a JSON list, or of another size than `expected`.
    """
    path = Path(folder) / VOCAB_FILE
    vocab = read_json(path, what="vocabulary")
    if not isinstance(vocab, list):
        raise ValueError(f"{path}: expected a JSON list of tokens")
    if expected is not None and len(vocab) != expected:
        raise ValueError(f"{path}: {len(vocab):,} tokens, the manifest says {expected:,} (a partial copy?); "
                         f"rebuild the index")
    return vocab


def _available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is none: not Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class IndexTooLargeError(ValueError, MemoryError):
    """An index that would not fit in the memory available (a ValueError too, so the CLI prints it as one line)."""


def check_memory(path: str | Path, needed: int, what: str = "index") -> None:
    """Refuses to read `needed` bytes into memory when the machine has less available, before it runs out.

    Args:
        path: the index folder (for the message).
        needed: the bytes reading it would take.
        what: the kind of folder, for the message.

    Raises:
        IndexTooLargeError: with the figures and what to do instead (mmap=True, `--mmap`).
    """
    available = _available_memory()
    if available is not None and needed > available:
        raise IndexTooLargeError(
            f"{path}: reading this {what} into memory needs {needed / 2**30:.2f} GiB and {available / 2**30:.2f} GiB "
            f"is available; memory-map it instead (ImpactIndex.load(path, mmap=True), `splade retrieve --mmap`)"
        )


# ---------------------------------------------------------------------------------------------- the interface


@runtime_checkable
class SearchableIndex(Protocol):
    """What `retrieval.retrieve()` needs of an index, whatever the back end (ImpactIndex, LuceneImpactIndex)."""

    path: Path
    manifest: dict
    doc_ids: list[str]

    @property
    def num_docs(self) -> int:
        """Documents in the index."""

    @property
    def scale(self) -> float:
        """The quantisation scale of documents and queries."""

    @property
    def doc_freqs(self) -> np.ndarray:
        """Documents per term (the FLOPS figures of `evaluation.flops` are computed from them)."""

    def check_vocabulary(self, vocab_hash: str, vocab_size: int, what: str = "the query encoder") -> None:
        """Refuses queries of another vocabulary (see `QuantizedIndex.check_vocabulary`).

        Args:
            vocab_hash, vocab_size: the query encoder's vocabulary.
            what: who encodes the queries, for the message.

        Raises:
            ValueError: the vocabularies differ.
        """

    def quantize_queries(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        """Queries in the index's integers (see `QuantizedIndex.quantize_queries`).

        Args:
            queries: float query vectors.

        Returns:
            The quantised queries.
        """

    def search(self, queries: sp.csr_matrix, k: int = 1000, quantized: bool = False,
               **options) -> list[list[tuple[str, float]]]:
        """The exact top-k of every query, ties by index order (DESIGN.md), so that back ends compare exactly.

        Args:
            queries: query vectors, one row per query.
            k: results per query.
            quantized: the queries are already in the index's integers.
            **options: the back end's own search options (threads, method, ...).

        Returns:
            For each query, [(doc id, score), ...] best first.
        """

    def vocab(self) -> list[str]:
        """The model's tokens in id order.

        Returns:
            The tokens of vocab.json.
        """

    def size_bytes(self) -> int:
        """What the index takes on disk.

        Returns:
            Bytes.
        """


class QuantizedIndex:
    """The part of every back end's loaded index that the folder contract gives: manifest, scale, vocabulary check."""

    path: Path
    manifest: dict
    kind = "index"

    @property
    def num_docs(self) -> int:
        """Documents in the index."""
        return int(self.manifest["num_docs"])

    @property
    def scale(self) -> float:
        """The quantisation scale of documents and queries."""
        return float(self.manifest["scale"])

    def vocab(self) -> list[str]:
        """The model's tokens in id order (vocab.json).

        Returns:
            The tokens, checked against the manifest's vocabulary size.
        """
        return read_vocab_file(self.path, int(self.manifest["vocab_size"]))

    def check_vocabulary(self, vocab_hash: str, vocab_size: int, what: str = "the query encoder") -> None:
        """Refuses queries from a model of another vocabulary: their term ids would name other tokens.

        Args:
            vocab_hash, vocab_size: the query encoder's vocabulary.
            what: who encodes the queries, for the message.

        Raises:
            ValueError: hash or size differ from the index's, naming both and the index's model.
        """
        if vocab_hash != self.manifest["vocab_hash"] or vocab_size != self.manifest["vocab_size"]:
            raise ValueError(
                f"{self.path}: this {self.kind} was built for vocabulary {self.manifest['vocab_hash']} "
                f"({self.manifest['vocab_size']} terms, model {self.manifest['model']}), but {what} uses "
                f"{vocab_hash} ({vocab_size} terms): encode queries with the index's model"
            )

    def quantize_queries(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        """Queries with the index's scale (no bit limit: query weights are never stored), zeros dropped, sorted.

        Args:
            queries: float query vectors over the index's vocabulary.

        Returns:
            A CSR matrix of int64 weights with sorted indices.

        Raises:
            ValueError: the queries have another number of dimensions than the index's vocabulary.
        """
        if queries.shape[1] != self.manifest["vocab_size"]:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.path} "
                             f"{self.manifest['vocab_size']}")
        q = quantize(sp.csr_matrix(queries), self.scale, None)
        q.sort_indices()
        return q
