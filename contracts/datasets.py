"""Dataset folders (DESIGN.md): corpus.jsonl, queries.tsv, qrels.txt, read strictly with file and line in every error.

The files may be gzip-compressed and may start with a UTF-8 byte-order mark (`contracts.textfiles`).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from contracts.textfiles import open_text

__all__ = ["read_corpus", "read_queries"]

_EXPECTED_DOC = 'expected {"id", "title"?, "text"}'


def read_corpus(path: str | Path) -> Iterator[dict]:
    """The documents of a corpus.jsonl, in file order, streamed.

    Blank lines are skipped. An id may be written as a JSON string or integer; it is returned as a string.

    Args:
        path: the corpus.jsonl file, one JSON object `{"id", "title"?, "text"}` per line.

    Returns:
        An iterator of the documents as dicts, with "id" a string (other keys kept as they are).

    Raises:
        FileNotFoundError: no file at `path` (raised at once, before the first document).
        ValueError: a line that is not such an object (not JSON, no "id", "text" not a string, "title" neither a
            string nor null, an id with whitespace), or not UTF-8; the message names the file and the line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no corpus here (expected corpus.jsonl, one JSON object per line)")
    return _read_corpus(path)


def _read_corpus(path: Path) -> Iterator[dict]:
    with open_text(path, "corpus") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({e.msg}); {_EXPECTED_DOC}") from None
            except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4300 digits, nesting too deep
                raise ValueError(f"{path}, line {lineno}: not a JSON value this reader accepts ({e}); "
                                 f"{_EXPECTED_DOC}") from None
            if not isinstance(doc, dict) or "id" not in doc or not isinstance(doc.get("text"), str):
                raise ValueError(f"{path}, line {lineno}: expected a JSON object with \"id\" and a string \"text\"")
            raw_id = doc["id"]
            if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
                raise ValueError(f"{path}, line {lineno}: document id {raw_id!r} is not a string or an integer")
            title = doc.get("title")
            if title is not None and not isinstance(title, str):
                raise ValueError(f"{path}, line {lineno}: title {title!r} is not a string")
            doc_id = str(raw_id)
            if not doc_id or any(c.isspace() for c in doc_id):
                raise ValueError(f"{path}, line {lineno}: document id {doc_id!r} is empty or has whitespace "
                                 f"(TREC runs cannot hold it)")
            doc["id"] = doc_id
            yield doc


def read_queries(path: str | Path) -> list[tuple[str, str]]:
    """The (qid, text) pairs of a queries.tsv, in file order.

    Blank lines are skipped; the text is stripped of surrounding whitespace.

    Args:
        path: the queries.tsv file, `qid<TAB>text` per line.

    Returns:
        The (qid, text) pairs.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: a line without a tab, an empty or whitespace-holding qid, an empty text, a qid seen before, or
            a line that is not UTF-8; the message names the file and the line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no queries here (expected queries.tsv: qid<TAB>text per line)")
    queries, seen = [], set()
    with open_text(path, "queries") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            qid, sep, text = line.partition("\t")
            if not sep:
                raise ValueError(f"{path}, line {lineno}: expected qid<TAB>text, found no tab")
            if not qid.strip() or any(c.isspace() for c in qid):
                raise ValueError(f"{path}, line {lineno}: query id {qid!r} is empty or has whitespace")
            if not text.strip():
                raise ValueError(f"{path}, line {lineno}: query {qid!r} is empty")
            if qid in seen:
                raise ValueError(f"{path}, line {lineno}: query id {qid!r} appears twice")
            seen.add(qid)
            queries.append((qid, text.strip()))
    return queries
