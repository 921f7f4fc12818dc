"""`splade evaluate | fuse | compare | table` end to end on the TREC DL reference runs."""
import json
import os
import shutil
from pathlib import Path

import pytest

from pipelines.cli import main

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DL19 = DATA / "trec-dl-2019"
pytestmark = pytest.mark.skipif(not (DL19 / "reference-runs").exists(), reason=f"no {DATA}")


def ref(name):
    return str(DL19 / "reference-runs" / f"{name}.dl19.trec.gz")


def test_evaluate_fuse_and_table(tmp_path, capsys):
    out = tmp_path / "eval"
    for name, label in [("BM25", "bm25"), ("SPLADE_P_P_ENSEMBLE_DISTIL", "splade")]:
        # --dataset as a local folder: the convention (trec-dl) is read from its name.
        assert main(["evaluate", "--run", ref(name), "--dataset", str(DL19), "--name", label,
                     "--output", str(out / label / "dl19.metrics.json")]) == 0
    splade = json.loads((out / "splade" / "dl19.metrics.json").read_text())
    assert splade["convention"] == "trec-dl" and splade["benchmark"] == "trec-dl-2019"
    assert round(splade["metrics"]["NDCG@10"], 4) == 0.7308
    assert len(splade["per_query"]["NDCG@10"]) == 43

    fused = out / "ens" / "dl19.trec"
    assert main(["fuse", "--run", ref("SPLADE_P_P_ENSEMBLE_DISTIL"), ref("BM25"), "--output", str(fused),
                 "--qrels", str(DL19 / "qrels.txt"), "--convention", "trec-dl", "--name", "ensemble S+B"]) == 0
    ens = json.loads((out / "ens" / "dl19.metrics.json").read_text())
    assert ens["name"] == "ensemble S+B" and ens["method"] == "normalized" and fused.exists()
    (out / "splade" / "flops.json").write_text(json.dumps(
        {"kind": "flops", "name": "splade", "flops": 1.5, "mean_query_terms": 20.0, "mean_doc_terms": 100.0}))

    capsys.readouterr()
    assert main(["table", "--metrics", str(out), "--output", str(tmp_path / "results")]) == 0
    markdown = (tmp_path / "results.md").read_text()
    assert "| TREC-2019 NDCG@10 |" in markdown.splitlines()[0]
    splade_line = next(line for line in markdown.splitlines() if "| splade |" in line)
    assert "0.7308ᵃ" in splade_line  # row a (bm25) is beaten significantly
    assert splade_line.rstrip().endswith("| 1.500 |")
    assert markdown.splitlines()[-1] != "" and "ensemble S+B" in markdown
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,MSMARCO MRR@10,") and len(csv_lines) == 4
    assert (tmp_path / "results.png").stat().st_size > 1000


def test_bad_run_line_is_reported_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.trec"
    bad.write_text("19335 Q0 d1 1 3.0 t\n19335 Q0 d2 2 oops t\n")
    assert main(["evaluate", "--run", str(bad), "--qrels", str(DL19 / "qrels.txt")]) == 2
    assert f"{bad}, line 2: score 'oops' is not a number" in capsys.readouterr().err


def test_unknown_and_missing_queries_are_warned_and_counted(tmp_path, capsys, monkeypatch):
    run = tmp_path / "partial.trec"
    run.write_text("19335 Q0 1017759 1 3.0 t\nnot-a-query Q0 d 1 1.0 t\n")
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--run", str(run), "--qrels", str(DL19 / "qrels.txt"), "--convention", "trec-dl"]) == 0
    err = capsys.readouterr().err
    assert "42 of the 43 judged queries have no results" in err
    assert "1 of its 2 queries are not in the qrels" in err
    counts = json.loads((tmp_path / "outputs" / "eval" / "partial.metrics.json").read_text())["counts"]
    assert counts["queries_evaluated"] == 43 and counts["queries_missing_from_run_counted_0"] == 42


