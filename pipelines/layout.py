"""Where the demo keeps the outputs of a (model, dataset) pair by default."""
from __future__ import annotations

from pathlib import Path

from pipelines.datasets import slugify


def work_dir(model: str, dataset: str, root: str | Path = "outputs") -> Path:
    """outputs/<model>/<dataset>/: encoded/, index/, run.trec, metrics.json."""
    return Path(root) / slugify(model) / slugify(dataset)
