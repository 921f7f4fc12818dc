"""Training examples of the two recipes, from ids to text rows on disk.

Both recipes start from the same per-query record: positives, and negatives ranked by each mining system.
SPLADE-max keeps at most `negatives_per_system` negatives per system, dropping any whose teacher score is above
(lowest positive score - margin): such passages are more likely unjudged positives than negatives (the
sentence-transformers MS MARCO MNRL recipe). DistilSPLADE keeps the teacher's score margin of (positive, negative)
as the MarginMSE label.

Each pass over the data rotates through a query's positives and negatives (pass e uses the e-th of each, modulo
their number), as the reference scripts do between epochs. The rows are written as JSON lines, atomically, then
loaded by `datasets` memory-mapped: on MS MARCO the texts never sit in memory all at once.
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contracts.atomic import atomic_path


@dataclass
class QueryCandidates:
    """One training query: its positives and, per mining system, its candidate negatives best first."""

    qid: str
    positives: list[str]
    negatives: dict[str, list[str]] = field(default_factory=dict)  # mining system -> passage ids, best first


@dataclass(frozen=True)
class IdRow:
    """One training row by ids: (query, positive, negative) and, for distil, the teacher's margin."""

    qid: str
    positive: str
    negative: str
    label: float | None = None  # teacher margin s(q, positive) - s(q, negative), distil only


def select_negatives(
    candidates: QueryCandidates,
    scores: Mapping[str, float] | None,
    per_system: int = 5,
    margin: float | None = 3.0,
    systems: Iterable[str] | None = None,
) -> list[str]:
    """At most `per_system` negatives from each system, none of them a positive, none scored as a likely positive.

    Args:
        candidates: the query's positives and negatives per system.
        scores: pid -> teacher score for this query (None: no score filter).
        per_system: negatives kept per system, in the system's order.
        margin: drop a negative scored above (lowest positive score - margin); None keeps all.
        systems: the systems to use, in order (None: all of the record's).

    Returns:
        The chosen pids, system by system, without repeats.

    Raises:
        ValueError: a margin without scores.
        KeyError: a positive without a teacher score.
    """
    positives = set(candidates.positives)
    threshold = None
    if margin is not None:
        if scores is None:
            raise ValueError(f"query {candidates.qid}: a score margin needs teacher scores")
        missing = [p for p in candidates.positives if p not in scores]
        if missing:
            raise KeyError(f"query {candidates.qid}: no teacher score for positive(s) {', '.join(missing[:5])}")
        threshold = min(scores[p] for p in candidates.positives) - margin
    wanted = list(systems) if systems is not None else list(candidates.negatives)
    chosen: list[str] = []
    seen: set[str] = set()
    for system in wanted:
        added = 0
        for pid in candidates.negatives.get(system, ()):
            if added >= per_system:
                break
            if pid in positives or pid in seen:
                continue
            if threshold is not None:
                if pid not in scores:
                    continue  # unscored: cannot tell it from a false negative
                if scores[pid] > threshold:
                    continue
            seen.add(pid)
            chosen.append(pid)
            added += 1
    return chosen


def build_id_rows(
    records: Iterable[QueryCandidates],
    scores: Mapping[str, Mapping[str, float]] | None,
    recipe: str,
    passes: int = 1,
    per_system: int = 5,
    margin: float | None = 3.0,
    systems: Iterable[str] | None = None,
    max_queries: int | None = None,
) -> tuple[list[IdRow], dict]:
    """(query, positive, negative[, margin]) id rows for `passes` passes, and counts for the summary.

    Args:
        records: the queries' candidates (a stream is read once).
        scores: qid -> {pid: teacher score}, or None (SPLADE-max without a margin).
        recipe: "max" or "distil" (distil rows carry the margin s(pos) - s(neg) as label).
        passes: rows per query; pass e takes the e-th positive and negative (modulo their numbers).
        per_system, margin, systems: as `select_negatives`.
        max_queries: stop after this many queries.

    Returns:
        (rows, counts: queries_seen, queries_used, no_positive, no_negative, negatives).

    Raises:
        ValueError: an unknown recipe, or distil without scores.
        KeyError: a query without teacher scores.
    """
    if recipe not in ("max", "distil"):
        raise ValueError(f"recipe {recipe!r}: expected 'max' or 'distil'")
    if recipe == "distil" and scores is None:
        raise ValueError("the distil recipe needs teacher scores")
    systems = list(systems) if systems is not None else None
    rows: list[IdRow] = []
    stats = {"queries_seen": 0, "queries_used": 0, "no_positive": 0, "no_negative": 0, "negatives": 0}
    for record in records:
        if max_queries is not None and stats["queries_seen"] >= max_queries:
            break
        stats["queries_seen"] += 1
        if not record.positives:
            stats["no_positive"] += 1
            continue
        query_scores = scores.get(record.qid) if scores is not None else None
        if scores is not None and query_scores is None:
            raise KeyError(f"query {record.qid}: no teacher scores")
        negatives = select_negatives(record, query_scores, per_system, margin, systems)
        if recipe == "distil":
            negatives = [n for n in negatives if n in query_scores]
        if not negatives:
            stats["no_negative"] += 1
            continue
        stats["queries_used"] += 1
        stats["negatives"] += len(negatives)
        for e in range(passes):
            pos = record.positives[e % len(record.positives)]
            neg = negatives[e % len(negatives)]
            label = float(query_scores[pos] - query_scores[neg]) if recipe == "distil" else None
            rows.append(IdRow(record.qid, pos, neg, label))
    return rows, stats


def write_text_rows(
    rows: list[IdRow],
    query_text: Mapping[str, str],
    passage_text: Callable[[str], str],
    path: str | Path,
    seed: int = 42,
    progress: bool = True,
) -> int:
    """Looks up the texts and writes one JSON object per row (query, positive, negative[, label]), atomically.

    Rows are shuffled with `seed` so that each pass is spread over the file and the order is reproducible.

    Args:
        rows: the id rows.
        query_text: qid -> text.
        passage_text: pid -> text.
        path: the JSON-lines file to write.
        seed: the shuffle's seed.
        progress: show a progress bar.

    Returns:
        The number of rows written.
    """
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    iterator: Iterator[int] = iter(order)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(order), desc="writing training rows", unit="row")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for i in iterator:
            row = rows[i]
            obj = {
                "query": query_text[row.qid],
                "positive": passage_text(row.positive),
                "negative": passage_text(row.negative),
            }
            if row.label is not None:
                obj["label"] = row.label
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return len(rows)
