"""TREC qrels and run files: read strictly, write atomically.

Every figure downstream is an average over these files, so a line we cannot read is an error naming the file and
the line, never a silent skip. Gzip-compressed files are read whatever their name (`contracts.textfiles`); files
ending in `.gz` are written compressed.
"""
from __future__ import annotations

import math
import warnings
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from contracts.atomic import atomic_path
from contracts.textfiles import open_text, open_text_writer

__all__ = ["EvaluationWarning", "RunDict", "QrelsDict", "ranked_lists", "read_qrels", "read_run", "write_run"]

RunDict = Mapping[str, Mapping[str, float]]  # {qid: {docid: score}}, as read_run returns it
QrelsDict = Mapping[str, Mapping[str, int]]  # {qid: {docid: relevance}}, as read_qrels returns it


class EvaluationWarning(UserWarning):
    """Something in the input that changes no figure silently but that a researcher must know about."""


def _lines(path: str | Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of the non-blank lines."""
    with open_text(path, what) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if fields:
                yield lineno, fields


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels `qid iteration docid relevance` -> {qid: {docid: relevance}}.

    The same judgment twice is tolerated with a warning (some official qrels have them); two different judgments
    for one (qid, docid) are an error, since either choice changes the figures.

    Args:
        path: the qrels file (whitespace-separated columns; gzip-compressed or not, whatever its name).

    Returns:
        {qid: {docid: relevance}} in file order.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: a line without 4 columns, a relevance that is not an integer, two different judgments of one
            document, a line that is not UTF-8, or no judgment at all; the message names the file and the line.
    """
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    repeated = 0
    for lineno, fields in _lines(path, "qrels"):
        if len(fields) != 4:
            raise ValueError(f"{path}, line {lineno}: expected 4 columns `qid 0 docid relevance`, found {len(fields)}")
        qid, _, docid, rel_text = fields
        try:
            rel = int(rel_text)
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: relevance {rel_text!r} is not an integer") from None
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            if judged[docid] != rel:
                raise ValueError(
                    f"{path}, line {lineno}: document {docid!r} of query {qid!r} judged {rel} here and "
                    f"{judged[docid]} on line {first_line[qid, docid]}"
                )
            repeated += 1
            continue
        judged[docid] = rel
        first_line[qid, docid] = lineno
    if not qrels:
        raise ValueError(f"{path}: empty qrels file (expected lines `qid 0 docid relevance`)")
    if repeated:
        warnings.warn(f"{path}: {repeated} judgments appear twice with the same relevance (kept once)",
                      EvaluationWarning, stacklevel=2)
    return qrels


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """TREC run `qid Q0 docid rank score tag` -> {qid: {docid: score}}.

    Each query's documents are kept in the order of the rank column (file order among equal ranks): the MS MARCO
    script ranks by that column, trec_eval by score; `evaluation.metrics` offers both.

    Args:
        path: the run file (whitespace-separated columns; gzip-compressed or not, whatever its name).

    Returns:
        {qid: {docid: score}}, queries in file order, each query's documents in rank order.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: a line without 6 columns, a rank that is not a 64-bit integer, a score that is not a finite
            number, a document twice for one query, a line that is not UTF-8, or no line at all; the message names
            the file and the line.
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    ranks: dict[str, array] = {}  # compact: a run can hold millions of lines
    for lineno, fields in _lines(path, "run"):
        if len(fields) != 6:
            raise ValueError(
                f"{path}, line {lineno}: expected 6 columns `qid Q0 docid rank score tag`, found {len(fields)}"
            )
        qid, _, docid, rank_text, score_text, _ = fields
        try:
            rank = int(rank_text)
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: rank {rank_text!r} is not an integer") from None
        if not -(2**63) <= rank < 2**63:
            raise ValueError(f"{path}, line {lineno}: rank {rank_text!r} is out of range")
        try:
            score = float(score_text)
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: score {score_text!r} is not a number") from None
        if not math.isfinite(score):
            raise ValueError(f"{path}, line {lineno}: score {score_text!r} is not a finite number")
        docs = run.get(qid)
        if docs is None:
            docs = run[qid] = {}
            ranks[qid] = array("q")
        if docid in docs:
            first = _first_line_of(path, qid, docid)
            raise ValueError(
                f"{path}, line {lineno}: document {docid!r} appears twice for query {qid!r} "
                f"(first on line {first}); the official tools reject or mis-score duplicates"
            )
        docs[docid] = score
        ranks[qid].append(rank)
    if not run:
        raise ValueError(f"{path}: empty run file (expected lines `qid Q0 docid rank score tag`)")
    for qid, order in ranks.items():
        if any(a > b for a, b in zip(order, order[1:])):  # not in rank order in the file: reorder (stable)
            items = list(run[qid].items())
            run[qid] = dict(items[i] for i in sorted(range(len(items)), key=order.__getitem__))
    return run


def _first_line_of(path: Path, qid: str, docid: str) -> int | None:
    """Only on the error path: a second pass beats keeping a line number for every entry of a large run."""
    for lineno, fields in _lines(path, "run"):
        if len(fields) >= 3 and fields[0] == qid and fields[2] == docid:
            return lineno
    return None


def ranked_lists(run: Mapping[str, Mapping[str, float]]) -> dict[str, list[tuple[str, float]]]:
    """Each query's documents best first, ties by document id descending (trec_eval's order).

    Args:
        run: {qid: {docid: score}}.

    Returns:
        {qid: [(docid, score), ...]}.
    """
    out = {}
    for qid, docs in run.items():
        items = sorted(docs.items(), key=lambda x: x[0], reverse=True)
        items.sort(key=lambda x: x[1], reverse=True)  # stable: ties keep docid-descending order
        out[qid] = items
    return out


def write_run(path: str | Path, results: Mapping[str, Sequence[tuple[str, float]]], tag: str = "splade") -> None:
    """Write results (already best first) as a TREC run with ranks 1..n.

    Scores are written with `repr`, which round-trips a float exactly: fusion and tie-breaking read them back.

    Args:
        path: the run file; a name ending in `.gz` is written gzip-compressed.
        results: {qid: [(docid, score), ...]}, each list best first.
        tag: the run's name in the sixth column.

    Raises:
        ValueError: a tag or document id that is empty or holds whitespace, or a document listed twice for one
            query (nothing is written then).
    """
    path = Path(path)
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"{path}: run tag {tag!r} must be a non-empty word without whitespace")
    with atomic_path(path) as tmp:
        with open_text_writer(tmp, compressed=path.suffix == ".gz") as f:
            for qid, docs in results.items():
                seen = set()
                for rank, (docid, score) in enumerate(docs, 1):
                    if docid in seen:
                        raise ValueError(f"{path}: document {docid!r} listed twice for query {qid!r}")
                    if not docid or any(c.isspace() for c in docid):
                        raise ValueError(f"{path}: document id {docid!r} of query {qid!r} is empty or has whitespace")
                    seen.add(docid)
                    f.write(f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}\n")
