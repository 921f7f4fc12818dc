"""Atomic writes of files and folders: a reader never sees half of one, and a killed job never leaves one behind.

Written files and folders get the permissions the user's umask gives, like any file `open()` creates: the temporary
names are created with `os.open(..., 0o666)` / `os.mkdir(..., 0o777)`, so the kernel applies the umask (and any
default ACL of the folder). `tempfile.mkstemp`/`mkdtemp` would make them private (0600/0700) whatever the umask.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_folder", "atomic_path", "remove_stale_builds", "remove_stale_temp_files", "save_npy", "write_json",
           "write_text"]

BUILDING = "building"  # `.NAME.building-PID-XXXX`: a folder being built beside its target
OLD = "old"  # `.NAME.old-PID-XXXX`: the folder that was replaced, for the instant between the two renames
TMP = ".tmp"  # `.NAME.PID-XXXX.tmp`: a file being written beside its target


def _create_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new empty file with a random name, created with the umask's permissions (O_EXCL: never an existing one)."""
    while True:
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path


def _create_folder(folder: Path, prefix: str) -> Path:
    while True:
        path = folder / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside `path`, renamed onto `path` only if the block succeeds.

    The temporary file is `.NAME.PID-XXXX.tmp`: hidden, and named after its writer, so that one left by a writer
    killed with SIGKILL (which no `finally` survives) is recognised and removed by the next write of `path`.

    Args:
        path: the file to write; its folder is created if missing.

    Returns:
        A context manager yielding the temporary path (an existing empty file) to write to.

    Raises:
        IsADirectoryError: `path` is a folder (an `--output` naming a folder, not a file in it).
        NotADirectoryError: a file is in the way of `path`'s folder.
        Whatever the block raises; the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, where a file is to be written; give the name of a file "
                                f"(inside it, if you like)")
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(f"{path}: {folder} is a file, where a folder is needed for this output")
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    tmp_path = _create_file(path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=TMP)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Write `text` as UTF-8 to `path`, atomically.

    Args:
        path: the file to write (see `atomic_path` for what it raises).
        text: its content.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON with sorted keys (stable diffs) to `path`, atomically.

    Args:
        path: the file to write (see `atomic_path` for what it raises).
        obj: anything `json.dumps` takes.
    """
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save `array` as a `.npy` file at `path`, atomically.

    Args:
        path: the file to write (see `atomic_path` for what it raises).
        array: the array; read it back with `np.load` (memory-mapped if wanted).
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


@contextlib.contextmanager
def atomic_folder(target: str | Path, overwrite: bool, is_replaceable: Callable[[Path], bool],
                  what: str = "folder") -> Iterator[Path]:
    """Build a folder beside `target` and swap it in only when the block succeeds.

    The new folder is built as `.NAME.building-PID-XXXX` in `target`'s parent (same file system, so the swap is a
    rename). On success an existing `target` is renamed aside, the new folder renamed in, and the old one removed:
    a build that is killed or fails (disk full, Ctrl-C) leaves the previous folder answering. Leftovers of builds
    whose process is gone are removed first; an old folder left aside by a kill between the two renames is put
    back if `target` is missing.

    Args:
        target: the folder to create or replace.
        overwrite: whether an existing, non-empty `target` may be replaced.
        is_replaceable: called with `target` when it exists and is not empty; True if it is a folder of the kind
            being built (e.g. an index of the same back end), so that `--overwrite` never destroys something else.
        what: the kind of folder, for the messages ("numba impact index").

    Returns:
        A context manager yielding the (empty) temporary folder to build in.

    Raises:
        FileExistsError: `target` is a file, or a non-empty folder and `overwrite` is off or `is_replaceable`
            refuses it (checked before the build and again before the swap).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(target)
    _refuse_to_replace(target, overwrite, is_replaceable, what)
    work = _create_folder(target.parent, prefix=f".{target.name}.{BUILDING}-{os.getpid()}-")
    try:
        yield work
        _refuse_to_replace(target, overwrite, is_replaceable, what)  # another process may have made it meanwhile
        if target.exists():
            aside = target.parent / f".{target.name}.{OLD}-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(target, aside)
            try:
                os.rename(work, target)
            except BaseException:
                os.rename(aside, target)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def remove_stale_builds(target: str | Path) -> list[Path]:
    """Remove `.NAME.building-*` / `.NAME.old-*` leftovers of `target` whose process no longer runs.

    A build of another live process on this machine is left alone. An old folder whose replacement never arrived
    (killed between the two renames of the swap) is renamed back onto `target`.

    Args:
        target: the folder whose leftovers to clean.

    Returns:
        The leftovers removed or restored.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    cleaned = []
    for kind in (BUILDING, OLD):
        for leftover in sorted(target.parent.glob(f".{glob.escape(target.name)}.{kind}-*")):
            pid_text = leftover.name[len(f".{target.name}.{kind}-"):].split("-", 1)[0]
            if not pid_text.isdigit() or _process_alive(int(pid_text)):
                continue
            if kind == OLD and not target.exists():
                os.rename(leftover, target)
            else:
                shutil.rmtree(leftover, ignore_errors=True)
            cleaned.append(leftover)
    return cleaned


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Remove the `.NAME.PID-XXXX.tmp` files of `path` whose writer no longer runs (killed mid-write).

    A temporary file of a live process (another writer of the same file, right now) is left alone.

    Args:
        path: the file whose leftovers to clean.

    Returns:
        The temporary files removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    for leftover in path.parent.glob(f"{glob.escape(prefix)}*-*{TMP}"):
        pid_text = leftover.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):  # another writer cleaned it first
                leftover.unlink()
                removed.append(leftover)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be building the same folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not _thread_or_zombie(pid)


def _thread_or_zombie(pid: int) -> bool:
    """Whether `pid` is no running process after all (Linux /proc; False where it cannot tell).

    WHY: `kill(pid, 0)` also succeeds for a thread id, and a dead writer's pid is soon handed out again, often to a
    thread (torch and numba start many); and a killed child that its parent has not reaped yet is a zombie.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return False
    return fields.get("State", "").split()[:1] == ["Z"] or fields.get("Tgid", "").strip() not in ("", str(pid))


def _refuse_to_replace(target: Path, overwrite: bool, is_replaceable: Callable[[Path], bool], what: str) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise FileExistsError(f"{target}: a file is in the way of the {what} to build there; choose another folder")
    if not any(target.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{target}: the folder already exists; pass --overwrite to replace it")
    if not is_replaceable(target):
        raise FileExistsError(
            f"{target}: --overwrite only replaces a {what}, and this folder holds something else; choose another "
            f"folder or delete it yourself"
        )
