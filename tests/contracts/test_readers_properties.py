"""Property tests of the readers (corpus.jsonl, queries.tsv, qrels, runs, manifests) on random and mutated bytes.

Every input either parses to what the small reference parser below gives, or raises the project's own error
(ValueError / FileNotFoundError naming the file, and the line when the reference locates the fault on one) —
never another exception type, never a silently different result. The inputs are built from well-formed files and
then mutated at the byte level (tabs, newlines, carriage returns, BOMs, bytes that are not UTF-8, JSON
punctuation), optionally prefixed with a UTF-8 BOM and gzip-compressed with or without the `.gz` name.
"""
from __future__ import annotations

import gzip
import json
import math
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.datasets import read_corpus, read_queries
from contracts.manifest import read_manifest
from contracts.trec import read_qrels, read_run

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BOM = b"\xef\xbb\xbf"
# Bytes that change how a line splits or decodes: separators, line ends, JSON punctuation, broken UTF-8.
INTERESTING = [b"\t", b" ", b"\n", b"\r", b"\r\n", b"\x00", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xe2\x80\xa8",
               b'"', b"{", b"}", b",", b":", b"\\", b"1e999", b"nan", b"-", b"99999999999999999999", b"\x1f\x8b"]


class RefError(Exception):
    """The reference parser's verdict that the input is bad, with the line it blames (None: the whole file)."""

    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


class Undecodable(RefError):
    """A byte that is not UTF-8 on `line`; `before` holds the file's bytes up to that line."""

    def __init__(self, line: int, before: bytes):
        super().__init__(line)
        self.before = before


# ---- the reference parsers: the contracts of DESIGN.md written as plainly as possible ----------------------------

def ref_text(data: bytes) -> str:
    """The text with Python's text-mode line ends (\\r\\n and \\r read as \\n), one leading BOM dropped."""
    bom = len(BOM) if data.startswith(BOM) else 0
    body = data[bom:]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        breaks = list(re.finditer(rb"\r\n|\r|\n", body[:e.start]))
        line_start = breaks[-1].end() if breaks else 0
        raise Undecodable(len(breaks) + 1, data[:bom + line_start]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def ref_lines(data: bytes) -> list[str]:
    lines = ref_text(data).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def ref_queries(data: bytes) -> list[tuple[str, str]]:
    out, seen = [], set()
    for n, line in enumerate(ref_lines(data), 1):
        if line.strip() == "":
            continue
        if "\t" not in line:
            raise RefError(n)
        qid, text = line.split("\t", 1)
        if qid == "" or any(c.isspace() for c in qid) or text.strip() == "" or qid in seen:
            raise RefError(n)
        seen.add(qid)
        out.append((qid, text.strip()))
    return out


def ref_corpus(data: bytes) -> list[dict]:
    out = []
    for n, line in enumerate(ref_lines(data), 1):
        if line.strip() == "":
            continue
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            raise RefError(n) from None
        if not isinstance(doc, dict) or "id" not in doc or not isinstance(doc.get("text"), str):
            raise RefError(n)
        if type(doc["id"]) not in (str, int) or not isinstance(doc.get("title", ""), (str, type(None))):
            raise RefError(n)
        doc["id"] = str(doc["id"])
        if doc["id"] == "" or any(c.isspace() for c in doc["id"]):
            raise RefError(n)
        out.append(doc)
    return out


def ref_qrels(data: bytes) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(ref_lines(data), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise RefError(n)
        qid, _, docid, rel = fields
        try:
            rel = int(rel)
        except ValueError:
            raise RefError(n) from None
        if qrels.get(qid, {}).get(docid, rel) != rel:
            raise RefError(n)
        qrels.setdefault(qid, {}).setdefault(docid, rel)
    if not qrels:
        raise RefError(None)
    return qrels


def ref_run(data: bytes) -> dict[str, list[tuple[str, float]]]:
    entries: dict[str, list[tuple[int, str, float]]] = {}
    for n, line in enumerate(ref_lines(data), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise RefError(n)
        qid, _, docid, rank, score, _ = fields
        try:
            rank, score = int(rank), float(score)
        except ValueError:
            raise RefError(n) from None
        if not -(2**63) <= rank < 2**63 or not math.isfinite(score):
            raise RefError(n)
        if any(d == docid for _, d, _ in entries.get(qid, [])):
            raise RefError(n)
        entries.setdefault(qid, []).append((rank, docid, score))
    if not entries:
        raise RefError(None)
    return {q: [(d, s) for _, d, s in sorted(e, key=lambda x: x[0])] for q, e in entries.items()}


def ref_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(ref_text(data))
    except json.JSONDecodeError as e:
        raise RefError(e.lineno) from None
    except (ValueError, RecursionError):
        raise RefError(None) from None
    if not isinstance(manifest, dict) or manifest.get("format") != "test-format" or manifest.get("format_version") != 3:
        raise RefError(None)
    return manifest


# ---- inputs -------------------------------------------------------------------------------------------------------

ids = st.one_of(st.sampled_from(["q1", "q2", "d1", "d2", "a", "b", "7"]), st.text(min_size=0, max_size=5))
words = st.text(min_size=0, max_size=12)
numbers = st.one_of(st.integers(-3, 3).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["x", "", "1.5", "+2", "1_0"]))


@st.composite
def mutated(draw, lines: st.SearchStrategy) -> bytes:
    """Well-formed lines, then a few byte-level insertions, replacements and deletions."""
    data = bytearray("".join(draw(lines)).encode("utf-8"))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        piece = draw(st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=3)))
        if action == "insert":
            data[position:position] = piece
        elif action == "replace":
            data[position:position + len(piece)] = piece
        else:
            del data[position:position + draw(st.integers(1, 4))]
    return bytes(data)


