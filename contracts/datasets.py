"""Dataset folders (DESIGN.md): corpus.jsonl, queries.tsv, qrels.txt, read strictly with file and line in every error."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


def read_corpus(path: str | Path) -> Iterator[dict]:
    """Documents of a corpus.jsonl; a malformed line stops with its file and line number."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no corpus here (expected corpus.jsonl, one JSON object per line)")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({e.msg}); expected {{\"id\", \"title\"?, \"text\"}}") from None
            if not isinstance(doc, dict) or "id" not in doc or not isinstance(doc.get("text"), str):
                raise ValueError(f"{path}, line {lineno}: expected a JSON object with \"id\" and a string \"text\"")
            doc_id = str(doc["id"])
            if not doc_id or any(c.isspace() for c in doc_id):
                raise ValueError(f"{path}, line {lineno}: document id {doc_id!r} is empty or has whitespace (TREC runs cannot hold it)")
            doc["id"] = doc_id
            yield doc


def read_queries(path: str | Path) -> list[tuple[str, str]]:
    """(qid, text) pairs of a queries.tsv; a malformed or empty line stops with its file and line number."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no queries here (expected queries.tsv: qid<TAB>text per line)")
    queries, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
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
