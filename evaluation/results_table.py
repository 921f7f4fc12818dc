"""The results table in the layout of the reference table, from the metrics.json and flops.json files of the runs.

Rows are models and ensembles; columns MSMARCO MRR@10, R@1k; TREC-2019 NDCG@10, R@1k; TREC-2020 NDCG@10, R@1k;
BEIR NDCG@10 (the mean over the BEIR sets a row was evaluated on); FLOPS. Written as Markdown and CSV, with a plot
of effectiveness against FLOPS. Significance marks are ranx's: a superscript letter names a row this one beats.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from contracts.atomic import atomic_path, write_text

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
CONVENTION_OF_BENCHMARK = {"msmarco": "msmarco", "trec-dl-2019": "trec-dl", "trec-dl-2020": "trec-dl", "beir": "beir"}
SUPERSCRIPTS = "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖ۹ʳˢᵗᵘᵛʷˣʸᶻ"  # ranx's letters


def benchmark_of(dataset: str) -> str:
    """Which table column a dataset name (ir_datasets id or local folder) feeds: msmarco, trec-dl-20xx, beir or other."""
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
    return CONVENTION_OF_BENCHMARK.get(benchmark_of(dataset), "default")


@dataclass
class Row:
    name: str
    figures: dict[str, float] = field(default_factory=dict)  # column title -> value
    beir: dict[str, float] = field(default_factory=dict)  # BEIR dataset -> NDCG@10
    marks: dict[str, str] = field(default_factory=dict)  # column title -> superscript letters
    flops: dict | None = None


def collect_rows(records: Iterable[Mapping]) -> dict[str, Row]:
    """Rows from metrics/flops records; a figure given twice for one row and column is an error, never a silent pick."""
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
            key = (row.name, f"beir:{rec['dataset']}")
            if key in sources:
                raise ValueError(f"{source}: {rec['dataset']} of {row.name!r} given twice (also in {sources[key]})")
            sources[key] = source
            row.beir[rec["dataset"]] = float(rec["metrics"]["NDCG@10"])
            continue
        for title, column_benchmark, figure in COLUMNS:
            if column_benchmark == benchmark and figure in rec["metrics"]:
                if (row.name, title) in sources:
                    raise ValueError(f"{source}: {title} of {row.name!r} given twice (also in {sources[row.name, title]})")
                sources[row.name, title] = source
                row.figures[title] = float(rec["metrics"][figure])
    for row in rows.values():
        if row.beir:
            row.figures["BEIR NDCG@10"] = sum(row.beir.values()) / len(row.beir)
    return dict(sorted(rows.items(), key=lambda kv: kv[0].lower().startswith("ensemble")))


def mark_significance(rows: Mapping[str, Row], significance: Mapping[str, Mapping[str, Mapping[str, dict]]]) -> None:
    """significance: {column title: {run name: {"better_than": [...]}}} -> superscript letters of the beaten rows."""
    letters = {name: SUPERSCRIPTS[i % len(SUPERSCRIPTS)] for i, name in enumerate(rows)}
    for title, by_run in significance.items():
        for name, result in by_run.items():
            if name in rows:
                rows[name].marks[title] = "".join(letters[o] for o in rows if o in result["better_than"])


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def to_markdown(rows: Mapping[str, Row], notes: Iterable[str] = ()) -> str:
    titles = [t for t, _, _ in COLUMNS] + ["FLOPS"]
    lines = ["| # | Model | " + " | ".join(titles) + " |", "|---|---|" + "---:|" * len(titles)]
    for i, row in enumerate(rows.values()):
        cells = [_cell(row.figures.get(t), 4) + row.marks.get(t, "") for t, _, _ in COLUMNS]
        cells.append(_cell(row.flops["flops"], 3) if row.flops else "–")
        lines.append(f"| {chr(ord('a') + i) if i < 26 else i + 1} | {row.name} | " + " | ".join(cells) + " |")
    beir_sets = {name: sorted(row.beir) for name, row in rows.items() if row.beir}
    notes = list(notes)
    if beir_sets:
        notes.append("BEIR NDCG@10 is the mean over: " + "; ".join(f"{n}: {', '.join(s)}" for n, s in beir_sets.items()))
    if any(row.marks.get(t) for row in rows.values() for t, _, _ in COLUMNS):
        notes.append("A superscript letter marks a row this one beats significantly (paired test, ranx.compare).")
    return "\n".join(lines) + "\n" + "".join(f"\n{n}\n" for n in notes)


def to_csv(rows: Mapping[str, Row]) -> str:
    beir_sets = sorted({d for row in rows.values() for d in row.beir})
    header = ["model", *(t for t, _, _ in COLUMNS), "FLOPS", "mean query terms", "mean doc terms",
              *(f"{d} NDCG@10" for d in beir_sets)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows.values():
        fl = row.flops or {}
        writer.writerow([
            row.name,
            *(_csv_value(row.figures.get(t)) for t, _, _ in COLUMNS),
            *(_csv_value(fl.get(k)) for k in ("flops", "mean_query_terms", "mean_doc_terms")),
            *(_csv_value(row.beir.get(d)) for d in beir_sets),
        ])
    return out.getvalue()


def _csv_value(value) -> str:
    return "" if value is None else repr(float(value))


def plot_effectiveness_vs_flops(rows: Mapping[str, Row], path: str | Path, column: str | None = None) -> str | None:
    """Effectiveness (first filled column unless given) against FLOPS, one labelled point per row with both figures.

    Returns the column plotted, or None when no row has both (nothing is written then).
    """
    with_flops = [r for r in rows.values() if r.flops]
    candidates = [column] if column else [t for t, _, _ in COLUMNS]
    chosen = next((t for t in candidates if any(t in r.figures for r in with_flops)), None)
    if chosen is None:
        return None
    import matplotlib

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
    """Write <output>.md, <output>.csv and <output>.png (the plot, when a row has FLOPS and a figure)."""
    base = Path(output)
    base = base.with_suffix("") if base.suffix in (".md", ".csv", ".png") else base
    written = {"markdown": str(base.with_suffix(".md")), "csv": str(base.with_suffix(".csv"))}
    write_text(written["markdown"], to_markdown(rows, notes))
    write_text(written["csv"], to_csv(rows))
    if plot_effectiveness_vs_flops(rows, base.with_suffix(".png")):
        written["plot"] = str(base.with_suffix(".png"))
    return written
