"""`splade evaluate | fuse | compare | table` end to end on the TREC DL reference runs."""
import json
from pathlib import Path

import pytest

from pipelines.cli import main

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
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


def test_unknown_and_missing_queries_are_warned_and_counted(tmp_path, capsys):
    run = tmp_path / "partial.trec"
    run.write_text("19335 Q0 1017759 1 3.0 t\nnot-a-query Q0 d 1 1.0 t\n")
    assert main(["evaluate", "--run", str(run), "--qrels", str(DL19 / "qrels.txt"), "--convention", "trec-dl"]) == 0
    err = capsys.readouterr().err
    assert "42 of the 43 judged queries have no results" in err
    assert "1 of its 2 queries are not in the qrels" in err
    counts = json.loads((tmp_path / "partial.metrics.json").read_text())["counts"]
    assert counts["queries_evaluated"] == 43 and counts["queries_missing_from_run_counted_0"] == 42
