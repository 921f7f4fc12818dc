"""Training rows for both recipes, from MS MARCO's published files or from any dataset folder.

Everything slow is kept in the work folder and reused when present: mined negatives, teacher scores and the rows
file itself (recorded with the settings that made it, so changing a setting rebuilds it). Each file is written
atomically, so a killed run never leaves half of one behind.
"""
from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from contracts.atomic import write_json
from contracts.manifest import read_json
from training.config import TrainingConfig
from training.examples import QueryCandidates, build_id_rows, write_text_rows

logger = logging.getLogger(__name__)

ROWS_FILE = "train-rows.jsonl"
ROWS_INFO = "train-rows.json"
# settings that change the rows (anything else, e.g. the learning rate, does not)
ROW_FIELDS = ("recipe", "dataset", "epochs", "negatives_per_system", "ce_score_margin", "negative_systems",
              "max_queries", "miner", "mining_depth", "teacher", "seed")


def rows_settings(config: TrainingConfig) -> dict:
    """The settings that decide the rows (ROW_FIELDS), as recorded beside them."""
    return {name: getattr(config, name) for name in ROW_FIELDS}


def cached_rows(work_dir: Path, config: TrainingConfig) -> Path | None:
    """The rows file in `work_dir` if it was made with the row settings of `config`, else None."""
    info_path = work_dir / ROWS_INFO
    if info_path.exists() and (work_dir / ROWS_FILE).exists():
        info = read_json(info_path, what="training-rows record")
        if info.get("settings") == rows_settings(config):
            logger.info("reusing %s training rows in %s", f"{info['rows']:,}", work_dir / ROWS_FILE)
            return work_dir / ROWS_FILE
    return None


def needs_scores(config: TrainingConfig) -> bool:
    """Whether the recipe needs teacher scores: distil (labels) or SPLADE-max with a false-negative margin."""
    return config.recipe == "distil" or config.negative_margin is not None


