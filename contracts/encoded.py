"""Encoded corpus on disk: numbered shards of CSR matrices plus a manifest, resumable shard by shard.

Layout of an encoded folder:
  manifest.json       model, vocabulary size and hash, max length, shard size, the shards done, complete flag
  vocab.json          token strings in id order (the Lucene export spells terms with them)
  shard-00000.npz     data, indices, indptr (CSR float32 over the vocabulary) and the shard's doc ids

A shard is written atomically and only then recorded in the manifest, so a killed run resumes at the first
missing shard and produces the same files as an uninterrupted one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.sparse as sp

from contracts.atomic import atomic_path, write_json
from contracts.manifest import read_json

FORMAT = "splade-encoded"
FORMAT_VERSION = 1


def start_or_resume(out: Path, info: dict, shard_size: int) -> dict:
    path = out / "manifest.json"
    if not path.exists():
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **info, "shard_size": shard_size, "shards": [], "complete": False}
        write_json(path, manifest)
        return manifest
    manifest = read_json(path)
    check_format(manifest, path)
    for key in ("source", "vocab_hash", "vocab_size", "doc_max_length", "model"):
        if key == "source" and key not in manifest:
            continue  # encoded before the corpus was recorded: nothing to check against
        if manifest.get(key) != info.get(key):
            raise ValueError(
                f"{path}: this folder was encoded with {key}={manifest.get(key)!r}, not {info.get(key)!r}; "
                f"use another --output folder or delete this one"
            )
    if manifest["shard_size"] != shard_size:
        raise ValueError(f"{path}: shard size {manifest['shard_size']} differs from {shard_size}; resume with the same one")
    return manifest


def check_format(manifest: dict, path: Path) -> None:
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )


def save_shard(path: Path, ids: list[str], matrix: sp.csr_matrix) -> None:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, data=matrix.data, indices=matrix.indices.astype(np.int32), indptr=matrix.indptr.astype(np.int64),
                     shape=np.asarray(matrix.shape, dtype=np.int64), ids=np.asarray(ids, dtype=str))


def load_shard(path: Path) -> tuple[list[str], sp.csr_matrix]:
    with np.load(path) as z:
        shape = tuple(int(x) for x in z["shape"])
        matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        return z["ids"].tolist(), matrix


def open_encoded(folder: str | Path) -> dict:
    """The manifest of a complete encoded folder, or a clear error."""
    folder = Path(folder)
    path = folder / "manifest.json"
    manifest = read_json(path, what="encoded-corpus manifest")
    check_format(manifest, path)
    if not manifest.get("complete"):
        raise ValueError(f"{folder}: encoding stopped after {len(manifest['shards'])} shards; run `splade encode` again to finish it")
    return manifest


def iter_shards(folder: str | Path) -> Iterator[tuple[list[str], sp.csr_matrix]]:
    folder = Path(folder)
    for shard in open_encoded(folder)["shards"]:
        yield load_shard(folder / shard["file"])


def read_encoded(folder: str | Path) -> tuple[list[str], sp.csr_matrix]:
    """All doc ids and one CSR matrix (float32) for the whole encoded corpus."""
    ids, parts = [], []
    for shard_ids, matrix in iter_shards(folder):
        ids.extend(shard_ids)
        parts.append(matrix)
    if not parts:
        raise ValueError(f"{folder}: the encoded corpus holds no documents")
    return ids, sp.vstack(parts, format="csr")


def read_vocab(folder: str | Path) -> list[str]:
    return json.loads((Path(folder) / "vocab.json").read_text(encoding="utf-8"))