def test_metrics_go_under_outputs_never_beside_a_read_only_input_run(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    run = data / "BM25.dl19.trec.gz"
    shutil.copy(ref("BM25"), run)
    data.chmod(0o555)  # a read-only data folder, as ../shared/data may be
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        assert main(["evaluate", "--run", str(run), "--dataset", str(DL19)]) == 0
    finally:
        data.chmod(0o755)
    assert sorted(os.listdir(data)) == ["BM25.dl19.trec.gz"]
    record = json.loads((work / "outputs" / "eval" / "BM25.dl19.metrics.json").read_text())
    assert round(record["metrics"]["NDCG@10"], 4) == 0.5058
    assert "written to outputs/eval/BM25.dl19.metrics.json" in capsys.readouterr().out


def test_qrels_given_with_dataset_says_which_wins(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["evaluate", "--run", ref("BM25"), "--dataset", str(DL19), "--qrels", str(DL19 / "qrels.txt"),
                 "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"note: --qrels {DL19 / 'qrels.txt'} is used, not the qrels of --dataset {DL19}" in err
    assert json.loads(out.read_text())["convention"] == "trec-dl"  # the dataset's name still picks it


def test_beir_self_hits_and_foreign_document_ids_are_reported(tmp_path, capsys):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\nq2 0 q2 1\nq2 0 d2 1\n")
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 q1 1 9.0 t\nq1 Q0 d1 2 5.0 t\nq2 Q0 q2 1 3.0 t\nq2 Q0 d2 2 2.0 t\n")
    assert main(["evaluate", "--run", str(run), "--qrels", str(qrels), "--convention", "beir",
                 "--output", str(tmp_path / "m.json")]) == 0
    assert ("2 retrieved documents whose id equals their query's id were removed (BEIR's convention), 1 of them "
            "judged relevant") in capsys.readouterr().out
    foreign = tmp_path / "foreign.trec"
    foreign.write_text("q1 Q0 MED-1 1 9.0 t\nq2 Q0 MED-2 1 3.0 t\n")
    assert main(["evaluate", "--run", str(foreign), "--qrels", str(qrels), "--output", str(tmp_path / "f.json")]) == 0
    assert "none of the documents it retrieved for judged queries is judged in the qrels" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--weights", "nan", "1"], "is not a finite number"),
    (["--weights", "0", "0"], "every weight is 0"),
])
def test_fuse_refuses_bad_weights(tmp_path, capsys, flags, message):
    out = tmp_path / "fused.trec"
    assert main(["fuse", "--run", ref("BM25"), ref("SPLADE_P_P_ENSEMBLE_DISTIL"), "--output", str(out), *flags]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("depth", ["0", "-5"])
def test_fuse_refuses_a_depth_below_one_when_parsing(tmp_path, capsys, depth):
    with pytest.raises(SystemExit) as exit_:
        main(["fuse", "--run", ref("BM25"), ref("BM25_RM3"), "--output", str(tmp_path / "f.trec"), "--depth", depth])
    assert exit_.value.code == 2
    assert "argument --depth: expected a whole number of 1 or more" in capsys.readouterr().err


def test_fuse_warns_about_negative_weights_and_refuses_runs_without_a_shared_query(tmp_path, capsys):
    out = tmp_path / "fused.trec"
    assert main(["fuse", "--run", ref("BM25"), ref("SPLADE_P_P_ENSEMBLE_DISTIL"), "--output", str(out),
                 "--weights", "1", "-0.5"]) == 0
    assert "SPLADE_P_P_ENSEMBLE_DISTIL.dl19.trec.gz is negative" in capsys.readouterr().err
    dl20 = str(DATA / "trec-dl-2020" / "reference-runs" / "BM25.dl20.trec.gz")
    assert main(["fuse", "--run", ref("BM25"), dl20, "--output", str(tmp_path / "mixed.trec")]) == 2
    err = capsys.readouterr().err
    assert f"{ref('BM25')} shares no query with the other runs ({dl20}; e.g. its query " in err
    assert not (tmp_path / "mixed.trec").exists()
