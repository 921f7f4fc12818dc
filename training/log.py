"""The training log as a CSV file and a plot, rewritten from the Trainer's own log history at every log step.

The history is saved in each checkpoint (trainer_state.json), so after --resume the CSV again holds every step
from the first one, and nothing from a run that was abandoned after the checkpoint.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from transformers import TrainerCallback

from contracts.atomic import atomic_path, write_text

COLUMNS = ("step", "epoch", "loss", "base_loss", "query_regularizer_loss", "document_regularizer_loss",
           "flops", "query_nnz", "document_nnz", "query_regularizer_weight", "document_regularizer_weight",
           "learning_rate", "grad_norm")


def training_rows(log_history: list[dict]) -> list[dict]:
    """The log entries of training steps (those with a loss), one per step (the latest entry wins)."""
    by_step = {}
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            by_step[int(entry["step"])] = entry
    return [by_step[s] for s in sorted(by_step)]


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Writes the COLUMNS of `rows` (missing ones empty) atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in COLUMNS})
    write_text(path, buffer.getvalue())


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a training-log.csv, values as floats, empty cells left out."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def plot(csv_path: str | Path, png_path: str | Path) -> None:
    """Loss, FLOPS and mean non-zeros against the step, in three panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(csv_path)
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("loss", "total"), ("base_loss", "ranking loss")):
        if any(key in r for r in rows):
            axes[0].plot(steps, [r.get(key, float("nan")) for r in rows], label=label)
    axes[0].set_title("loss")
    axes[0].legend()
    axes[1].plot(steps, [r.get("flops", float("nan")) for r in rows], color="tab:red")
    axes[1].set_title("FLOPS (batch estimate)")
    for key, label in (("query_nnz", "queries"), ("document_nnz", "documents")):
        axes[2].plot(steps, [r.get(key, float("nan")) for r in rows], label=label)
    axes[2].set_title("mean non-zeros per vector")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


class TrainingLogCallback(TrainerCallback):
    """Writes training-log.csv at every log step and training-log.png at the end (main process only).

    Args:
        csv_path: where the CSV goes.
        png_path: where the plot goes.
    """

    def __init__(self, csv_path: str | Path, png_path: str | Path):
        self.csv_path = Path(csv_path)
        self.png_path = Path(png_path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            write_csv(self.csv_path, training_rows(state.log_history))

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_csv(self.csv_path, training_rows(state.log_history))
            plot(self.csv_path, self.png_path)
