"""Training examples: negative selection, the rows of both recipes, the MS MARCO file readers (on local files),
presets and command-line overrides. No model is trained here (see test_training.py)."""
from __future__ import annotations

import gzip
import json
import logging
import pickle

import pytest

from pipelines.cli import build_parser, main
from pipelines.commands.train import resolve_config
from pipelines.presets import load_preset, preset_names
from pipelines.training_data import MsMarcoFiles, rows_builder
from training.config import TrainingConfig
from training.examples import QueryCandidates, build_id_rows, select_negatives
from training.msmarco_files import TsvTexts, read_hard_negatives, read_teacher_scores


def test_negatives_capped_per_system_without_positives_or_repeats():
    c = QueryCandidates("q", ["p"], {"bm25": ["p", "a", "b", "c"], "dense": ["a", "d", "e"]})
    assert select_negatives(c, None, per_system=2, margin=None) == ["a", "b", "d", "e"]
    assert select_negatives(c, None, per_system=2, margin=None, systems=["dense"]) == ["a", "d"]


def test_margin_drops_likely_false_negatives():
    c = QueryCandidates("q", ["p1", "p2"], {"bm25": ["a", "b", "c", "d"]})
    scores = {"p1": 9.0, "p2": 7.0, "a": 6.5, "b": 4.0, "c": 3.9, "d": -2.0}
    # lowest positive 7.0, margin 3.0: negatives must score <= 4.0
    assert select_negatives(c, scores, per_system=5, margin=3.0) == ["b", "c", "d"]
    assert select_negatives(c, scores, per_system=5, margin=None) == ["a", "b", "c", "d"]
    with pytest.raises(KeyError, match="positive"):
        select_negatives(QueryCandidates("q", ["zz"], {"s": ["a"]}), scores, margin=3.0)


def test_rows_rotate_over_passes_and_distil_labels_are_teacher_margins():
    records = [QueryCandidates("q1", ["p1", "p2"], {"s": ["n1", "n2", "n3"]}),
               QueryCandidates("q2", [], {"s": ["n1"]}),
               QueryCandidates("q3", ["p3"], {"s": ["p3"]})]
    scores = {"q1": {"p1": 10.0, "p2": 8.0, "n1": 1.0, "n2": 2.0, "n3": 3.0}, "q3": {"p3": 5.0}}
    rows, stats = build_id_rows(records, scores, "max", passes=3, margin=None)
    assert [(r.positive, r.negative) for r in rows] == [("p1", "n1"), ("p2", "n2"), ("p1", "n3")]
    assert stats["no_positive"] == 1 and stats["no_negative"] == 1 and stats["queries_used"] == 1
    rows, _ = build_id_rows(records, scores, "distil", passes=2)
    assert [r.label for r in rows] == [9.0, 6.0]
    with pytest.raises(ValueError, match="teacher scores"):
        build_id_rows(records, None, "distil")


