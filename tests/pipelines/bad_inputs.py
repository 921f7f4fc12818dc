"""Every case of issue #13 ("Nothing silently wrong") as data: the input, the command, the exit status, the message.

One list, run two ways: `tests/pipelines/test_bad_inputs.py` runs each case through the real CLI and asserts its
exit status, its message and (where the issue asks for a right result rather than an error) what it left on disk;
`python -m tests.pipelines.bad_inputs` runs them all once and prints the Markdown table of the issue's closing note
(issue item | input | message now given), with the message read from the run, not written by hand.

Every case gets a fresh folder; the cases that need a real encoding share one (`Shared`: a 24-document slice of the
demo collection encoded with splade-tiny, its index and a run), built once through the CLI.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np

from contracts import textfiles, trec
from contracts.trec import read_run
from indexing.encoder import SpladeEncoder
from indexing.lucene_index.index import LuceneImpactIndex
from pipelines import cli
from pipelines.datasets import DEMO

ROOT = Path(__file__).resolve().parents[2]
NUM_DOCS = 24  # documents of the shared slice: enough for a run of depth 10, a second to encode


# ---- the shared collection ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shared:
    """A small real collection encoded, indexed and searched once, for the cases that need a real encoding."""

    root: Path
    data: Path  # dataset folder: corpus.jsonl (NUM_DOCS documents), queries.tsv, qrels.txt
    encoded: Path
    index: Path
    run: Path  # retrieve --k 10 on `index`

    def copy_data(self, to: Path, docs: int | None = None) -> Path:
        """A copy of the dataset folder (its first `docs` documents only, if given)."""
        shutil.copytree(self.data, to)
        if docs is not None:
            lines = (to / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
            (to / "corpus.jsonl").write_text("".join(lines[:docs]), encoding="utf-8")
        return to

    def copy_index(self, to: Path) -> Path:
        shutil.copytree(self.index, to)
        return to

    def lucene_index(self) -> Path:
        """The Lucene index of `encoded`, built on first use (it starts the JVM: only the cases that need it)."""
        index = self.root / "lucene"
        if not index.exists():
            built = run_cli(["index", "--encoded", str(self.encoded), "--output", str(index), "--backend", "lucene"])
            assert built.code == 0, built.err
        return index


def build_shared(root: Path) -> Shared:
    """Slice the demo collection, then `splade encode`, `splade index` and `splade retrieve` it (about 10 s)."""
    data = root / "data"
    data.mkdir(parents=True)
    corpus = (DEMO / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:NUM_DOCS]
    (data / "corpus.jsonl").write_text("".join(corpus), encoding="utf-8")
    ids = {json.loads(line)["id"] for line in corpus}
    qrels = [line for line in (DEMO / "qrels.txt").read_text().splitlines(keepends=True) if line.split()[2] in ids]
    qids = {line.split()[0] for line in qrels}
    (data / "qrels.txt").write_text("".join(qrels))
    queries = [line for line in (DEMO / "queries.tsv").read_text().splitlines(keepends=True)
               if line.split("\t")[0] in qids]
    (data / "queries.tsv").write_text("".join(queries))
    shared = Shared(root, data, root / "encoded", root / "index", root / "run.trec")
    for argv in (["encode", "--dataset", str(data), "--output", str(shared.encoded), "--doc-max-length", "64"],
                 ["index", "--encoded", str(shared.encoded), "--output", str(shared.index)],
                 ["retrieve", "--dataset", str(data), "--index", str(shared.index), "--output", str(shared.run),
                  "--k", "10"]):
        outcome = run_cli(argv)
        if outcome.code != 0:
            raise RuntimeError(f"building the shared collection: splade {' '.join(argv)} -> {outcome.code}\n"
                               f"{outcome.err}")
    return shared


# ---- one case -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass(frozen=True)
class Case:
    """One bad input of the issue, as a new user would meet it.

    `setup(folder, shared)` builds the input in an empty folder and returns the arguments after `splade`;
    `message` must appear in what the command prints (stdout and stderr; a regular expression when `regex`);
    `check(folder, shared, outcome)` asserts the right result on disk where the issue asks for one.
    """

    name: str
    item: str  # the item: "1", "3", ..., or "msg" (Clear messages instead of tracebacks)
    input: str  # the bad input, in words
    setup: Callable[[Path, Shared], list[str]]
    code: int
    message: str
    check: Callable[[Path, Shared, Outcome], None] | None = None
    patch: Callable[[Path, Shared], contextlib.AbstractContextManager] | None = None  # e.g. a full disk
    regex: bool = False
    absent: tuple[str, ...] = field(default=())  # what must not be printed (a traceback, Java's INFO lines)
    result: str = ""  # what `check` verifies, in words, for the table

    def matches(self, outcome: Outcome) -> bool:
        text = outcome.text
        found = re.search(self.message, text) if self.regex else self.message in text
        return bool(found) and not any(a in text for a in self.absent)

    def message_line(self, outcome: Outcome) -> str:
        """The line of the output that holds the expected message (for the table)."""
        for line in outcome.text.splitlines():
            if (re.search(self.message, line) if self.regex else self.message in line):
                return line.strip()
        return outcome.text.strip().splitlines()[-1] if outcome.text.strip() else ""


@contextlib.contextmanager
def _captured() -> Iterator[dict]:
    """Capture stdout and stderr, Python's and the file descriptors' (Java writes to fd 1 and 2 directly)."""
    result = {}
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as fd_out, tempfile.TemporaryFile() as fd_err:
        saved = os.dup(1), os.dup(2)
        os.dup2(fd_out.fileno(), 1)
        os.dup2(fd_err.fileno(), 2)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield result
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            for f in (fd_out, fd_err):
                f.seek(0)
            result["out"] = out.getvalue() + fd_out.read().decode("utf-8", "replace")
            result["err"] = err.getvalue() + fd_err.read().decode("utf-8", "replace")


def run_cli(argv: list[str]) -> Outcome:
    """`splade ARGV` in this process: its exit status (argparse's included) and everything it printed."""
    with _captured() as printed:
        try:
            code = cli.main(argv)
        except SystemExit as stop:  # argparse's usage errors and --help
            code = stop.code if isinstance(stop.code, int) else 1
    return Outcome(code, printed["out"], printed["err"])


def run_case(case: Case, folder: Path, shared: Shared) -> Outcome:
    """Set the case up in `folder` (empty), run it, check what it left; returns what it printed."""
    folder.mkdir(parents=True, exist_ok=True)
    argv = case.setup(folder, shared)
    patch = case.patch(folder, shared) if case.patch else contextlib.nullcontext()
    with patch:
        return run_cli(argv)


# ---- set-ups --------------------------------------------------------------------------------------------------


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _encode(data: Path, out: Path, *extra: str) -> list[str]:
    return ["encode", "--dataset", str(data), "--output", str(out), "--doc-max-length", "32", *extra]


def _tiny(folder: Path, shared: Shared, docs: int = 6) -> Path:
    return shared.copy_data(folder / "data", docs=docs)


def _encoded_tiny(folder: Path, shared: Shared, docs: int = 6, *extra: str) -> Path:
    data = _tiny(folder, shared, docs)
    outcome = run_cli(_encode(data, folder / "encoded", *extra))
    assert outcome.code == 0, outcome.err
    return data


def _append_doc(data: Path, doc_id: str = "new-doc", text: str = "a document added after the encoding") -> None:
    with open(data / "corpus.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": doc_id, "text": text}) + "\n")


