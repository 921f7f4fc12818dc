"""Checks of command-line values made where they are parsed, before any model loads.

The argparse `type=` functions reject a bad number with `splade CMD: error: argument --k: ...` at once, instead of
after the seconds it takes to load a model and encode the queries; the output checks name the path and say what
was expected.
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["alpha", "folder_output", "positive_int", "run_output"]


def positive_int(text: str) -> int:
    """argparse type: a whole number of 1 or more (`--k`, `--depth`).

    Args:
        text: the value as typed.

    Returns:
        The number.

    Raises:
        argparse.ArgumentTypeError: not a whole number, or below 1 (argparse names the flag).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value}")
    return value


def alpha(text: str) -> float:
    """argparse type: a number in (0, 1], the numba index's pruning factor (1 = exact).

    Args:
        text: the value as typed.

    Returns:
        The number.

    Raises:
        argparse.ArgumentTypeError: not a number, or outside (0, 1] (nan included).
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] (1 = exact search), got {text}")
    return value


def _check_parents(path: Path, what: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{path}: {parent} is a file, so the {what} cannot be written under it")
            return


def run_output(path: str | Path) -> Path:
    """The path of a run file to write: refused when it is a folder or lies under a file.

    Args:
        path: the run file named by --output.

    Returns:
        The run file's path.

    Raises:
        ValueError: naming the path and what was expected.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; --output names the run file to write (e.g. {path / 'run.trec'})")
    _check_parents(path, "run")
    return path


def folder_output(path: str | Path) -> Path:
    """The path of an output folder: refused when it is a file or lies under a file.

    Args:
        path: the folder named by --output.

    Returns:
        The folder's path (not created).

    Raises:
        ValueError: naming the path and what was expected.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: is a file; --output names a folder to write into")
    _check_parents(path, "folder")
    return path
