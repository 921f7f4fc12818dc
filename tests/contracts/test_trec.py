"""TREC qrels/run reading and writing: strict errors with file and line, exact round trips."""
import gzip

import pytest

from contracts.trec import EvaluationWarning, ranked_lists, read_qrels, read_run, write_run


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_run_orders_each_query_by_the_rank_column(tmp_path):
    path = write(tmp_path, "run.trec", "q1 Q0 b 2 5.0 t\nq1 Q0 a 1 5.0 t\n\nq2 Q0 c 1 -1.5 t\n")
    run = read_run(path)
    assert list(run["q1"]) == ["a", "b"]
    assert run == {"q1": {"a": 5.0, "b": 5.0}, "q2": {"c": -1.5}}


@pytest.mark.parametrize(
    "text, line, expected",
    [
        ("q1 Q0 a 1 1.0 t\nq1 Q0 b 2 1.0\n", 2, "expected 6 columns"),
        ("q1 Q0 a 1 1.0 t\nq1 Q0 b 2 high t\n", 2, "score 'high' is not a number"),
        ("q1 Q0 a 1 1.0 t\nq1 Q0 b x 1.0 t\n", 2, "rank 'x' is not an integer"),
        ("q1 Q0 a 1 nan t\n", 1, "not a finite number"),
        ("q1 Q0 a 1 2.0 t\nq1 Q0 b 2 1.0 t\nq1 Q0 a 3 0.5 t\n", 3, "appears twice for query 'q1' (first on line 1)"),
    ],
)
def test_bad_run_lines_name_file_and_line(tmp_path, text, line, expected):
    assert_error_names_line(read_run, write(tmp_path, "bad.trec", text), line, expected)


def assert_error_names_line(read, path, line, expected):
    with pytest.raises(ValueError) as err:
        read(path)
    assert f"{path}, line {line}:" in str(err.value)
    assert expected in str(err.value)


def test_empty_run_and_qrels_are_errors(tmp_path):
    with pytest.raises(ValueError, match="empty run file"):
        read_run(write(tmp_path, "empty.trec", "\n\n"))
    with pytest.raises(ValueError, match="empty qrels file"):
        read_qrels(write(tmp_path, "empty.qrels", ""))
    with pytest.raises(FileNotFoundError, match="no run file"):
        read_run(tmp_path / "absent.trec")


@pytest.mark.parametrize(
    "text, line, expected",
    [
        ("q1 0 a 1\nq1 0 b\n", 2, "expected 4 columns"),
        ("q1 0 a 1\nq1 0 b yes\n", 2, "relevance 'yes' is not an integer"),
        ("q1 0 a 1\nq1 0 a 2\n", 2, "judged 2 here and 1 on line 1"),
    ],
)
def test_bad_qrels_lines_name_file_and_line(tmp_path, text, line, expected):
    assert_error_names_line(read_qrels, write(tmp_path, "bad.qrels", text), line, expected)


def test_repeated_identical_judgment_is_kept_once_with_a_warning(tmp_path):
    path = write(tmp_path, "qrels.txt", "q1 0 a 1\nq1 0 a 1\nq2 0 b 0\n")
    with pytest.warns(EvaluationWarning, match="1 judgments appear twice"):
        assert read_qrels(path) == {"q1": {"a": 1}, "q2": {"b": 0}}


@pytest.mark.parametrize("name", ["run.trec", "run.trec.gz"])
def test_write_run_round_trips_scores_exactly(tmp_path, name):
    # Differences far below 1e-6: `%.6f` would merge these, and fusion would then rank them differently.
    results = {"q1": [("d1", 0.1 + 0.2), ("d2", 0.3), ("d3", 1e-17)], "q2": [("d9", -2.5e-9)]}
    path = tmp_path / name
    write_run(path, results, tag="test")
    run = read_run(path)
    assert {q: list(d.items()) for q, d in run.items()} == results
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as f:
        assert f.readline().split()[:4] == ["q1", "Q0", "d1", "1"]
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_write_run_rejects_duplicates_and_bad_ids(tmp_path):
    with pytest.raises(ValueError, match="listed twice"):
        write_run(tmp_path / "r.trec", {"q": [("a", 1.0), ("a", 0.5)]})
    with pytest.raises(ValueError, match="whitespace"):
        write_run(tmp_path / "r.trec", {"q": [("a b", 1.0)]})
    assert not (tmp_path / "r.trec").exists()


def test_ranked_lists_breaks_ties_by_document_id_descending_like_trec_eval():
    assert ranked_lists({"q": {"a": 1.0, "c": 1.0, "b": 2.0}}) == {"q": [("b", 2.0), ("c", 1.0), ("a", 1.0)]}
