"""Where the outputs of a (model, dataset) pair live by default, so that make targets find each other's files."""
from __future__ import annotations

from pathlib import Path

from pipelines.datasets import slugify


def work_dir(model: str, dataset: str, root: str | Path = "outputs") -> Path:
    """outputs/<model>/<dataset>/: encoded/, index/, index-lucene/, run.trec, metrics.json."""
    return Path(root) / slugify(model) / slugify(dataset)


def encoded_dir(model: str, dataset: str, root: str | Path = "outputs") -> Path:
    return work_dir(model, dataset, root) / "encoded"


def index_dir(model: str, dataset: str, root: str | Path = "outputs", backend: str = "numba") -> Path:
    return work_dir(model, dataset, root) / ("index" if backend == "numba" else f"index-{backend}")


def run_path(model: str, dataset: str, root: str | Path = "outputs", backend: str = "numba") -> Path:
    return work_dir(model, dataset, root) / ("run.trec" if backend == "numba" else f"run-{backend}.trec")
