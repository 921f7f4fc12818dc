"""The two SPLADE recipes on sentence-transformers' SparseEncoder stack.

SPLADE-max: SpladeLoss(SparseMultipleNegativesRankingLoss) on (query, positive, hard negative) rows, batches
without duplicate texts (an in-batch "negative" equal to the positive would be a false one).
DistilSPLADE: SpladeLoss(SparseMarginMSELoss) on (query, positive, negative, teacher margin) rows.
Both regularise queries (lambda_q) and documents (lambda_d) with FLOPS, lambda growing from 0 by the
regulariser-weight scheduler callback. The HF Trainer underneath gives checkpoints, resuming, mixed precision and
data-parallel training under torchrun / accelerate (the global batch is split among the processes, and the
in-batch negatives of SPLADE-max are gathered across them so each query still sees the whole batch).
"""
from __future__ import annotations

import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import SpladeRegularizerWeightSchedulerCallback
from sentence_transformers.sparse_encoder.losses import (
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SpladeLoss,
)

from contracts.atomic import write_json
from indexing.encoder import load_sparse_encoder
from training.config import TrainingConfig
from training.log import TrainingLogCallback
from training.monitor import BatchStats, MeasuredFlopsLoss

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL_MODEL = "model"


def world_size() -> int:
    """Number of processes of a torchrun / accelerate launch (1 when started plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def precision_flags(precision: str, cuda: bool, bf16_supported: bool = False) -> dict:
    """fp16 / bf16 arguments: 'auto' is bf16 where the GPU has it, else fp16, and fp32 on CPU.

    Raises:
        ValueError: fp16 without a GPU.
    """
    if precision == "auto":
        precision = ("bf16" if bf16_supported else "fp16") if cuda else "fp32"
    if precision == "fp16" and not cuda:
        raise ValueError("precision fp16 needs a GPU; use fp32 or bf16 on CPU")
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def build_training_args(config: TrainingConfig, output_dir: str | Path, processes: int | None = None,
                        cuda: bool | None = None) -> SparseEncoderTrainingArguments:
    """HF/sentence-transformers training arguments; `batch_size` is the global batch over all processes.

    Args:
        config: the run's settings.
        output_dir: the run folder (checkpoints go to its checkpoints/).
        processes: processes of the launch (default: WORLD_SIZE).
        cuda: whether to train on a GPU (default: whether one is there).

    Returns:
        SparseEncoderTrainingArguments.

    Raises:
        ValueError: a batch size the processes cannot share equally, or fp16 without a GPU.
    """
    from sentence_transformers.base.sampler import BatchSamplers

    processes = processes or world_size()
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if config.batch_size % processes:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {processes} processes of this launch")
    bf16_supported = cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return SparseEncoderTrainingArguments(
        output_dir=str(Path(output_dir) / CHECKPOINTS),
        num_train_epochs=1,  # the rows file already holds `epochs` passes, each with its own negatives
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size // processes,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type="linear",
        seed=config.seed,
        data_seed=config.seed,
        **precision_flags(config.precision, cuda, bf16_supported),
        batch_sampler=BatchSamplers.NO_DUPLICATES if config.recipe == "max" else BatchSamplers.BATCH_SAMPLER,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        dataloader_num_workers=config.dataloader_workers,
        dataloader_drop_last=processes > 1,  # equal batches on every process
        ddp_find_unused_parameters=False if processes > 1 else None,
        report_to="none",
        use_cpu=not cuda,
    )


def build_loss(model, config: TrainingConfig, stats: BatchStats, processes: int = 1) -> SpladeLoss:
    """The recipe's SpladeLoss: the ranking loss plus FLOPS over the global batch on queries and documents.

    Args:
        model: the SparseEncoder being trained.
        config: recipe and lambdas.
        stats: where the regularisers record FLOPS and non-zeros for the log.
        processes: processes of the launch (SPLADE-max gathers in-batch negatives across them).

    Returns:
        A sentence-transformers SpladeLoss.
    """
    if config.recipe == "max":
        ranking = SparseMultipleNegativesRankingLoss(model, gather_across_devices=processes > 1)
    else:
        ranking = SparseMarginMSELoss(model)
    return SpladeLoss(
        model,
        loss=ranking,
        query_regularizer_weight=config.lambda_q,
        document_regularizer_weight=config.lambda_d,
        query_regularizer=MeasuredFlopsLoss(model, stats, "query"),
        document_regularizer=MeasuredFlopsLoss(model, stats, "document"),
    )


class ConstantRegularizerWeights(SpladeRegularizerWeightSchedulerCallback):
    """lambda at its full value from the first step (lambda_warmup 'none'); the trainer would otherwise add a
    quadratic scheduler of its own whenever none is given."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.loss.query_regularizer_weight = self._current_query_regularizer_weight = self.max_query_regularizer_weight
        weight = self.max_document_regularizer_weight
        self.loss.document_regularizer_weight = self._current_document_regularizer_weight = weight

    def on_step_begin(self, args, state, control, **kwargs):
        pass


