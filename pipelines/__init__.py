"""Pipelines: the stages wired into workflows, the names of models and datasets, and the `splade` command line.

- `pipelines.workflows`: evaluate a model on a dataset (encode, index, retrieve, score) and mine negatives, once.
- `pipelines.backends`: index back-end names to their build and load functions.
- `pipelines.models` / `pipelines.datasets`: a name (`splade-tiny`, `beir/scifact`, ...) to a local folder.
- `pipelines.layout`: the one rule for output paths (the Makefile asks it).
- `pipelines.training_data`: the training rows of a dataset folder or of the MS MARCO files.
- `pipelines.cli` and `pipelines.commands`: `splade CMD`, one module per command.

The names below load lazily (PEP 562), so that `python -m pipelines CMD` imports only what CMD needs.
"""
from __future__ import annotations

import importlib

_HOMES = {
    "evaluate_model": "pipelines.workflows",
    "encode_dataset": "pipelines.workflows",
    "mine_with_splade": "pipelines.workflows",
    "mine_with_bm25": "pipelines.workflows",
    "get_backend": "pipelines.backends",
    "resolve_model": "pipelines.models",
    "resolve_dataset": "pipelines.datasets",
    "output_paths": "pipelines.layout",
    "main": "pipelines.cli",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    """Import the module that holds `name` on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
