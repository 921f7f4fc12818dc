"""Atomic writes: the umask's permissions (#13.6), files and folders swapped in only when complete, and nothing left
behind, even by a writer killed with SIGKILL (its temporary files are removed by the next write)."""
from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from contracts.atomic import atomic_folder, atomic_path, remove_stale_builds, save_npy, write_json, write_text
from contracts.trec import write_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                          (0o002, 0o664, 0o775)])
def test_written_files_and_folders_get_the_umask_permissions(tmp_path, umask, mask, file_mode, folder_mode):
    """#13.6: every file was 0600 (mkstemp) whatever the umask, so another user could not read a run."""
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "m.json", {"a": 1})
    save_npy(tmp_path / "v.npy", np.arange(3))
    write_run(tmp_path / "run.trec", {"q": [("d", 1.0)]})
    write_run(tmp_path / "run.trec.gz", {"q": [("d", 1.0)]})
    for name in ("a.txt", "m.json", "v.npy", "run.trec", "run.trec.gz"):
        assert mode(tmp_path / name) == file_mode, name
    with atomic_folder(tmp_path / "index", overwrite=False, is_replaceable=lambda p: True) as work:
        write_text(work / "manifest.json", "{}")
    assert mode(tmp_path / "index") == folder_mode
    assert mode(tmp_path / "index" / "manifest.json") == file_mode


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    write_text(tmp_path / "f.txt", "old")
    with pytest.raises(OSError, match="No space"):
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (tmp_path / "f.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_writing_onto_a_folder_or_below_a_file_says_so(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match=r"out: is a folder, where a file is to be written"):
        write_text(tmp_path / "out", "x")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"plain is a file, where a folder is needed"):
        write_text(tmp_path / "plain" / "sub" / "f.txt", "x")


def _build(target: Path, version: str, overwrite: bool = True, fail: BaseException | None = None) -> None:
    with atomic_folder(target, overwrite=overwrite, is_replaceable=lambda p: (p / "version").exists(),
                       what="test index") as work:
        assert work.parent == target.parent and work.name.startswith(f".{target.name}.building-")
        write_text(work / "version", version)
        if fail is not None:
            raise fail


def test_atomic_folder_swaps_a_complete_folder_in(tmp_path):
    target = tmp_path / "index"
    _build(target, "1")
    _build(target, "2")
    assert (target / "version").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_rebuild_leaves_the_old_folder_answering(tmp_path, fault):
    target = tmp_path / "index"
    _build(target, "1")
    with pytest.raises(type(fault)):
        _build(target, "2", fail=fault)
    assert (target / "version").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_atomic_folder_refuses_what_it_must_not_replace(tmp_path):
    target = tmp_path / "index"
    _build(target, "1")
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        _build(target, "2", overwrite=False)
    other = tmp_path / "encoded"
    other.mkdir()
    (other / "shard-00000.npz").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="only replaces a test index, and this folder holds something else"):
        _build(other, "2")
    assert (other / "shard-00000.npz").read_bytes() == b"precious"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileExistsError, match="a file is in the way"):
        _build(tmp_path / "afile", "2")
    empty = tmp_path / "empty"
    empty.mkdir()
    _build(empty, "1", overwrite=False)  # an empty folder holds nothing to lose
    assert (empty / "version").read_text() == "1"


def test_a_folder_that_appears_during_the_build_is_not_overwritten(tmp_path):
    target = tmp_path / "index"
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_folder(target, overwrite=False, is_replaceable=lambda p: True) as work:
            write_text(work / "version", "mine")
            target.mkdir()
            write_text(target / "version", "theirs")
    assert (target / "version").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_leftovers_are_removed_and_a_stranded_old_folder_is_restored(tmp_path):
    target = tmp_path / "index"
    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f".index.building-{dead}-abcd").mkdir()
    (tmp_path / f".index.building-{alive}-abcd").mkdir()  # a live process's build: left alone
    (tmp_path / f".index.old-{dead}-abcd").mkdir()  # killed between the swap's two renames
    (tmp_path / f".index.old-{dead}-abcd" / "version").write_text("old")
    (tmp_path / f".indexes.building-{dead}-abcd").mkdir()  # another folder's build
    cleaned = remove_stale_builds(target)
    assert len(cleaned) == 2
    assert (target / "version").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["index", f".index.building-{alive}-abcd", f".indexes.building-{dead}-abcd"])


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from contracts.atomic import atomic_folder, write_text
    target = Path(sys.argv[1])
    version = 1
    while True:
        version += 1
        with atomic_folder(target, overwrite=True, is_replaceable=lambda p: True) as work:
            for i in range(40):
                write_text(work / f"part-{i}", str(version))
            print(version, flush=True)
""")


def test_rebuilds_killed_at_random_points_always_leave_a_complete_folder(tmp_path):
    """kill -9 anywhere in a rebuild: the folder holds one complete version, and the next build cleans up."""
    target = tmp_path / "index"
    with atomic_folder(target, overwrite=False, is_replaceable=lambda p: True) as work:
        for i in range(40):
            write_text(work / f"part-{i}", "1")
    rng = random.Random(13)
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        child.stdout.readline()  # at least one swap done: the kill lands inside later builds
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        remove_stale_builds(target)
        versions = {(target / f"part-{i}").read_text() for i in range(40)}
        assert len(versions) == 1, f"a mixed folder: {versions}"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from contracts.atomic import atomic_path
    target = Path(sys.argv[1])
    with atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("new, half written")
            f.flush()
            print(tmp.name, flush=True)
            time.sleep(60)  # killed here
""")


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_writer_killed_mid_write_leaves_the_old_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "run.trec"
    write_text(target, "old")
    child = _start(WRITER, str(target))
    tmp_name = child.stdout.readline().strip()
    assert tmp_name == f".run.trec.{child.pid}-{tmp_name.split('-')[1]}" and tmp_name.endswith(".tmp")
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert target.read_text() == "old"  # the reader never sees the half-written file
    assert sorted(p.name for p in tmp_path.iterdir()) == [tmp_name, "run.trec"]  # no finally survives SIGKILL
    live = tmp_path / f".run.trec.{os.getppid()}-abcd.tmp"  # another writer, still running
    live.write_text("theirs")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "run.trec"]


LOOP_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from contracts.atomic import save_npy
    for version in range(2, 10**6):
        save_npy(sys.argv[1], np.full(2**20, version, dtype=np.int64))
        print(version, flush=True)
""")


def test_writes_killed_at_random_points_leave_a_complete_array_and_no_temp_after_the_next_write(tmp_path):
    target = tmp_path / "v.npy"
    save_npy(target, np.full(2**20, 1, dtype=np.int64))
    rng = random.Random(13)
    for _ in range(4):
        child = _start(LOOP_WRITER, str(target))
        child.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        values = np.unique(np.load(target))
        assert len(values) == 1, f"a mixed array: {values}"
        save_npy(target, np.full(2**20, 0, dtype=np.int64))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy"]


def test_pids_reused_by_threads_do_not_keep_leftovers_alive(tmp_path):
    """kill(tid, 0) succeeds for a thread's id: a dead writer's pid handed to a thread must not protect its files."""
    ids = []
    ready = threading.Event()
    done = threading.Event()

    def thread():
        ids.append(threading.get_native_id())
        ready.set()
        done.wait()

    t = threading.Thread(target=thread)
    t.start()
    ready.wait()
    try:
        stale = tmp_path / f".f.txt.{ids[0]}-abcd.tmp"
        stale.write_text("x")
        write_text(tmp_path / "f.txt", "y")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    finally:
        done.set()
        t.join()