@st.composite
def stored(draw, contents: st.SearchStrategy, name: str) -> tuple[bytes, bytes, str]:
    """(what the reader should see, the file's bytes, the file name): maybe a BOM, maybe gzip, `.gz` or not."""
    plain = draw(contents)
    if draw(st.booleans()):
        plain = BOM + plain
    compressed = draw(st.booleans())
    stored_bytes = gzip.compress(plain, mtime=0) if compressed else plain
    suffix = draw(st.sampled_from([".gz", ""])) if compressed else ""
    return plain, stored_bytes, name + suffix


query_lines = st.lists(st.builds(lambda q, t: f"{q}\t{t}\n", ids, words), max_size=6)
corpus_lines = st.lists(
    st.builds(lambda i, t, title: json.dumps({"id": i, "text": t, **({"title": title} if title != "-" else {})})
              + "\n", st.one_of(ids, st.integers(-5, 5), st.none(), st.booleans()), words,
              st.one_of(words, st.none(), st.just("-"), st.integers())),
    max_size=5)
qrels_lines = st.lists(st.builds(lambda q, d, r: f"{q} 0 {d} {r}\n", ids, ids, numbers), max_size=6)
run_lines = st.lists(st.builds(lambda q, d, r, s: f"{q} Q0 {d} {r} {s} tag\n", ids, ids, numbers, numbers), max_size=6)
manifest_objects = st.fixed_dictionaries(
    {"format": st.sampled_from(["test-format", "other"]), "format_version": st.sampled_from([3, 2, "3"])},
    optional={"model": words, "num_docs": st.integers()},
).map(lambda m: [json.dumps(m, indent=2)])


# ---- the property -------------------------------------------------------------------------------------------------

def verdict(reference, data: bytes, streams: bool) -> tuple[object, set[int]]:
    """(the parsed value or RefError, the lines an error may name; empty: no line).

    A streaming reader decodes ahead in chunks, so it meets a byte that is not UTF-8 either before or after the
    lines in front of it: an error on one of those lines is then as right as the decoding error.
    """
    try:
        return reference(data), set()
    except Undecodable as e:
        lines = {e.line}
        if streams:
            try:
                reference(e.before)
            except RefError as earlier:
                lines |= {earlier.line} - {None}
        return RefError, lines
    except RefError as e:
        return RefError, {e.line} - {None}


def check(tmp_path: Path, sample: tuple[bytes, bytes, str], read, reference, normalize=lambda x: x,
          streams: bool = True) -> None:
    plain, stored_bytes, name = sample
    path = tmp_path / name
    path.write_bytes(stored_bytes)
    expected, expected_lines = verdict(reference, plain, streams)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repeated qrels judgments warn; the value is what is checked here
        try:
            got = normalize(read(path))
        except (ValueError, FileNotFoundError) as e:
            message = str(e)
            assert str(path) in message, f"the error does not name the file: {message}"
            assert expected is RefError, f"refused a good input: {message}; the reference gives {expected!r}"
            if expected_lines:
                assert any(f", line {n}:" in message for n in expected_lines), f"expected {expected_lines}: {message}"
            return
    assert expected is not RefError, f"accepted a bad input (the reference blames {expected_lines}): {got!r}"
    assert got == expected


