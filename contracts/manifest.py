"""Manifests: the JSON file that says what a folder is, read with one format/version check."""
from __future__ import annotations

import json
from pathlib import Path


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
