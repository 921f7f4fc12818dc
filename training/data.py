"""Training rows for both recipes, from MS MARCO's published files or from any dataset folder.

Everything slow is kept in the work folder and reused when present: mined negatives, teacher scores and the rows
file itself (recorded with the settings that made it, so changing a setting rebuilds it). Each file is written
atomically, so a killed run never leaves half of one behind.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from contracts.atomic import write_json
from contracts.manifest import read_json
from training.config import TrainingConfig
from training.examples import QueryCandidates, build_id_rows, write_text_rows

ROWS_FILE = "train-rows.jsonl"
ROWS_INFO = "train-rows.json"
# settings that change the rows (anything else, e.g. the learning rate, does not)
ROW_FIELDS = ("recipe", "dataset", "epochs", "negatives_per_system", "ce_score_margin", "negative_systems",
              "max_queries", "miner", "mining_depth", "teacher", "seed")


def rows_settings(config: TrainingConfig) -> dict:
    return {name: getattr(config, name) for name in ROW_FIELDS}


def cached_rows(work_dir: Path, config: TrainingConfig) -> Path | None:
    info_path = work_dir / ROWS_INFO
    if info_path.exists() and (work_dir / ROWS_FILE).exists():
        info = read_json(info_path, what="training-rows record")
        if info.get("settings") == rows_settings(config):
            print(f"reusing {info['rows']:,} training rows in {work_dir / ROWS_FILE}")
            return work_dir / ROWS_FILE
    return None


def needs_scores(config: TrainingConfig) -> bool:
    return config.recipe == "distil" or config.negative_margin is not None


def finish_rows(config: TrainingConfig, work_dir: Path, records: Iterable[QueryCandidates], scores, queries, passage_text,
                started: float) -> Path:
    id_rows, stats = build_id_rows(
        records, scores, config.recipe, passes=config.epochs, per_system=config.negatives_per_system,
        margin=config.negative_margin, systems=config.negative_systems, max_queries=config.max_queries,
    )
    if not id_rows:
        raise ValueError(
            f"no training rows: of {stats['queries_seen']} queries, {stats['no_positive']} have no positive and "
            f"{stats['no_negative']} no negative left after the score margin {config.negative_margin}; "
            f"try a larger --mining-depth or --ce-score-margin none"
        )
    path = work_dir / ROWS_FILE
    write_text_rows(id_rows, queries, passage_text, path, seed=config.seed)
    write_json(work_dir / ROWS_INFO, {"settings": rows_settings(config), "rows": len(id_rows), "stats": stats})
    print(f"training rows: {len(id_rows):,} ({config.epochs} pass(es) over {stats['queries_used']:,} queries, "
          f"{stats['negatives'] / max(stats['queries_used'], 1):.1f} negatives per query; {stats['no_negative']} "
          f"queries without a negative left) in {time.perf_counter() - started:.1f} s -> {path}")
    return path


def prepare_hard_negative_rows(
    config: TrainingConfig,
    work_dir: str | Path,
    records: Iterable[QueryCandidates],
    load_scores: Callable[[], Mapping[str, Mapping[str, float]]],
    queries: Mapping[str, str],
    passage_text: Callable[[str], str],
) -> Path:
    """Rows from a published hard-negatives stream (MS MARCO) and its teacher score file."""
    work_dir = Path(work_dir)
    cached = cached_rows(work_dir, config)
    if cached:
        return cached
    started = time.perf_counter()
    scores = load_scores() if needs_scores(config) else None
    return finish_rows(config, work_dir, records, scores, queries, passage_text, started)


def positives_from_qrels(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, list[str]]:
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
    """Rows for a dataset folder: positives from its qrels, negatives from `mine`, scores from the teacher."""
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
    scores = _teacher_scores(config, work_dir, records, dict(selected), corpus, make_teacher) if needs_scores(config) else None
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
        print(f"scoring {len(pairs):,} (query, passage) pairs with the teacher {config.teacher}")
        values = teacher.score(queries, corpus, pairs)
        for (qid, pid), value in zip(pairs, values):
            scores.setdefault(qid, {})[pid] = float(value)
        write_json(path, {"teacher": config.teacher, "scores": scores})
    return scores
