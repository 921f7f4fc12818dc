"""The index back ends by name: one table from `--backend NAME` to the function that builds and the one that loads.

Everything else of a back end (its folder format, kernels, JVM) lives in its subpackage under `indexing/`; a new
back end is one more row here.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contracts.encoded import open_encoded
from contracts.manifest import read_json
from indexing.base import IndexTooLargeError, SearchableIndex
from indexing.lucene_index import LuceneImpactIndex, build_lucene_index
from indexing.numba_index import ImpactIndex, build_index

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "Backend", "build_any_index", "get_backend", "index_is_current", "open_index", "reuse_or_build"]


@dataclass(frozen=True)
class Backend:
    """One index back end: `build(encoded_dir, index_dir, bits=, scale=, overwrite=, **options)` writes an index
    folder and returns it loaded; `load(index_dir, **options)` opens one."""

    name: str
    build: Callable[..., SearchableIndex]
    load: Callable[..., SearchableIndex]
    about: str


BACKENDS: dict[str, Backend] = {
    "numba": Backend("numba", build_index, ImpactIndex.load, "this project's impact index (numba kernels)"),
    "lucene": Backend("lucene", build_lucene_index, LuceneImpactIndex.load, "a Pyserini/Anserini impact index"),
}


def get_backend(name: str) -> Backend:
    """The back end called `name`.

    Args:
        name: "numba" or "lucene" (a key of BACKENDS).

    Returns:
        Its builder, loader and description.

    Raises:
        ValueError: no back end has that name (the message lists those that exist).
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown index back end {name!r}: expected one of {', '.join(BACKENDS)}") from None


def build_any_index(encoded: str | Path, output: str | Path, backend: str = "numba", bits: int = 8,
                    scale: float | None = None, overwrite: bool = False, **options) -> SearchableIndex:
    """Build the `backend` index of an encoded folder into `output` and return it loaded.

    Args:
        encoded: a complete encoded folder (`splade encode`).
        output: the index folder to write.
        backend: a name in BACKENDS.
        bits: bits per impact (8 or 16).
        scale: quantisation scale; None takes the largest that keeps every weight within `bits`.
        overwrite: replace an index of the same back end already in `output`.
        **options: passed on to that back end's builder (e.g. `threads` for Lucene, `progress`).

    Returns:
        The built index, loaded.

    Raises:
        ValueError: an unknown back end, or what the builder raises for a bad encoded folder.
        FileExistsError: `output` holds something and `overwrite` is off, or it is not an index of that back end.
    """
    return get_backend(backend).build(encoded, output, bits=bits, scale=scale, overwrite=overwrite, **options)


def open_index(path: str | Path, backend: str = "numba", **options) -> SearchableIndex:
    """Load the `backend` index in `path`.

    Args:
        path: the index folder.
        backend: a name in BACKENDS.
        **options: passed on to its loader (e.g. `mmap=True` for numba).

    Returns:
        The loaded index.

    Raises:
        ValueError: an unknown back end, or an index folder that is damaged or of another format.
        FileNotFoundError: `path` holds no index.
    """
    return get_backend(backend).load(path, **options)


def index_is_current(index_dir: str | Path, encoded_dir: str | Path, bits: int = 8, scale: float | None = None) -> bool:
    """Whether `index_dir` holds an index built from the encoded folder as it is now, with these bits (and scale).

    WHY the modification times: an encoded folder that was deleted and encoded again (another corpus, another
    model saved at the same path) keeps its path and may keep its size; its manifest is then newer than the index's.

    Args:
        index_dir: the index folder (it may not exist).
        encoded_dir: the encoded folder it should have been built from.
        bits: the bits it must have.
        scale: the scale it must have; None accepts any.

    Returns:
        True only when the index can be reused as it is.
    """
    index_manifest_path = Path(index_dir) / "manifest.json"
    encoded_manifest_path = Path(encoded_dir) / "manifest.json"
    if not index_manifest_path.is_file() or not encoded_manifest_path.is_file():
        return False
    index_manifest = read_json(index_manifest_path, what="index manifest")
    encoded_manifest = open_encoded(encoded_dir)
    recorded = index_manifest.get("encoded")
    return (
        recorded is not None
        and Path(recorded).resolve() == Path(encoded_dir).resolve()
        and index_manifest.get("num_docs") == encoded_manifest.get("num_docs")
        and index_manifest.get("bits") == bits
        and (scale is None or index_manifest.get("scale") == float(scale))
        and index_manifest_path.stat().st_mtime_ns >= encoded_manifest_path.stat().st_mtime_ns
    )


def reuse_or_build(encoded_dir: str | Path, index_dir: str | Path, backend: str = "numba", bits: int = 8,
                   scale: float | None = None, **options) -> SearchableIndex:
    """The index of `encoded_dir` in `index_dir`: loaded when it is current (`index_is_current`), else (re)built.

    Args:
        encoded_dir: the encoded folder.
        index_dir: the index folder.
        backend: a name in BACKENDS.
        bits, scale: as for `build_any_index`.
        **options: passed on to the builder.

    Returns:
        The index, loaded.

    Raises:
        FileExistsError: `index_dir` holds something that is not an index of this back end (never replaced).
    """
    if index_is_current(index_dir, encoded_dir, bits, scale):
        try:
            index = open_index(index_dir, backend)
        except IndexTooLargeError:
            raise  # a rebuild would not fit either
        except (ValueError, FileNotFoundError) as e:  # damaged, or another back end's: rebuilt below
            logger.info("rebuilding %s: %s", index_dir, e)
        else:
            logger.info("reusing the index in %s (built from %s)", index_dir, encoded_dir)
            return index
    return build_any_index(encoded_dir, index_dir, backend, bits, scale, overwrite=True, **options)