def regularizer_schedule(loss: SpladeLoss, config: TrainingConfig) -> SpladeRegularizerWeightSchedulerCallback:
    """The callback that sets lambda at each step: the sentence-transformers scheduler, or constant ('none')."""
    if config.lambda_warmup == "none":
        return ConstantRegularizerWeights(loss)
    return SpladeRegularizerWeightSchedulerCallback(loss, scheduler_type=config.lambda_warmup,
                                                    warmup_ratio=config.lambda_warmup_ratio)


class SpladeTrainer(SparseEncoderTrainer):
    """Adds FLOPS, mean non-zeros and the current lambdas to each training log entry (and so to the checkpoint's
    log history, which a callback could not do: the Trainer copies the entry before callbacks see it)."""

    def __init__(self, *args, batch_stats: BatchStats, **kwargs):
        self.batch_stats = batch_stats
        super().__init__(*args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs = {**logs, **self._reduced(self.batch_stats.pop_means())}
            logs["query_regularizer_weight"] = self.loss.query_regularizer_weight
            logs["document_regularizer_weight"] = self.loss.document_regularizer_weight
        return super().log(logs, start_time)

    def _reduced(self, means: dict[str, float]) -> dict[str, float]:
        if self.accelerator.num_processes == 1 or not means:
            return means
        keys = sorted(means)
        values = torch.tensor([means[k] for k in keys], device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return {k: round(float(v), 4) for k, v in zip(keys, values)}


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint folder of a run folder, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output_dir) / CHECKPOINTS
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def train(config: TrainingConfig, model_path: str | Path, prepare_rows: Callable[[], Path], output_dir: str | Path,
          resume: bool = False, callbacks: list | None = None) -> dict:
    """Train from `model_path` on the rows `prepare_rows` writes.

    Under a multi-process launch the main process prepares the rows first and the others then reuse its files.

    Args:
        config: the run's settings.
        model_path: the base model folder (a SparseEncoder folder or a plain MaskedLM checkpoint).
        prepare_rows: writes (or reuses) the training rows file and returns its path.
        output_dir: the run folder (checkpoints/, model/, training-log.csv/.png, training-summary.json).
        resume: continue from the last checkpoint in `output_dir`.
        callbacks: extra transformers TrainerCallbacks (timers, probes).

    Returns:
        The summary also written to training-summary.json: steps, seconds, rows, losses, last FLOPS and non-zeros.

    Raises:
        FileExistsError: `output_dir` holds checkpoints and `resume` is False.
        ValueError: a batch size that the processes cannot share.
    """
    from datasets import load_dataset

    output_dir = Path(output_dir)
    checkpoint = last_checkpoint(output_dir)
    if checkpoint and not resume:
        raise FileExistsError(
            f"{output_dir}: holds checkpoints of an earlier run ({checkpoint}); pass --resume to continue it, "
            f"or choose another --output"
        )
    processes = world_size()
    args = build_training_args(config, output_dir, processes)
    with args.main_process_first(local=False, desc="preparing training rows"):
        rows_path = prepare_rows()
        dataset = load_dataset("json", data_files=str(rows_path), split="train",
                               cache_dir=str(output_dir / "data" / "hf-cache"))

    model = load_sparse_encoder(model_path, max_length=config.effective_max_length)
    stats = BatchStats()
    loss = build_loss(model, config, stats, processes)
    if args.process_index == 0:
        write_json(output_dir / "training-config.json", {**config.to_dict(), "base_model_path": str(model_path),
                                                          "processes": processes})
    trainer = SpladeTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        callbacks=[regularizer_schedule(loss, config),
                   TrainingLogCallback(output_dir / "training-log.csv", output_dir / "training-log.png"),
                   *(callbacks or [])],
        batch_stats=stats,
    )
    started = time.perf_counter()
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint if resume else None)
    seconds = time.perf_counter() - started
    summary = {"steps": trainer.state.global_step, "train_seconds": round(seconds, 1), "rows": len(dataset),
               "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
               "train_loss": result.training_loss, "model": str(output_dir / FINAL_MODEL)}
    history = [e for e in trainer.state.log_history if "loss" in e]
    if history:
        summary.update({k: history[-1][k] for k in ("loss", "flops", "query_nnz", "document_nnz") if k in history[-1]})
    if trainer.is_world_process_zero():
        save_model(model, output_dir / FINAL_MODEL)
        write_json(output_dir / "training-summary.json", summary)
        logger.info("trained %d steps in %.0f s; last log: loss %s, FLOPS %s, non-zeros q %s d %s; model -> %s, "
                    "log -> %s", summary["steps"], seconds, summary.get("loss"), summary.get("flops"),
                    summary.get("query_nnz"), summary.get("document_nnz"), summary["model"],
                    output_dir / "training-log.csv")
    return summary


def save_model(model, target: Path) -> None:
    """Saves the SparseEncoder next to `target` and renames it into place: readers never see half a model."""
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