def _msmarco_files(tmp_path):
    negatives = [
        {"qid": 11, "pos": [0], "neg": {"bm25": [1, 2, 3], "ce": [2, 4]}},
        {"qid": 12, "pos": [4], "neg": {"bm25": [0, 1]}},
        {"qid": 13, "pos": [], "neg": {"bm25": [0]}},
    ]
    with gzip.open(tmp_path / "hard.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(n) + "\n" for n in negatives)
    scores = {11: {0: 8.0, 1: 7.5, 2: 1.0, 3: 0.5, 4: -1.0}, 12: {4: 6.0, 0: 0.0, 1: 5.0}, 13: {0: 1.0}}
    with gzip.open(tmp_path / "ce.pkl.gz", "wb") as f:
        pickle.dump(scores, f)
    (tmp_path / "collection.tsv").write_text("".join(f"{i}\tpassage number {i}\n" for i in range(5)))
    (tmp_path / "queries.tsv").write_text("11\tfirst query\n12\tsecond query\n13\tthird query\n")
    return MsMarcoFiles(str(tmp_path / "hard.jsonl.gz"), str(tmp_path / "ce.pkl.gz"),
                        str(tmp_path / "collection.tsv"), str(tmp_path / "queries.tsv"))


def test_msmarco_rows_from_local_files(tmp_path):
    files = _msmarco_files(tmp_path)
    assert [r.qid for r in read_hard_negatives(files.hard_negatives)] == ["11", "12", "13"]
    assert read_teacher_scores(files.teacher_scores)["11"]["1"] == 7.5
    assert TsvTexts(files.collection)("3") == "passage number 3"

    config = TrainingConfig(recipe="max", dataset="msmarco-passage/train", epochs=2)
    path = rows_builder(config, tmp_path / "work", files)()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    # q11: negative 1 (7.5 > 8.0 - 3.0) is a likely false negative; q12: negative 1 (5.0 > 3.0) too; q13 has no positive
    pairs = {(r["query"], r["negative"]) for r in rows}
    assert pairs == {("first query", "passage number 2"), ("first query", "passage number 3"),
                     ("second query", "passage number 0")}
    assert len(rows) == 4 and all(r["positive"] in ("passage number 0", "passage number 4") for r in rows)

    distil = config.replace(recipe="distil", epochs=1)
    rows = [json.loads(line) for line in rows_builder(distil, tmp_path / "work2", files)().read_text().splitlines()]
    labels = {(r["query"], r["negative"]): r["label"] for r in rows}
    assert labels == {("first query", "passage number 1"): 0.5, ("second query", "passage number 0"): 6.0}


def test_rows_are_reused_until_a_row_setting_changes(tmp_path, caplog):
    files = _msmarco_files(tmp_path)
    config = TrainingConfig(recipe="max", dataset="msmarco-passage/train")
    first = rows_builder(config, tmp_path / "work", files)()
    stamp = first.stat().st_mtime_ns
    phases = json.loads((tmp_path / "work" / "train-rows.json").read_text())["phases"]
    assert {"loading teacher scores", "reading negatives", "building rows", "writing rows"} <= set(phases)
    with caplog.at_level(logging.INFO, logger="training.data"):
        assert rows_builder(config.replace(learning_rate=1.0), tmp_path / "work", files)() == first
    assert first.stat().st_mtime_ns == stamp and "reusing" in caplog.text
    assert "passage number 1" not in first.read_text()  # q11's negative 1 is a likely false negative
    rows_builder(config.replace(ce_score_margin=None), tmp_path / "work", files)()
    assert "passage number 1" in first.read_text()  # rebuilt: without a margin it is q11's first negative


def test_folder_without_training_files_is_refused(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"id": "d", "text": "t"}\n')
    with pytest.raises(FileNotFoundError, match="train-queries.tsv"):
        rows_builder(TrainingConfig(dataset=str(tmp_path)), tmp_path / "work")


def test_presets_match_the_reference_table():
    expected = {"A": ("max", "Luyu/co-condenser-wiki", 0.0008, 0.0006),
                "B": ("max", "Luyu/co-condenser-marco", 0.0008, 0.0006),
                "C": ("distil", "distilbert-base-uncased", 0.01, 0.008),
                "D": ("distil", "distilbert-base-uncased", 0.001, 0.0008),
                "E": ("distil", "Luyu/co-condenser-wiki", 0.01, 0.008),
                "F": ("distil", "Luyu/co-condenser-marco", 0.01, 0.008)}
    for name, row in expected.items():
        c = load_preset(name)
        assert (c.recipe, c.model, c.lambda_q, c.lambda_d) == row
        assert c.batch_size == 64 and c.learning_rate == 2e-5 and c.warmup_steps == 1000
        assert c.effective_max_length == (300 if c.recipe == "max" else 256)
    assert len(preset_names()) == 13  # A-F and the seven other rows
    assert {(load_preset(n).recipe, load_preset(n).lambda_q) for n in preset_names()} >= {
        ("max", 0.008), ("max", 0.00008), ("distil", 0.1), ("distil", 1.0)}


def test_any_field_can_be_overridden_from_the_command_line(capsys):
    args = build_parser().parse_args(["train", "--preset", "F", "--lambda-q", "0.5", "--max-steps", "7",
                                      "--negative-systems", "bm25,ce", "--ce-score-margin", "none",
                                      "--model", "splade-tiny"])
    c = resolve_config(args)
    assert (c.recipe, c.lambda_q, c.lambda_d, c.max_steps, c.negative_systems, c.ce_score_margin, c.model) == \
        ("distil", 0.5, 0.008, 7, ["bm25", "ce"], None, "splade-tiny")
    assert main(["train", "--preset", "F", "--batch-size", "32", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["batch_size"] == 32 and printed["extra"]["preset"] == "F"
    assert main(["train", "--preset", "Z", "--print-config"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["train", "--recipe", "maxi", "--print-config"]) == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--no-such-field", "1"])