def setup_appended(folder, shared):
    data = _encoded_tiny(folder, shared)
    _append_doc(data)
    return _encode(data, folder / "encoded")


def setup_edited(folder, shared):
    data = _encoded_tiny(folder, shared)
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    doc = json.loads(lines[0])
    lines[0] = json.dumps({**doc, "text": doc["text"] + " edited"})
    (data / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return _encode(data, folder / "encoded")


def setup_appended_overwrite(folder, shared):
    return [*setup_appended(folder, shared), "--overwrite"]


def check_reencoded(folder, shared, outcome):
    manifest = json.loads((folder / "encoded" / "manifest.json").read_text())
    assert manifest["num_docs"] == 7 and manifest["complete"], manifest


def setup_rerun_finished(folder, shared):
    data = _encoded_tiny(folder, shared)
    return _encode(data, folder / "encoded")


def setup_index_over_encoded(folder, shared):
    encoded = shutil.copytree(shared.encoded, folder / "encoded")
    return ["index", "--encoded", str(encoded), "--output", str(encoded), "--overwrite"]


def check_encoded_intact(folder, shared, outcome):
    assert sorted(p.name for p in (folder / "encoded").iterdir()) == sorted(p.name for p in shared.encoded.iterdir())
    assert (folder / "encoded" / "manifest.json").read_bytes() == (shared.encoded / "manifest.json").read_bytes()


def setup_index_over_other_folder(folder, shared):
    _write(folder / "mine" / "notes.txt", "precious")
    return ["index", "--encoded", str(shared.encoded), "--output", str(folder / "mine"), "--overwrite"]


def check_other_folder_intact(folder, shared, outcome):
    assert sorted(os.listdir(folder / "mine")) == ["notes.txt"]


def setup_index_exists(folder, shared):
    index = shared.copy_index(folder / "index")
    return ["index", "--encoded", str(shared.encoded), "--output", str(index)]


def setup_full_disk_rebuild(folder, shared):
    index = shared.copy_index(folder / "index")
    return ["index", "--encoded", str(shared.encoded), "--output", str(index), "--overwrite"]


@contextlib.contextmanager
def _disk_fills_after(calls: int, writer: str = "save") -> Iterator[None]:
    """np.save (or np.savez) raises ENOSPC after `calls` files, as a full disk would in the middle of a build."""
    real_save = getattr(np, writer)
    count = [0]

    def save(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(*args, **kwargs)

    with mock.patch.object(np, writer, save):
        yield


def check_old_index_answers(folder, shared, outcome):
    assert sorted(os.listdir(folder)) == ["index"], os.listdir(folder)  # no temporary build folder left
    assert (folder / "index" / "manifest.json").read_bytes() == (shared.index / "manifest.json").read_bytes()
    again = run_cli(["retrieve", "--dataset", str(shared.data), "--index", str(folder / "index"),
                     "--output", str(folder / "again.trec"), "--k", "10"])
    assert again.code == 0, again.err
    assert read_run(folder / "again.trec") == read_run(shared.run)


def setup_stale_building_folders(folder, shared):
    dead = _dead_pid()
    for name in (f".index.building-{dead}-abcd", f".index.building-{dead}-ef01"):
        _write(folder / name / "slots.npy", "half-written")
    return ["index", "--encoded", str(shared.encoded), "--output", str(folder / "index")]


def check_no_building_folders(folder, shared, outcome):
    assert sorted(os.listdir(folder)) == ["index"], os.listdir(folder)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def setup_duplicate_ids(folder, shared, at: int = 4, shard_size: str = "100", workers: bool = False):
    data = _tiny(folder, shared, docs=8)
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    first = json.loads(lines[1])
    lines.insert(at, json.dumps({"id": first["id"], "text": "another document under the same id"}) + "\n")
    (data / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    if workers:
        assert run_cli(_encode(data, folder / "encoded", "--shard-id", "0", "--shard-num", "2")).code == 0
        return _encode(data, folder / "encoded", "--shard-id", "1", "--shard-num", "2")
    return _encode(data, folder / "encoded", "--shard-size", shard_size)


def setup_duplicate_ids_in_encoded(folder, shared):
    encoded = shutil.copytree(shared.encoded, folder / "encoded")
    shard = dict(np.load(encoded / "shard-00000.npz"))
    shard["ids"][5] = shard["ids"][1]  # a folder written by hand, or by an older version
    with open(encoded / "shard-00000.npz", "wb") as f:
        np.savez(f, **shard)
    return ["index", "--encoded", str(encoded), "--output", str(folder / "index")]


def setup_slot_out_of_bounds(folder, shared):
    def change(slots):
        slots = slots.copy()
        slots[0] = 255  # beyond the block size: the kernels would read outside their block
        return slots
    return _retrieve(shared, _damaged_index(folder, shared, "slots", change), folder)


def _damaged_index(folder: Path, shared: Shared, name: str, change: Callable[[np.ndarray], np.ndarray]) -> Path:
    index = shared.copy_index(folder / "index")
    array = np.load(index / f"{name}.npy")
    np.save(index / f"{name}.npy", change(array))
    return index


def _retrieve(shared: Shared, index: Path, folder: Path, *extra: str, data: Path | None = None) -> list[str]:
    return ["retrieve", "--dataset", str(data or shared.data), "--index", str(index),
            "--output", str(folder / "run.trec"), "--k", "10", *extra]


def setup_short_array(name):
    def setup(folder, shared):
        return _retrieve(shared, _damaged_index(folder, shared, name, lambda a: a[:-3]), folder)
    return setup


def setup_float_impacts(folder, shared):
    return _retrieve(shared, _damaged_index(folder, shared, "impacts", lambda a: a.astype(np.float32)), folder)


def setup_changed_content(folder, shared):
    index = _damaged_index(folder, shared, "doc_order", lambda a: np.roll(a, 1))
    return ["check", "--index", str(index)]


def setup_swapped_bytes(folder, shared):
    def change(a):
        a = a.copy()
        a[[0, 1]] = a[[1, 0]] if a[0] != a[1] else (a[0], (a[1] + 1) % 200)
        return a
    return ["check", "--index", str(_damaged_index(folder, shared, "impacts", change))]


def setup_check_intact(folder, shared):
    return ["check", "--index", str(shared.copy_index(folder / "index"))]


# fuse: two small runs written by hand (the scores are what matters, not the model)
RUN_A = "q1 Q0 d1 1 3.0 a\nq1 Q0 d2 2 2.0 a\nq1 Q0 d3 3 1.0 a\nq2 Q0 d2 1 5.0 a\nq2 Q0 d1 2 4.0 a\n"
RUN_B = "q1 Q0 d3 1 9.0 b\nq1 Q0 d1 2 8.0 b\nq2 Q0 d1 1 7.0 b\nq2 Q0 d3 2 6.0 b\n"
RUN_OTHER = "q7 Q0 d1 1 3.0 c\nq8 Q0 d2 1 2.0 c\n"


def setup_fuse(*flags: str, second: str = RUN_B):
    def setup(folder, shared):
        a, b = _write(folder / "a.trec", RUN_A), _write(folder / "b.trec", second)
        return ["fuse", "--run", str(a), str(b), "--output", str(folder / "fused.trec"), *flags]
    return setup


def check_nothing_fused(folder, shared, outcome):
    assert not (folder / "fused.trec").exists()


def check_fused_finite(folder, shared, outcome):
    fused = read_run(folder / "fused.trec")
    assert fused and all(np.isfinite(s) for docs in fused.values() for s in docs.values())


def setup_umask(folder, shared):
    return _retrieve(shared, shared.copy_index(folder / "index"), folder)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def check_readable_by_others(folder, shared, outcome):
    for path in (folder / "run.trec", shared.index / "manifest.json", shared.index / "slots.npy",
                 shared.encoded / "manifest.json", shared.encoded / "shard-00000.npz"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, (path, oct(path.stat().st_mode))
    assert stat.S_IMODE((folder / "run.trec").stat().st_mode) == 0o644


BOM = "\ufeff"


def setup_bom(which: str):
    def setup(folder, shared):
        data = shared.copy_data(folder / "data")
        run = folder / "run.trec"
        shutil.copy(shared.run, run)
        target = {"queries": data / "queries.tsv", "qrels": data / "qrels.txt", "run": run}[which]
        target.write_text(BOM + target.read_text(encoding="utf-8"), encoding="utf-8")
        if which == "queries":
            return _retrieve(shared, shared.index, folder / "out", data=data)
        return ["evaluate", "--run", str(run), "--qrels", str(data / "qrels.txt"),
                "--output", str(folder / "metrics.json")]
    return setup


def check_bom_queries(folder, shared, outcome):
    assert read_run(folder / "out" / "run.trec") == read_run(shared.run)  # the first qid without \ufeff


def check_same_metrics(folder, shared, outcome):
    clean = run_cli(["evaluate", "--run", str(shared.run), "--qrels", str(shared.data / "qrels.txt"),
                     "--output", str(folder / "clean.json")])
    assert clean.code == 0
    got = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert got == json.loads((folder / "clean.json").read_text())["metrics"]


def setup_contentless_query(text: str):
    def setup(folder, shared):
        data = shared.copy_data(folder / "data")
        with open(data / "queries.tsv", "a", encoding="utf-8") as f:
            f.write(f"q-empty\t{text}\n")
        return _retrieve(shared, shared.index, folder, data=data)
    return setup


def setup_foreign_qrels(folder, shared):
    qrels = _write(folder / "qrels.txt", "".join(f"{line.split()[0]} 0 MED-{i} 1\n" for i, line in
                                                 enumerate((shared.data / "qrels.txt").read_text().splitlines())))
    return ["evaluate", "--run", str(shared.run), "--qrels", str(qrels), "--output", str(folder / "m.json")]


def setup_beir_self_hits(folder, shared):
    qrels = _write(folder / "qrels.txt", "q1 0 d1 1\nq2 0 q2 1\nq2 0 d2 1\n")
    run = _write(folder / "run.trec", "q1 Q0 q1 1 9.0 t\nq1 Q0 d1 2 5.0 t\nq2 Q0 q2 1 3.0 t\nq2 Q0 d2 2 2.0 t\n")
    return ["evaluate", "--run", str(run), "--qrels", str(qrels), "--convention", "beir",
            "--output", str(folder / "m.json")]


def setup_qrels_and_dataset(folder, shared):
    return ["evaluate", "--run", str(shared.run), "--dataset", str(shared.data), "--qrels",
            str(shared.data / "qrels.txt"), "--output", str(folder / "m.json")]


@contextlib.contextmanager
def _read_only_run_in(folder: Path) -> Iterator[None]:
    """The run sits in a read-only data folder and the command runs from `folder/work`."""
    data = folder / "readonly"
    work = folder / "work"
    work.mkdir()
    data.chmod(0o555)
    old = Path.cwd()
    os.chdir(work)
    try:
        yield
    finally:
        os.chdir(old)
        data.chmod(0o755)


def setup_read_only_run(folder, shared):
    data = folder / "readonly"
    data.mkdir()
    shutil.copy(shared.run, data / "run.trec")
    return ["evaluate", "--run", str(data / "run.trec"), "--qrels", str(shared.data / "qrels.txt")]


def check_metrics_under_outputs(folder, shared, outcome):
    assert sorted(os.listdir(folder / "readonly")) == ["run.trec"]
    assert (folder / "work" / "outputs" / "eval" / "run.metrics.json").exists()


def setup_empty_corpus(folder, shared):
    data = shared.copy_data(folder / "data")
    (data / "corpus.jsonl").write_text("")
    return _encode(data, folder / "encoded")


def setup_flag(*flags: str):
    def setup(folder, shared):
        return _encode(_tiny(folder, shared), folder / "encoded", *flags)
    return setup


def setup_non_utf8(which: str):
    def setup(folder, shared):
        data = shared.copy_data(folder / "data", docs=6)
        name = {"corpus": "corpus.jsonl", "queries": "queries.tsv"}[which]
        lines = (data / name).read_bytes().splitlines(keepends=True)
        lines[2] = lines[2].replace(b"e", b"\xe9", 1)  # latin-1 'é' in the third line
        (data / name).write_bytes(b"".join(lines))
        if which == "corpus":
            return _encode(data, folder / "encoded")
        return _retrieve(shared, shared.index, folder, data=data)
    return setup


def setup_gzip_run_without_gz(folder, shared):
    run = _write(folder / "run.trec", gzip.compress(shared.run.read_bytes()))
    return ["evaluate", "--run", str(run), "--qrels", str(shared.data / "qrels.txt"),
            "--output", str(folder / "metrics.json")]


def setup_truncated_shard(folder, shared):
    encoded = shutil.copytree(shared.encoded, folder / "encoded")
    shard = encoded / "shard-00000.npz"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return ["index", "--encoded", str(encoded), "--output", str(folder / "index")]


def setup_index_is_file(folder, shared):
    return _retrieve(shared, _write(folder / "index.txt", "not an index"), folder)


def setup_index_is_manifest(folder, shared):
    return _retrieve(shared, shared.copy_index(folder / "index") / "manifest.json", folder)


def setup_output_is_folder(folder, shared):
    (folder / "runs").mkdir()
    return ["retrieve", "--dataset", str(shared.data), "--index", str(shared.index), "--output", str(folder / "runs")]


def setup_output_is_file(folder, shared):
    _write(folder / "encoded", "a file where the encoded folder should go")
    return _encode(_tiny(folder, shared), folder / "encoded")


def setup_index_output_is_file(folder, shared):
    _write(folder / "index", "a file where the index folder should go")
    return ["index", "--encoded", str(shared.encoded), "--output", str(folder / "index")]


def setup_damaged_lucene(folder, shared):
    index = shutil.copytree(shared.lucene_index(), folder / "lucene")
    segments = sorted((index / "lucene").glob("*.cfs")) + sorted((index / "lucene").glob("*.fdt"))
    victim = segments[0] if segments else sorted(p for p in (index / "lucene").iterdir() if p.is_file())[-1]
    victim.write_bytes(victim.read_bytes()[:100])
    return _retrieve(shared, index, folder, "--backend", "lucene")


def setup_lucene_build(folder, shared):
    return ["index", "--encoded", str(shared.encoded), "--output", str(folder / "lucene"), "--backend", "lucene"]


def setup_encode_in_shards_of_8(folder, shared):
    return _encode(shared.copy_data(folder / "data"), folder / "encoded", "--shard-size", "8")


@contextlib.contextmanager
def _ctrl_c_during_encoding() -> Iterator[None]:
    """A real SIGINT to this process (what Ctrl-C sends) as the second shard starts encoding."""
    real = SpladeEncoder.encode_documents
    calls = [0]

    @functools.wraps(real)
    def encode_documents(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    with mock.patch.object(SpladeEncoder, "encode_documents", encode_documents):
        yield


@contextlib.contextmanager
def _ctrl_c_during_lucene_search() -> Iterator[None]:
    """A real SIGINT to this process as the Lucene index searches (the JVM must leave it to Python)."""
    real = LuceneImpactIndex.search

    @functools.wraps(real)
    def search(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # Python raises KeyboardInterrupt here; were the JVM to take SIGINT, it would end the process
        return real(self, *args, **kwargs)

    with mock.patch.object(LuceneImpactIndex, "search", search):
        yield


def check_resumes(folder, shared, outcome):
    lines = outcome.err.replace("\r", "\n").splitlines()
    assert lines[-1].startswith("splade encode: ") and outcome.err.endswith("\n"), outcome.err  # on its own line
    assert sum("splade encode:" in line for line in lines) == 1 and "Traceback" not in outcome.err
    encoded = folder / "encoded"
    assert sorted(p.name for p in encoded.iterdir()) == ["manifest.json", "shard-00000.npz", "vocab.json"]
    again = run_cli(_encode(folder / "data", encoded, "--shard-size", "8"))
    assert again.code == 0 and f"encoded {NUM_DOCS - 8} documents" in again.out, again.text
    assert json.loads((encoded / "manifest.json").read_text())["num_docs"] == NUM_DOCS


def setup_full_disk_run(folder, shared):
    return _retrieve(shared, shared.index, folder)


def check_no_run_left(folder, shared, outcome):
    assert sorted(os.listdir(folder)) == [], os.listdir(folder)


def setup_model_missing(folder, shared):
    index = shared.copy_index(folder / "index")
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["model"] = "/home/someone-else/models/splade-tiny"
    (index / "manifest.json").write_text(json.dumps(manifest))
    return _retrieve(shared, index, folder)


@contextlib.contextmanager
def _no_model_load() -> Iterator[None]:
    """A model that is loaded fails the case: the flag must be refused before."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the flag was checked")
    with mock.patch("indexing.encoder.SpladeEncoder.__init__", refuse):
        yield


def setup_retrieve_flag(*flags: str):
    def setup(folder, shared):
        return [*_retrieve(shared, shared.index, folder)[:-2], *flags]
    return setup


def setup_train_help(folder, shared):
    return ["train", "--help"]


def setup_loading_bar(folder, shared):
    return _encode(_tiny(folder, shared), folder / "encoded")


# ---- the catalogue --------------------------------------------------------------------------------------------

TRACEBACK = ("Traceback",)

CASES: list[Case] = [
    # 1. stale encodings
    Case("corpus-appended", "1", "a document appended to corpus.jsonl, then `encode` into the same folder",
         setup_appended, 2, "which now has more", absent=TRACEBACK),
    Case("corpus-edited", "1", "a document's text edited (same ids, same count), then `encode` again",
         setup_edited, 2, "the corpus changed", absent=TRACEBACK),
    Case("corpus-appended-overwrite", "1", "the same, with `encode --overwrite`",
         setup_appended_overwrite, 0, r"encoded 7 documents", regex=True, check=check_reencoded,
         result="the folder now holds the 7 documents"),
    # 2. --overwrite destroys what it replaces
    Case("rebuild-disk-full", "2", "`index --overwrite` of an existing index; the disk fills in the middle",
         setup_full_disk_rebuild, 2, "no space left on the device", check=check_old_index_answers,
         result="the old index is unchanged and answers as before; no temporary folder left",
         patch=lambda folder, shared: _disk_fills_after(3)),
    Case("index-over-encoded", "2", "`index --encoded E --output E --overwrite`",
         setup_index_over_encoded, 2, "this is a folder of format 'splade-encoded'", check=check_encoded_intact,
         result="the encoded folder is untouched"),
    Case("index-over-other-folder", "2", "`index --overwrite` onto a folder that is not an index",
         setup_index_over_other_folder, 2, "this is a folder that is not an index", check=check_other_folder_intact,
         result="the folder is untouched"),
    Case("index-exists", "2", "`index` onto an existing index without --overwrite",
         setup_index_exists, 2, "already exists; pass --overwrite to replace it"),
    Case("stale-building-folders", "2", "`.index.building-PID-*` left by a killed build (dead PID), then `index`",
         setup_stale_building_folders, 0, "indexed 24 documents", check=check_no_building_folders,
         result="the leftovers of the dead build are removed"),
    # 3. duplicate document ids
    Case("duplicate-ids", "3", "two documents with the same id in corpus.jsonl",
         setup_duplicate_ids, 2, r"document id '\S+' is used twice, by documents 2 and 5", regex=True),
    Case("duplicate-ids-shards", "3", "the same, the two lines in different shards (`--shard-size 2`)",
         lambda f, s: setup_duplicate_ids(f, s, at=6, shard_size="2"), 2,
         r"document id '\S+' is used twice, by documents 2 and 7", regex=True),
    Case("duplicate-ids-workers", "3", "the same, in two workers' parts (`--shard-id 0|1 --shard-num 2`)",
         lambda f, s: setup_duplicate_ids(f, s, at=7, workers=True), 2,
         r"document id '\S+' is used twice, by documents 2 and 8", regex=True),
    Case("duplicate-ids-encoded", "3", "an encoded folder whose shard repeats an id, then `index`",
         setup_duplicate_ids_in_encoded, 2, r"'\S+' is used twice", regex=True, absent=TRACEBACK),
    # 4. the index loader checks every array
    Case("short-slots", "4", "`slots.npy` 3 values short, then `retrieve`",
         setup_short_array("slots"), 2, "slots.npy: expected", absent=TRACEBACK),
    Case("short-doc-order", "4", "`doc_order.npy` 3 values short, then `retrieve`",
         setup_short_array("doc_order"), 2, "doc_order.npy: expected", absent=TRACEBACK),
    Case("slot-out-of-bounds", "4", "a slot beyond the block size in `slots.npy` (same length and dtype), `retrieve`",
         setup_slot_out_of_bounds, 2, "slots.npy", absent=TRACEBACK),
    Case("float-impacts", "4", "`impacts.npy` saved as float32, then `retrieve`",
         setup_float_impacts, 2, "impacts.npy: expected dtype uint8, found float32", absent=TRACEBACK),
    Case("reordered-doc-order", "4", "`doc_order.npy` rotated by one (same length and dtype), then `check`",
         setup_changed_content, 2, "doc_order.npy differs from what the build wrote"),
    Case("changed-impacts", "4", "two impacts changed in `impacts.npy`, then `check`",
         setup_swapped_bytes, 2, "impacts.npy differs from what the build wrote"),
    Case("check-intact", "4", "`check` of an intact copied index",
         setup_check_intact, 0, "arrays match their checksums"),
    # 5. fuse
    Case("fuse-nan-weight", "5", "`fuse --weights nan 1`", setup_fuse("--weights", "nan", "1"), 2,
         "is not a finite number", check=check_nothing_fused, result="no run written"),
    Case("fuse-depth-0", "5", "`fuse --depth 0`", setup_fuse("--depth", "0"), 2,
         "argument --depth: expected a whole number of 1 or more, got 0",
         check=check_nothing_fused, result="no run written"),
    Case("fuse-depth-negative", "5", "`fuse --depth -5`", setup_fuse("--depth", "-5"), 2,
         "argument --depth: expected a whole number of 1 or more, got -5",
         check=check_nothing_fused, result="no run written"),
    Case("fuse-negative-weight", "5", "`fuse --weights 1 -0.5`", setup_fuse("--weights", "1", "-0.5"), 0,
         "is negative", check=check_fused_finite, result="the fused run is written, every score finite"),
    Case("fuse-zero-weights", "5", "`fuse --weights 0 0`", setup_fuse("--weights", "0", "0"), 2,
         "every weight is 0", check=check_nothing_fused, result="no run written"),
    Case("fuse-no-shared-query", "5", "`fuse` of two runs that share no query", setup_fuse(second=RUN_OTHER), 2,
         "shares no query with the other runs", check=check_nothing_fused, result="no run written"),
    # 6. permissions
    Case("umask", "6", "umask 022: a run, the index's and the encoding's files",
         setup_umask, 0, "run written to", check=check_readable_by_others,
         result="run 0644; index arrays, manifests and shards readable by others",
         patch=lambda folder, shared: _umask(0o022)),
    # 7. byte-order marks
    Case("bom-queries", "7", "`queries.tsv` starting with a UTF-8 BOM, then `retrieve`",
         setup_bom("queries"), 0, "run written to", check=check_bom_queries,
         result="the same run as without the BOM (first qid without U+FEFF)"),
    Case("bom-qrels", "7", "`qrels.txt` starting with a UTF-8 BOM, then `evaluate`",
         setup_bom("qrels"), 0, "written to", check=check_same_metrics, absent=("not in the qrels",),
         result="the same metrics as without the BOM"),
    Case("bom-run", "7", "a run starting with a UTF-8 BOM, then `evaluate`",
         setup_bom("run"), 0, "written to", check=check_same_metrics, absent=("not in the qrels",),
         result="the same metrics as without the BOM"),
    # 8. queries with no content
    Case("query-zero-width", "8", "a query of zero-width spaces only, then `retrieve`",
         setup_contentless_query("\u200b\u200b\u200b"), 2,
         "has no content for the model: its text gives no token at all"),
    Case("query-emoji", "8", "a query of emoji only ([UNK]), then `retrieve`",
         setup_contentless_query("\U0001f600\U0001f680"), 2, "has no content for the model: its text gives only "
                                                              "unknown tokens"),
    # 9. evaluation
    Case("qrels-foreign-ids", "9", "qrels whose documents are all unknown to the run (another id scheme)",
         setup_foreign_qrels, 0, "none of the documents it retrieved for judged queries is judged in the qrels"),
    Case("beir-self-hits", "9", "`evaluate --convention beir` of a run that retrieves the query's own id",
         setup_beir_self_hits, 0, "2 retrieved documents whose id equals their query's id were removed"),
    Case("qrels-and-dataset", "9", "`evaluate --qrels Q --dataset D`", setup_qrels_and_dataset, 0,
         "is used, not the qrels of --dataset"),
    Case("read-only-run-folder", "9", "`evaluate --run` of a run in a read-only folder, no --output",
         setup_read_only_run, 0, "written to outputs/eval/run.metrics.json", check=check_metrics_under_outputs,
         result="nothing written beside the run",
         patch=lambda folder, shared: _read_only_run_in(folder)),
    # 10. numbers and empty inputs
    Case("empty-corpus", "10", "an empty corpus.jsonl, then `encode`", setup_empty_corpus, 2,
         "the corpus holds no documents"),
    Case("shard-size-0", "10", "`encode --shard-size 0`", setup_flag("--shard-size", "0"), 2,
         "argument --shard-size: expected a whole number of 1 or more, got 0"),
    Case("batch-size-0", "10", "`encode --batch-size 0`", setup_flag("--batch-size", "0"), 2,
         "argument --batch-size: expected a whole number of 1 or more, got 0"),
    # Clear messages instead of tracebacks
    Case("non-utf8-corpus", "msg", "a latin-1 byte on line 3 of corpus.jsonl, then `encode`",
         setup_non_utf8("corpus"), 2, r"corpus\.jsonl, line 3.*UTF-8", regex=True, absent=TRACEBACK),
    Case("non-utf8-queries", "msg", "a latin-1 byte on line 3 of queries.tsv, then `retrieve`",
         setup_non_utf8("queries"), 2, r"queries\.tsv, line 3.*UTF-8", regex=True, absent=TRACEBACK),
    Case("gzip-run-without-gz", "msg", "a gzipped run named run.trec, then `evaluate`",
         setup_gzip_run_without_gz, 0, "written to", check=check_same_metrics,
         result="the same metrics as the plain file"),
    Case("truncated-shard", "msg", "`shard-00000.npz` cut in half, then `index`", setup_truncated_shard, 2,
         "shard-00000.npz", absent=TRACEBACK + ("BadZipFile",)),
    Case("index-is-file", "msg", "`retrieve --index` naming a file", setup_index_is_file, 2,
         "a file; expected the index folder"),
    Case("index-is-manifest", "msg", "`retrieve --index INDEX/manifest.json`", setup_index_is_manifest, 2,
         "this is the manifest; pass the index folder itself"),
    Case("run-output-is-folder", "msg", "`retrieve --output` naming a folder", setup_output_is_folder, 2,
         "is a folder; --output names the run file to write"),
    Case("encode-output-is-file", "msg", "`encode --output` naming an existing file", setup_output_is_file, 2,
         "is a file; --output names a folder to write into", absent=TRACEBACK),
    Case("index-output-is-file", "msg", "`index --output` naming an existing file", setup_index_output_is_file, 2,
         "a file is", absent=TRACEBACK),
    Case("damaged-lucene", "msg", "a Lucene index with a segment file cut short, then `retrieve --backend lucene`",
         setup_damaged_lucene, 2, "lucene", absent=TRACEBACK + ("at org.apache",)),
    Case("lucene-quiet", "msg", "`index --backend lucene` (Java's INFO lines)", setup_lucene_build, 0,
         "indexed 24 documents", absent=(" INFO ", "IndexCollection"),
         result="no Java INFO line (they show with `--verbose`)"),
    Case("ctrl-c", "msg", "Ctrl-C (SIGINT) during `encode`, then the same command again", setup_encode_in_shards_of_8,
         cli.INTERRUPTED, "splade encode: interrupted; what was written is kept", check=check_resumes,
         result="the first shard is kept; the same command then encodes the rest",
         patch=lambda folder, shared: _ctrl_c_during_encoding(), absent=TRACEBACK + ("KeyboardInterrupt",)),
    Case("ctrl-c-lucene", "msg", "Ctrl-C (SIGINT) during `retrieve --backend lucene` (Java running)",
         lambda folder, shared: _retrieve(shared, shared.lucene_index(), folder, "--backend", "lucene"),
         cli.INTERRUPTED, "splade retrieve: interrupted; files finished before are kept",
         check=check_no_run_left, result="no run file left",
         patch=lambda folder, shared: _ctrl_c_during_lucene_search(),
         absent=TRACEBACK + ("KeyboardInterrupt",)),
    Case("disk-full-encode", "msg", "the disk fills while `encode` writes its second shard, then the same command",
         setup_encode_in_shards_of_8, 2, "no space left on the device; the shards finished before are kept",
         check=check_resumes,
         result="the first shard is kept; the same command then encodes the rest",
         patch=lambda folder, shared: _disk_fills_after(1, "savez")),
    Case("disk-full-run", "msg", "the disk fills while `retrieve` writes its run", setup_full_disk_run, 2,
         "no space left on the device", check=check_no_run_left, patch=lambda folder, shared: _disk_full_writes(),
         result="no run file and no temporary file left"),
    Case("model-not-here", "msg", "an index whose recorded model path is not on this machine, `retrieve`",
         setup_model_missing, 2, "which is not on this machine; pass --model"),
    Case("k-before-model", "msg", "`retrieve --k 0`", setup_retrieve_flag("--k", "0"), 2,
         "argument --k: expected a whole number of 1 or more, got 0", patch=lambda f, s: _no_model_load()),
    Case("alpha-before-model", "msg", "`retrieve --alpha 1.5`", setup_retrieve_flag("--alpha", "1.5"), 2,
         "argument --alpha: expected a number in (0, 1]", patch=lambda f, s: _no_model_load()),
    Case("train-help", "msg", "`train --help`", setup_train_help, 0,
         "weight of the FLOPS regulariser on the queries", absent=("(default: None)",),
         result="every setting with its help and one default (tests/pipelines/test_train_help.py checks each)"),
    Case("encode-rerun", "msg", "`encode` again of a finished encoding", setup_rerun_finished, 0,
         "complete (6 documents, corpus unchanged); nothing to encode"),
    Case("no-loading-bar", "msg", "`encode` (the `Loading weights` bar of every model load)", setup_loading_bar,
         0, "encoded 6 documents", absent=("Loading weights",),
         result="no `Loading weights` bar"),
]


@contextlib.contextmanager
def _disk_full_writes() -> Iterator[None]:
    """The run file's writes fail with ENOSPC after its first line, as on a full disk."""
    real = textfiles.open_text_writer

    class FullDisk:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, text):
            if self.written:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += self.f.write(text)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    with mock.patch.object(trec, "open_text_writer", lambda path, compressed: FullDisk(real(path, compressed))):
        yield


def table(outcomes: list[tuple[Case, Outcome]], replace: dict[str, str]) -> str:
    """The closing note's table: issue item | input | message now given (or the result, for exit 0)."""
    lines = ["| issue item | input | exit | message now given |", "| --- | --- | --- | --- |"]
    for case, outcome in outcomes:
        message = case.message_line(outcome)
        for old, new in replace.items():
            message = message.replace(old, new)
        message = message.replace("|", "\\|")
        if case.result:
            message = f"{message} — *{case.result}*" if message else f"*{case.result}*"
        item = "clear messages" if case.item == "msg" else case.item
        cells = (item, case.input.replace("|", "\\|"), outcome.code, message)
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    """Run every case once and print the Markdown table; exit 1 when a case does not give its message."""
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        root = Path(tmp)
        shared = build_shared(root / "shared")
        outcomes, failed = [], []
        for case in CASES:
            folder = root / "cases" / case.name
            outcome = run_case(case, folder, shared)
            ok = outcome.code == case.code and case.matches(outcome)
            if ok and case.check:
                try:
                    case.check(folder, shared, outcome)
                except AssertionError as e:
                    ok = False
                    print(f"{case.name}: {e}", file=sys.stderr)
            if not ok:
                failed.append(case.name)
            outcomes.append((case, outcome))
        print(table(outcomes, {str(root / "cases") + "/": "", str(root / "shared") + "/": ""}))
    if failed:
        print(f"\n{len(failed)} cases did not give their message: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
