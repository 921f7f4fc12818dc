"""Every table and plot of the project: one Markdown writer under the metrics tables, the results table in the layout
of the reference table (Markdown, CSV and an effectiveness-vs-FLOPS plot), comparisons and benchmark reports.

The results table: rows are models and ensembles; columns MSMARCO MRR@10, R@1k; TREC-2019 NDCG@10, R@1k;
TREC-2020 NDCG@10, R@1k; BEIR NDCG@10; FLOPS. Significance marks are ranx's: a superscript letter names a row this
one beats.

The BEIR column is the mean NDCG@10 over the 13 BEIR datasets of the reference table (the SPLADE papers' BEIR
tables: the public BEIR sets but CQADupStack), from whichever of them were evaluated; fewer than 13 shows the count,
`0.5012 (5/13)`, because a mean over 5 datasets is not the reference table's figure. CQADupStack's forums, when
evaluated, are averaged first into one CQADupStack figure (Pyserini's convention) and reported next to the 13.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.atomic import atomic_path, write_text

logger = logging.getLogger(__name__)

# (column title, benchmark, figure)
COLUMNS = [
    ("MSMARCO MRR@10", "msmarco", "MRR@10"),
    ("MSMARCO R@1k", "msmarco", "R@1k"),
    ("TREC-2019 NDCG@10", "trec-dl-2019", "NDCG@10"),
    ("TREC-2019 R@1k", "trec-dl-2019", "R@1k"),
    ("TREC-2020 NDCG@10", "trec-dl-2020", "NDCG@10"),
    ("TREC-2020 R@1k", "trec-dl-2020", "R@1k"),
    ("BEIR NDCG@10", "beir", "NDCG@10"),
]
BEIR_COLUMN = "BEIR NDCG@10"
CONVENTION_OF_BENCHMARK = {"msmarco": "msmarco", "trec-dl-2019": "trec-dl", "trec-dl-2020": "trec-dl", "beir": "beir"}
# The reference table's BEIR datasets (BEIR's names, as in ir_datasets' beir/<name> and Pyserini's keys).
BEIR_13 = ("arguana", "climate-fever", "dbpedia-entity", "fever", "fiqa", "hotpotqa", "nfcorpus", "nq", "quora",
           "scidocs", "scifact", "trec-covid", "webis-touche2020")
CQADUPSTACK = "cqadupstack"
SUPERSCRIPTS = "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖ۹ʳˢᵗᵘᵛʷˣʸᶻ"  # ranx's letters
_BEIR_SPLITS = {"test", "dev", "train", "v2"}  # ir_datasets suffixes that name a split or version, not a dataset


# ------------------------------------------------------------------------------------------------ Markdown


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """The one Markdown table writer: cells as given (already formatted), `|` in a cell escaped.

    Args:
        header: column titles.
        rows: one sequence of cells per row, as long as the header.
        right: per column, right-aligned (numbers) or not; default: every column but the first.

    Returns:
        The table, one line per row, ending in a newline.

    Raises:
        ValueError: a row whose length differs from the header's.
    """
    right = [i > 0 for i in range(len(header))] if right is None else list(right)
    if len(right) != len(header):
        raise ValueError(f"{len(right)} alignments for {len(header)} columns")

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(header), "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"row {row[:1]} has {len(row)} cells for {len(header)} columns")
        lines.append(line(row))
    return "\n".join(lines) + "\n"


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_table(rows: Mapping[str, Mapping[str, float | None]], digits: int = 4, label: str = "run") -> str:
    """A metrics table: one row per run, one column per figure (in order of first appearance), `–` where absent.

    Args:
        rows: run name -> {figure: value}.
        digits: decimals shown.
        label: title of the first column.

    Returns:
        The Markdown table.
    """
    columns: list[str] = []
    for figures in rows.values():
        columns += [c for c in figures if c not in columns]
    body = ([name, *(_cell(figures.get(c), digits) for c in columns)] for name, figures in rows.items())
    return markdown_table([label, *columns], body)


def comparison_table(result: Mapping[str, Mapping[str, Mapping]]) -> str:
    """The table of `evaluation.significance.compare_runs`: each run's means, letters of the runs it beats.

    Args:
        result: {figure: {run name: {"mean", "better_than", ...}}}.

    Returns:
        The Markdown table (rows lettered a, b, ...).
    """
    names = list(next(iter(result.values())))
    letters = {n: chr(ord("a") + i) for i, n in enumerate(names)}
    body = ([letters[n], n, *(f"{result[f][n]['mean']:.4f}{''.join(letters[o] for o in result[f][n]['better_than'])}"
                              for f in result)] for n in names)
    return markdown_table(["#", "run", *result], body, right=[False, False] + [True] * len(result))


def benchmark_table(summaries: Sequence[Mapping], title: str) -> str:
    """The speed table of `make bench` (benchmarks/bench.py's summaries): one line per system and query set.

    Args:
        summaries: per system {"name"/"system", "ok", "error"?, "size_mib", "build_s", "build_peak_mib",
            "runs": [{"name", "set", "k", "median_ms", "p99_ms", "cpu_median_ms"?, "queries_timed",
            "qps_all_cores", "top10_overlap"?, "same_scores"?}]}.
        title: the heading above the table.

    Returns:
        A `### title` heading, a blank line and the table (no trailing newline, as bench's report joins lines).
    """
    header = ["system", "set", "k", "median ms", "p99 ms", "CPU median ms", "q/s all cores", "top-10 overlap",
              "exact scores", "index MiB", "build s", "build peak MiB"]
    body = []
    for s in summaries:
        if not s.get("ok"):
            body.append([s.get("name", s["system"]), "", "", f"failed: {s.get('error', '?')}", *[""] * 8])
            continue
        for i, run in enumerate(s["runs"]):
            timed = "" if run["queries_timed"] >= 100 else f" ({run['queries_timed']} q)"
            same = run.get("same_scores")
            build = ([f"{s['size_mib']:,.0f}", f"{s['build_s']:.1f}", f"{s['build_peak_mib']:,.0f}"] if i == 0
                     else ["", "", ""])
            body.append([run["name"], run["set"], run["k"], f"{run['median_ms']:.2f}", f"{run['p99_ms']:.2f}",
                         f"{run.get('cpu_median_ms', float('nan')):.2f}{timed}", f"{run['qps_all_cores']:,.0f}",
                         f"{run.get('top10_overlap', float('nan')):.3f}",
                         "yes" if same else ("no" if same is not None else "?"), *build])
    return f"### {title}\n\n" + markdown_table(header, body, right=[False] * len(header)).rstrip("\n")


# ------------------------------------------------------------------------------------------------ results table


def benchmark_of(dataset: str) -> str:
    """Which results-table column a dataset feeds.

    Args:
        dataset: an ir_datasets id or a local folder name.

    Returns:
        "msmarco", "trec-dl-2019", "trec-dl-2020", "beir" or "other".
    """
    name = str(dataset).lower().rstrip("/")
    if re.search(r"(trec-dl-2019|dl19)", name):
        return "trec-dl-2019"
    if re.search(r"(trec-dl-2020|dl20)", name):
        return "trec-dl-2020"
    if "msmarco" in name and "dev" in name:
        return "msmarco"
    if name.startswith("beir/") or Path(name).name.startswith("beir"):
        return "beir"
    return "other"


def convention_of(dataset: str) -> str:
    """The metrics convention of a dataset name (see evaluation.metrics.CONVENTIONS); "default" when unknown."""
    return CONVENTION_OF_BENCHMARK.get(benchmark_of(dataset), "default")


def beir_name(dataset: str) -> str:
    """BEIR's own name of a BEIR dataset: `beir/fiqa/test`, `../data/beir-fiqa` -> `fiqa`;
    `beir/cqadupstack/android` -> `cqadupstack/android`; `beir/webis-touche2020/v2` -> `webis-touche2020`."""
    name = str(dataset).lower().rstrip("/")
    if not name.startswith("beir/"):
        name = Path(name).name
    name = re.sub(r"^beir[/_-]", "", name)
    parts = [p for p in re.split(r"[/]", name) if p and p not in _BEIR_SPLITS]
    if parts and parts[0].startswith(CQADUPSTACK + "-") and len(parts) == 1:  # Pyserini's cqadupstack-android
        parts = [CQADUPSTACK, parts[0][len(CQADUPSTACK) + 1:]]
    return "/".join(parts)


@dataclass
class BeirMean:
    """The BEIR column of one row: the mean, what went into it, and CQADupStack beside it."""

    mean: float | None
    datasets: list[str]  # of BEIR_13, present
    cqadupstack: float | None = None  # mean over its forums
    cqadupstack_forums: int = 0
    others: list[str] = field(default_factory=list)  # BEIR-named datasets outside the 13

    def cell(self, digits: int = 4) -> str:
        """`0.5012`, or `0.5012 (5/13)` when datasets are missing."""
        if self.mean is None:
            return "–"
        count = "" if len(self.datasets) == len(BEIR_13) else f" ({len(self.datasets)}/{len(BEIR_13)})"
        return f"{self.mean:.{digits}f}{count}"


def beir_mean(ndcg_by_dataset: Mapping[str, float]) -> BeirMean:
    """The BEIR column from per-dataset NDCG@10 (names as `beir_name` gives them).

    Args:
        ndcg_by_dataset: BEIR dataset name -> NDCG@10; CQADupStack as `cqadupstack/<forum>` or `cqadupstack`.

    Returns:
        A BeirMean: the mean over the datasets of BEIR_13 present (None when none is), CQADupStack's forums
        averaged first into one figure, and the names outside BEIR_13.
    """
    counted = sorted(d for d in ndcg_by_dataset if d in BEIR_13)
    forums = [v for d, v in ndcg_by_dataset.items() if d == CQADUPSTACK or d.startswith(CQADUPSTACK + "/")]
    others = sorted(d for d in ndcg_by_dataset if d not in BEIR_13 and not d.startswith(CQADUPSTACK))
    return BeirMean(
        mean=sum(ndcg_by_dataset[d] for d in counted) / len(counted) if counted else None,
        datasets=counted,
        cqadupstack=sum(forums) / len(forums) if forums else None,
        cqadupstack_forums=len(forums),
        others=others,
    )


@dataclass
class Row:
    """One row of the results table."""

    name: str
    figures: dict[str, float] = field(default_factory=dict)  # column title -> value
    beir: dict[str, float] = field(default_factory=dict)  # BEIR dataset (beir_name) -> NDCG@10
    marks: dict[str, str] = field(default_factory=dict)  # column title -> superscript letters
    flops: dict | None = None

    def beir_mean(self) -> BeirMean:
        """This row's BEIR column (see beir_mean)."""
        return beir_mean(self.beir)


def collect_rows(records: Iterable[Mapping]) -> dict[str, Row]:
    """Rows of the results table from metrics.json / flops.json records.

    Args:
        records: dicts as `splade evaluate` (kind "metrics": name, dataset, benchmark?, metrics) and `splade flops`
            (kind "flops") write them; "path" names the file in messages.

    Returns:
        name -> Row, models first, ensembles last.

    Raises:
        ValueError: one figure given twice for one row and column (never a silent pick).
    """
    rows: dict[str, Row] = {}
    sources: dict[tuple[str, str], str] = {}
    for rec in records:
        row = rows.setdefault(rec["name"], Row(rec["name"]))
        source = str(rec.get("path", "?"))
        if rec.get("kind") == "flops":
            if row.flops is not None:
                raise ValueError(f"{source}: FLOPS of {row.name!r} given twice (also in {sources[row.name, 'FLOPS']})")
            row.flops, sources[row.name, "FLOPS"] = dict(rec), source
            continue
        benchmark = rec.get("benchmark") or benchmark_of(rec["dataset"])
        if benchmark == "beir":
            dataset = beir_name(rec["dataset"])
            key = (row.name, f"beir:{dataset}")
            if key in sources:
                raise ValueError(f"{source}: {dataset} of {row.name!r} given twice (also in {sources[key]})")
            sources[key] = source
            row.beir[dataset] = float(rec["metrics"]["NDCG@10"])
            continue
        for title, column_benchmark, figure in COLUMNS:
            if column_benchmark == benchmark and figure in rec["metrics"]:
                if (row.name, title) in sources:
                    raise ValueError(f"{source}: {title} of {row.name!r} given twice "
                                     f"(also in {sources[row.name, title]})")
                sources[row.name, title] = source
                row.figures[title] = float(rec["metrics"][figure])
    for row in rows.values():
        mean = row.beir_mean().mean
        if mean is not None:
            row.figures[BEIR_COLUMN] = mean
    return dict(sorted(rows.items(), key=lambda kv: kv[0].lower().startswith("ensemble")))


def mark_significance(rows: Mapping[str, Row], significance: Mapping[str, Mapping[str, Mapping[str, dict]]]) -> None:
    """Put ranx's superscript letters of the beaten rows into each row's marks.

    Args:
        rows: the table's rows (their order gives the letters a, b, ...).
        significance: {column title: {run name: {"better_than": [names]}}}.
    """
    letters = {name: SUPERSCRIPTS[i % len(SUPERSCRIPTS)] for i, name in enumerate(rows)}
    for title, by_run in significance.items():
        for name, result in by_run.items():
            if name in rows:
                rows[name].marks[title] = "".join(letters[o] for o in rows if o in result["better_than"])


def _beir_notes(rows: Mapping[str, Row]) -> list[str]:
    notes = []
    for name, row in rows.items():
        if not row.beir:
            continue
        beir = row.beir_mean()
        parts = [f"{name}: " + (", ".join(beir.datasets) if beir.datasets else "none of the 13")]
        if beir.cqadupstack is not None:
            parts.append(f"CQADupStack {beir.cqadupstack:.4f} (mean of {beir.cqadupstack_forums} forums, "
                         "not in the 13)")
        if beir.others:
            parts.append(f"also evaluated, not in the 13: {', '.join(beir.others)}")
        notes.append("; ".join(parts))
    if not notes:
        return []
    return [f"{BEIR_COLUMN} is the mean over the reference table's 13 BEIR datasets ({', '.join(BEIR_13)}) that "
            "were evaluated, `(n/13)` when fewer: " + " | ".join(notes)]


def to_markdown(rows: Mapping[str, Row], notes: Iterable[str] = ()) -> str:
    """The results table as Markdown, with the notes (datasets, BEIR sets, significance) below it.

    Args:
        rows: from collect_rows (lettered a, b, ... in this order).
        notes: lines to print under the table, before the BEIR and significance notes.

    Returns:
        The Markdown text.
    """
    titles = [t for t, _, _ in COLUMNS] + ["FLOPS"]
    body = []
    for i, row in enumerate(rows.values()):
        cells = [(row.beir_mean().cell() if t == BEIR_COLUMN else _cell(row.figures.get(t), 4)) + row.marks.get(t, "")
                 for t, _, _ in COLUMNS]
        cells.append(_cell(row.flops["flops"], 3) if row.flops else "–")
        body.append([chr(ord("a") + i) if i < 26 else i + 1, row.name, *cells])
    notes = list(notes) + _beir_notes(rows)
    if any(row.marks.get(t) for row in rows.values() for t, _, _ in COLUMNS):
        notes.append("A superscript letter marks a row this one beats significantly (paired test, ranx.compare).")
    table = markdown_table(["#", "Model", *titles], body, right=[False, False] + [True] * len(titles))
    return table + "".join(f"\n{n}\n" for n in notes)


def to_csv(rows: Mapping[str, Row]) -> str:
    """The results table as CSV, with the FLOPS details, the BEIR count, CQADupStack and every BEIR dataset.

    Args:
        rows: from collect_rows.

    Returns:
        The CSV text (floats written with repr, so they read back exactly).
    """
    beir_sets = sorted({d for row in rows.values() for d in row.beir})
    header = ["model", *(t for t, _, _ in COLUMNS), "BEIR datasets", "FLOPS", "mean query terms", "mean doc terms",
              "CQADupStack NDCG@10", *(f"{d} NDCG@10" for d in beir_sets)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows.values():
        fl = row.flops or {}
        beir = row.beir_mean()
        writer.writerow([
            row.name,
            *(_csv_value(row.figures.get(t)) for t, _, _ in COLUMNS),
            len(beir.datasets) if row.beir else "",
            *(_csv_value(fl.get(k)) for k in ("flops", "mean_query_terms", "mean_doc_terms")),
            _csv_value(beir.cqadupstack),
            *(_csv_value(row.beir.get(d)) for d in beir_sets),
        ])
    return out.getvalue()


def _csv_value(value) -> str:
    return "" if value is None else repr(float(value))


def plot_effectiveness_vs_flops(rows: Mapping[str, Row], path: str | Path, column: str | None = None) -> str | None:
    """Effectiveness against FLOPS, one labelled point per row that has both.

    Args:
        rows: the table's rows.
        path: the image to write (its suffix picks the format; png by default).
        column: the effectiveness column; default: the first column some row with FLOPS has.

    Returns:
        The column plotted, or None when no row has both (nothing is written then).
    """
    with_flops = [r for r in rows.values() if r.flops]
    candidates = [column] if column else [t for t, _, _ in COLUMNS]
    chosen = next((t for t in candidates if any(t in r.figures for r in with_flops)), None)
    if chosen is None:
        return None
    import matplotlib  # deferred: matplotlib is heavy and only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r.flops["flops"], r.figures[chosen], r.name) for r in with_flops if chosen in r.figures]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    for x, y, label in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if all(p[0] > 0 for p in points):
        ax.set_xscale("log")
    ax.set_xlabel("FLOPS (expected term matches per query-document pair)")
    ax.set_ylabel(chosen)
    ax.set_title(f"{chosen} against FLOPS")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)
    return chosen


def write_table(rows: Mapping[str, Row], output: str | Path, notes: Iterable[str] = ()) -> dict[str, str]:
    """Write the results table: <output>.md, <output>.csv and <output>.png (when a row has FLOPS and a figure).

    Args:
        rows: from collect_rows.
        output: the path without suffix (a .md/.csv/.png suffix is dropped).
        notes: lines printed under the Markdown table.

    Returns:
        {"markdown": path, "csv": path, "plot"?: path}.
    """
    base = Path(output)
    base = base.with_suffix("") if base.suffix in (".md", ".csv", ".png") else base
    written = {"markdown": str(base.with_suffix(".md")), "csv": str(base.with_suffix(".csv"))}
    write_text(written["markdown"], to_markdown(rows, notes))
    write_text(written["csv"], to_csv(rows))
    if plot_effectiveness_vs_flops(rows, base.with_suffix(".png")):
        written["plot"] = str(base.with_suffix(".png"))
    logger.debug("results table written: %s", ", ".join(written.values()))
    return written