@SETTINGS
@given(sample=stored(mutated(query_lines), "queries.tsv"))
def test_queries_reader(tmp_path, sample):
    check(tmp_path, sample, read_queries, ref_queries)


@SETTINGS
@given(sample=stored(mutated(corpus_lines), "corpus.jsonl"))
def test_corpus_reader(tmp_path, sample):
    check(tmp_path, sample, lambda p: list(read_corpus(p)), ref_corpus)


@SETTINGS
@given(sample=stored(mutated(qrels_lines), "qrels.txt"))
def test_qrels_reader(tmp_path, sample):
    check(tmp_path, sample, read_qrels, ref_qrels)


@SETTINGS
@given(sample=stored(mutated(run_lines), "run.trec"))
def test_run_reader(tmp_path, sample):
    check(tmp_path, sample, read_run, ref_run, normalize=lambda run: {q: list(d.items()) for q, d in run.items()})


@SETTINGS
@given(sample=stored(mutated(manifest_objects), "manifest.json"))
def test_manifest_reader(tmp_path, sample):
    plain, stored_bytes, name = sample
    folder = tmp_path / "folder"
    folder.mkdir(exist_ok=True)
    check(tmp_path, (plain, stored_bytes, "folder/manifest.json"),
          lambda p: read_manifest(p.parent, "test-format", 3, "test folder", "rebuild it"), ref_manifest,
          streams=False)


@SETTINGS
@given(data=st.binary(max_size=200), cut=st.integers(0, 400))
def test_damaged_gzip_is_an_error_naming_the_file(tmp_path, data, cut):
    """A gzip file cut short or overwritten anywhere: the reader says so, with the file, or reads what is there."""
    whole = gzip.compress(b"q1 Q0 d1 1 2.5 t\n" * 20, mtime=0)
    damaged = whole[:cut] + data if cut < len(whole) else whole[:len(whole) // 2]
    path = tmp_path / "run.trec"
    path.write_bytes(damaged)
    try:
        run = read_run(path)
    except (ValueError, FileNotFoundError) as e:
        assert str(path) in str(e)
    else:
        assert all(isinstance(s, float) for docs in run.values() for s in docs.values())


def test_a_bom_is_not_part_of_the_first_id(tmp_path):
    """#13.7: an editor's byte-order mark made the first qid `\\ufeffq01` and changed NDCG@10."""
    (tmp_path / "q.tsv").write_bytes(BOM + b"q01\tfirst\nq02\tsecond\n")
    (tmp_path / "qrels.txt").write_bytes(BOM + b"q01 0 d1 1\n")
    (tmp_path / "run.trec").write_bytes(BOM + b"q01 Q0 d1 1 1.0 t\n")
    (tmp_path / "corpus.jsonl").write_bytes(BOM + b'{"id": "d1", "text": "x"}\n')
    assert read_queries(tmp_path / "q.tsv")[0][0] == "q01"
    assert list(read_qrels(tmp_path / "qrels.txt")) == ["q01"]
    assert list(read_run(tmp_path / "run.trec")) == ["q01"]
    assert next(read_corpus(tmp_path / "corpus.jsonl"))["id"] == "d1"


@pytest.mark.parametrize("name", ["run.trec", "run.trec.gz"])
def test_a_gzipped_run_is_read_whatever_its_name(tmp_path, name):
    (tmp_path / name).write_bytes(gzip.compress(b"q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 1.5 t\n"))
    assert read_run(tmp_path / name) == {"q1": {"d1": 2.5, "d2": 1.5}}


@pytest.mark.parametrize("read, name, data, line", [
    (read_queries, "queries.tsv", "q1\tcaf\u00e9\nq2\tna\u00efve\n".encode("latin-1"), 1),
    (lambda p: list(read_corpus(p)), "corpus.jsonl", b'{"id": "1", "text": "ok"}\n{"id": "2", "text": "\xe9"}\n', 2),
    (read_run, "run.trec", b"".join(b"q1 Q0 d%d %d 1.0 t\n" % (i, i) for i in range(3000)) + b"q2 Q0 \xff 1 1.0 t\n",
     3001),  # far past the first chunk the text layer decodes
])
def test_bytes_that_are_not_utf8_name_file_line_and_byte(tmp_path, read, name, data, line):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line {line}: not UTF-8 text \(byte 0x"):
        read(path)
