"""Atomic file writes: a reader never sees half a file, and a killed job never leaves one behind."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def read_json(path: str | Path, what: str = "manifest") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {what} here (expected a file written by this project)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None


def read_manifest(folder: str | Path, fmt: str, version: int, what: str, rebuild: str) -> dict:
    """A folder's manifest.json, refused with a clear message when it is of another format or version."""
    path = Path(folder) / "manifest.json"
    manifest = read_json(path, what=f"{what} manifest")
    if manifest.get("format") != fmt:
        raise ValueError(f"{path}: not a {what} (format {manifest.get('format')!r}, expected {fmt!r})")
    if manifest.get("format_version") != version:
        raise ValueError(
            f"{path}: {what} format version {manifest.get('format_version')!r}; this code reads version {version}: "
            f"{rebuild}"
        )
    return manifest
