"""Training: SPLADE-max and DistilSPLADE on sentence-transformers' SparseEncoder stack, with FLOPS over the
global batch.

- `training.config`: `TrainingConfig`, every setting with its help and default (the presets fill it).
- `training.examples` / `training.data`: negatives selected and filtered, the rows of both recipes, written once.
- `training.teacher`: the scores DistilSPLADE learns from (a cross-encoder, or a SPLADE model / fusion).
- `training.global_flops`: the FLOPS regulariser over all processes' documents (`GlobalFlopsLoss`).
- `training.trainer`: `train()` (the Trainer, the lambda schedule, checkpoints, resume) and `save_model()`.
- `training.log` / `training.monitor`: the training log (CSV and plot) and the per-batch measurements.
- `training.msmarco_files`: the MS MARCO training files (hard negatives, teacher score pickle, TSV texts).

The names below load lazily (PEP 562): importing the package costs nothing, and torch loads only with the first
name that needs it.
"""
from __future__ import annotations

import importlib

_HOMES = {
    "TrainingConfig": "training.config",
    "GlobalFlopsLoss": "training.global_flops",
    "select_negatives": "training.examples",
    "build_id_rows": "training.examples",
    "train": "training.trainer",
    "save_model": "training.trainer",
    "read_hard_negatives": "training.msmarco_files",
    "read_teacher_scores": "training.msmarco_files",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    """Import the module that holds `name` on first use (it may load torch)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
