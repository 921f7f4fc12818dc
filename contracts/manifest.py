"""Manifests: the JSON file that says what a folder is, read with one format/version check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.textfiles import open_text

__all__ = ["read_json", "read_manifest"]


def read_json(path: str | Path, what: str = "manifest") -> Any:
    """A JSON file written by this project (or by hand), with a clear error for a missing or damaged one.

    Args:
        path: the file (a UTF-8 BOM or gzip compression are accepted).
        what: what the file holds, for the messages.

    Returns:
        The parsed JSON value.

    Raises:
        FileNotFoundError: no file at `path`.
        IsADirectoryError: `path` is a folder.
        ValueError: not valid JSON or not UTF-8, naming the file and the line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {what} here (expected a file written by this project)")
    with open_text(path, what) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:  # an integer of more than 4300 digits, nesting too deep
        raise ValueError(f"{path}, line 1: not JSON this reader accepts ({e})") from None


def read_manifest(folder: str | Path, fmt: str, version: int, what: str, rebuild: str) -> dict:
    """A folder's manifest.json, refused with a clear message when it is of another format or version.

    Args:
        folder: the folder holding manifest.json.
        fmt: the expected value of the manifest's "format".
        version: the expected "format_version".
        what: the kind of folder, for the messages ("numba impact index").
        rebuild: what the user should do when the version differs (the command that rebuilds it).

    Returns:
        The manifest as a dict.

    Raises:
        FileNotFoundError: no manifest.json in `folder`.
        ValueError: not valid JSON, not a JSON object, another format or another version.
    """
    path = Path(folder) / "manifest.json"
    manifest = read_json(path, what=f"{what} manifest")
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: not a {what} manifest (a JSON {type(manifest).__name__}, expected an object)")
    if manifest.get("format") != fmt:
        raise ValueError(f"{path}: not a {what} (format {manifest.get('format')!r}, expected {fmt!r})")
    if manifest.get("format_version") != version:
        raise ValueError(
            f"{path}: {what} format version {manifest.get('format_version')!r}; this code reads version {version}: "
            f"{rebuild}"
        )
    return manifest
