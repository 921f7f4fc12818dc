"""Every table through one writer; the results table's BEIR column as DESIGN.md defines it, on synthetic records."""
import pytest

from evaluation.tables import (
    BEIR_13,
    beir_mean,
    beir_name,
    benchmark_table,
    collect_rows,
    comparison_table,
    format_table,
    markdown_table,
    to_csv,
    to_markdown,
)


def metrics(name, dataset, ndcg, benchmark=None):
    rec = {"kind": "metrics", "name": name, "dataset": dataset, "metrics": {"NDCG@10": ndcg}, "path": f"{dataset}.json"}
    if benchmark:
        rec["benchmark"] = benchmark
    return rec


def test_markdown_table_aligns_escapes_and_checks_lengths():
    table = markdown_table(["system", "ms"], [["a|b", "1.00"]])
    assert table == "| system | ms |\n|---|---:|\n| a\\|b | 1.00 |\n"
    with pytest.raises(ValueError, match="has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [["x"]])


def test_format_table_lists_every_figure():
    table = format_table({"bm25": {"NDCG@10": 0.50581, "R@1k": 0.75}, "splade": {"NDCG@10": 0.7308}})
    assert "| bm25 | 0.5058 | 0.7500 |" in table
    assert "| splade | 0.7308 | – |" in table


def test_comparison_table_letters_the_beaten_runs():
    result = {"NDCG@10": {"bm25": {"mean": 0.5, "better_than": []}, "splade": {"mean": 0.73, "better_than": ["bm25"]}}}
    assert comparison_table(result).splitlines()[2:] == ["| a | bm25 | 0.5000 |", "| b | splade | 0.7300a |"]


def test_benchmark_table_has_bench_layout():
    summaries = [
        {"system": "ours", "name": "ours", "ok": True, "size_mib": 563.2, "build_s": 18.34, "build_peak_mib": 2964.0,
         "runs": [{"name": "ours", "set": "light", "k": 10, "median_ms": 2.144, "p99_ms": 7.1, "cpu_median_ms": 2.0,
                   "queries_timed": 50, "qps_all_cores": 1050.4, "top10_overlap": 1.0, "same_scores": True},
                  {"name": "ours", "set": "heavy", "k": 10, "median_ms": 2.39, "p99_ms": 6.9, "queries_timed": 200,
                   "qps_all_cores": 900.0}]},
        {"system": "pisa", "ok": False, "error": "no wheel | for this"},
    ]
    lines = benchmark_table(summaries, "synthetic").splitlines()
    assert lines[:2] == ["### synthetic", ""]
    assert lines[2].startswith("| system | set | k | median ms |") and lines[3] == "|---" * 12 + "|"
    assert lines[4] == "| ours | light | 10 | 2.14 | 7.10 | 2.00 (50 q) | 1,050 | 1.000 | yes | 563 | 18.3 | 2,964 |"
    assert lines[5] == "| ours | heavy | 10 | 2.39 | 6.90 | nan | 900 | nan | ? |  |  |  |"
    assert lines[6] == "| pisa |  |  | failed: no wheel \\| for this |  |  |  |  |  |  |  |  |"


@pytest.mark.parametrize("dataset, name", [
    ("beir/fiqa/test", "fiqa"), ("beir/webis-touche2020/v2", "webis-touche2020"), ("../data/beir-scifact", "scifact"),
    ("beir/cqadupstack/android", "cqadupstack/android"), ("beir-cqadupstack-tex", "cqadupstack/tex"),
    ("beir/dbpedia-entity/test", "dbpedia-entity"),
])
def test_beir_names(dataset, name):
    assert beir_name(dataset) == name


def test_beir_column_is_the_mean_over_the_13_and_shows_how_many():
    five = dict(zip(BEIR_13[:5], [0.1, 0.2, 0.3, 0.4, 0.5]))
    forums = {f"cqadupstack/{f}": v for f, v in zip(["android", "tex", "unix"], [0.2, 0.4, 0.9])}
    records = [metrics("m", f"beir/{d}", v) for d, v in five.items()]
    records += [metrics("m", f"beir/{d}", v) for d, v in forums.items()]
    records += [metrics("m", "beir/msmarco", 0.99), metrics("m", "msmarco-passage/trec-dl-2019/judged", 0.7)]
    row = collect_rows(records)["m"]
    assert row.figures["BEIR NDCG@10"] == pytest.approx(0.3)  # CQADupStack, msmarco and DL19 stay out of it
    assert row.figures["TREC-2019 NDCG@10"] == 0.7
    beir = row.beir_mean()
    assert beir.cell() == "0.3000 (5/13)"
    assert beir.cqadupstack == pytest.approx(0.5) and beir.cqadupstack_forums == 3  # forums averaged first
    assert beir.others == ["msmarco"]
    markdown = to_markdown({"m": row})
    assert "| 0.3000 (5/13) |" in markdown.splitlines()[2]
    assert "CQADupStack 0.5000 (mean of 3 forums, not in the 13)" in markdown
    assert "also evaluated, not in the 13: msmarco" in markdown
    header, line = to_csv({"m": row}).splitlines()
    values = dict(zip(header.split(","), line.split(",")))
    assert values["BEIR datasets"] == "5" and float(values["CQADupStack NDCG@10"]) == pytest.approx(0.5)


def test_all_13_show_no_count_and_none_shows_a_dash():
    full = beir_mean({d: 0.5 for d in BEIR_13})
    assert full.cell() == "0.5000" and len(full.datasets) == 13
    assert beir_mean({"cqadupstack/tex": 0.3}).cell() == "–"
    rows = collect_rows([metrics("m", "beir/cqadupstack/tex", 0.3)])
    assert "BEIR NDCG@10" not in rows["m"].figures


def test_a_beir_dataset_given_twice_for_a_row_is_an_error():
    with pytest.raises(ValueError, match="scifact of 'm' given twice"):
        collect_rows([metrics("m", "beir/scifact", 0.6), metrics("m", "../data/beir-scifact", 0.7)])