def peak_rss_gib() -> float:
    """The process's peak resident memory so far, in GiB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


class Phases:
    """Seconds and peak memory of each phase of row preparation, logged as they end and kept in train-rows.json."""

    def __init__(self):
        self.record: dict[str, dict[str, float]] = {}

    def done(self, name: str, seconds: float) -> None:
        self.record[name] = {"seconds": round(seconds, 1), "peak_rss_gib": peak_rss_gib()}
        logger.info("%s: %.1f s, peak memory %.2f GiB", name, seconds, self.record[name]["peak_rss_gib"])

    def timed(self, items: Iterable, name: str) -> Iterator:
        """Yields `items`, recording the time spent producing them (reading a stream) as phase `name`."""
        spent, iterator = 0.0, iter(items)
        try:
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    spent += time.perf_counter() - started
                yield item
        finally:  # exhausted, or closed by a consumer that stopped early (max_queries)
            self.done(name, spent)


def finish_rows(config: TrainingConfig, work_dir: Path, records: Iterable[QueryCandidates], scores, queries,
                passage_text, started: float, phases: Phases | None = None) -> Path:
    """Select negatives, build the id rows and write the text rows; records the counts in train-rows.json.

    Args:
        config: the run's settings (recipe, passes, negatives per system, margin, systems, max queries).
        work_dir: where train-rows.jsonl and train-rows.json go.
        records: per query its positives and each system's negatives (may be a stream).
        scores: qid -> {pid: teacher score}, or None when the recipe needs none.
        queries: qid -> text.
        passage_text: pid -> text.
        started: when preparation began (perf_counter), for the log line.
        phases: the phase record to add to (a new one when None).

    Returns:
        The path of train-rows.jsonl.

    Raises:
        ValueError: no query is left with a positive and a negative.
    """
    phases = phases or Phases()
    reading = phases.timed(records, "reading negatives")
    building = time.perf_counter()
    id_rows, stats = build_id_rows(
        reading, scores, config.recipe, passes=config.epochs, per_system=config.negatives_per_system,
        margin=config.negative_margin, systems=config.negative_systems, max_queries=config.max_queries,
    )
    reading.close()
    read_seconds = phases.record.get("reading negatives", {}).get("seconds", 0.0)
    phases.done("building rows", time.perf_counter() - building - read_seconds)
    if not id_rows:
        raise ValueError(
            f"no training rows: of {stats['queries_seen']} queries, {stats['no_positive']} have no positive and "
            f"{stats['no_negative']} no negative left after the score margin {config.negative_margin}; "
            f"try a larger --mining-depth or --ce-score-margin none"
        )
    path = work_dir / ROWS_FILE
    writing = time.perf_counter()
    write_text_rows(id_rows, queries, passage_text, path, seed=config.seed)
    phases.done("writing rows", time.perf_counter() - writing)
    write_json(work_dir / ROWS_INFO, {"settings": rows_settings(config), "rows": len(id_rows), "stats": stats,
                                      "phases": phases.record})
    logger.info("training rows: %s (%d pass(es) over %s queries, %.1f negatives per query; %d queries without a "
                "negative left) in %.1f s -> %s", f"{len(id_rows):,}", config.epochs, f"{stats['queries_used']:,}",
                stats["negatives"] / max(stats["queries_used"], 1), stats["no_negative"],
                time.perf_counter() - started, path)
    return path


def prepare_hard_negative_rows(
    config: TrainingConfig,
    work_dir: str | Path,
    records: Iterable[QueryCandidates],
    load_scores: Callable[[], Mapping[str, Mapping[str, float]]],
    queries: Mapping[str, str],
    passage_text: Callable[[str], str],
) -> Path:
    """Rows from a published hard-negatives stream (MS MARCO) and its teacher score file.

    Args:
        config: the run's settings.
        work_dir: the run's data folder (rows reused from there when their settings match).
        records: the hard-negatives stream.
        load_scores: loads qid -> {pid: score} (called only when the recipe needs scores).
        queries: qid -> text.
        passage_text: pid -> text.

    Returns:
        The path of train-rows.jsonl.
    """
    work_dir = Path(work_dir)
    cached = cached_rows(work_dir, config)
    if cached:
        return cached
    started = time.perf_counter()
    phases = Phases()
    scores = None
    if needs_scores(config):
        scores = load_scores()
        phases.done("loading teacher scores", time.perf_counter() - started)
    return finish_rows(config, work_dir, records, scores, queries, passage_text, started, phases)


def positives_from_qrels(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, list[str]]:
    """{qid: sorted doc ids judged relevant (rel > 0)}."""
    return {qid: sorted(d for d, rel in judged.items() if rel > 0) for qid, judged in qrels.items()}


def prepare_mined_rows(
    config: TrainingConfig,
    work_dir: str | Path,
    queries: Sequence[tuple[str, str]],
    corpus: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    mine: Callable[[list[tuple[str, str]]], dict[str, list[str]]],
    make_teacher: Callable[[], object],
) -> Path:
    """Rows for a dataset folder: positives from its qrels, negatives from `mine`, scores from the teacher.

    Args:
        config: the run's settings.
        work_dir: the run's data folder (negatives.json, teacher-scores.json and the rows are kept and reused).
        queries: (qid, text) training queries.
        corpus: doc id -> text.
        qrels: the training judgements.
        mine: (qid, text) pairs -> {qid: candidate doc ids best first}.
        make_teacher: builds the teacher (called only when pairs need scoring).

    Returns:
        The path of train-rows.jsonl.

    Raises:
        ValueError: no query with a positive, judged documents missing from the corpus, or no row left.
    """
    work_dir = Path(work_dir)
    cached = cached_rows(work_dir, config)
    if cached:
        return cached
    started = time.perf_counter()
    positives = positives_from_qrels(qrels)
    selected = [(qid, text) for qid, text in queries if positives.get(qid)]
    if not selected:
        raise ValueError(f"dataset {config.dataset}: no training query has a positive judgement in its qrels")
    if config.max_queries is not None:
        selected = selected[: config.max_queries]
    missing = sorted({d for qid, _ in selected for d in positives[qid] if d not in corpus})
    if missing:
        raise ValueError(f"dataset {config.dataset}: judged document(s) {', '.join(missing[:5])} are not in the corpus")

    mined = _mined_negatives(config, work_dir, selected, mine)
    system = f"mined:{config.miner}"
    records = [QueryCandidates(qid, positives[qid], {system: mined.get(qid, [])}) for qid, _ in selected]
    scores = None
    if needs_scores(config):
        scores = _teacher_scores(config, work_dir, records, dict(selected), corpus, make_teacher)
    return finish_rows(config, work_dir, records, scores, dict(selected), corpus.__getitem__, started)


def _mined_negatives(config, work_dir: Path, selected, mine) -> dict[str, list[str]]:
    path = work_dir / "negatives.json"
    key = {"miner": config.miner, "depth": config.mining_depth}
    if path.exists():
        saved = read_json(path, what="mined negatives")
        if saved.get("key") == key and all(qid in saved["negatives"] for qid, _ in selected):
            return saved["negatives"]
    negatives = mine(list(selected))
    write_json(path, {"key": key, "negatives": negatives})
    return negatives


def _teacher_scores(config, work_dir: Path, records, queries, corpus, make_teacher) -> dict[str, dict[str, float]]:
    """Scores of every (query, positive) and (query, candidate negative) pair; only pairs not yet saved are scored."""
    path = work_dir / "teacher-scores.json"
    saved = read_json(path, what="teacher scores") if path.exists() else {}
    scores: dict[str, dict[str, float]] = saved.get("scores", {}) if saved.get("teacher") == config.teacher else {}
    pairs = sorted({(r.qid, p) for r in records for ids in [r.positives, *r.negatives.values()] for p in ids
                    if p not in scores.get(r.qid, {})})
    if pairs:
        teacher = make_teacher()
        logger.info("scoring %s (query, passage) pairs with the teacher %s", f"{len(pairs):,}", config.teacher)
        values = teacher.score(queries, corpus, pairs)
        for (qid, pid), value in zip(pairs, values):
            scores.setdefault(qid, {})[pid] = float(value)
        write_json(path, {"teacher": config.teacher, "scores": scores})
    return scores
