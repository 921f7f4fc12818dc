"""Preset F's recipe on a GPU, offline: steps/s and memory of DistilSPLADE training with a distilbert-size model.

    python -m benchmarks.train_gpu                    # GPU: 300 steps, batch 64, 256 tokens, bf16 (make train-gpu)
    python -m benchmarks.train_gpu --smoke            # CPU: a 2-layer toy model, 3 steps (checks the script runs)

The model is DistilBertForMaskedLM with random weights at distilbert-base size (6 layers, 768 wide, 30,522-token
vocabulary; DistilBertConfig's defaults) and a WordPiece tokenizer over synthetic words, so nothing is downloaded.
The rows are synthetic (query, positive, negative, teacher margin) texts, and everything else is preset F's:
DistilSPLADE (MarginMSE), lambda_q 0.01 and lambda_d 0.008 with the quadratic warm-up, learning rate 2e-5, global
batch 64, 256 tokens, bf16 where the GPU has it; training goes through `training.trainer.train`, the code path of
`splade train --preset F`. The learning-rate warm-up is scaled to the run (a tenth of its steps) so that a few
hundred steps are not all warm-up; it does not change the speed.

Writes OUTPUT/train-gpu.json: steps/s, rows/s, peak GPU memory (allocated and reserved), peak host RSS, and the
settings.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import DistilBertConfig, DistilBertForMaskedLM, TrainerCallback

from benchmarks.train_synthetic import SPECIAL_TOKENS, ZipfWords, write_wordpiece_tokenizer
from contracts.atomic import write_json
from pipelines.presets import load_preset
from training.trainer import train

logger = logging.getLogger("benchmarks.train_gpu")


def build_model(folder: Path, smoke: bool, seed: int) -> Path:
    """A randomly initialised DistilBertForMaskedLM and its tokenizer, saved in `folder`."""
    torch.manual_seed(seed)
    if smoke:
        config = DistilBertConfig(n_layers=2, dim=64, hidden_dim=256, n_heads=2, vocab_size=2000)
    else:
        config = DistilBertConfig()
    letters = 2 * 26
    write_wordpiece_tokenizer(folder, vocab=config.vocab_size - len(SPECIAL_TOKENS) - letters)
    DistilBertForMaskedLM(config).save_pretrained(str(folder))
    return folder


def write_rows(path: Path, count: int, vocab: int, seed: int) -> Path:
    """Synthetic distil rows: a query of ~6 words, two passages of ~60, a teacher margin ~ N(0, 3)."""
    words = ZipfWords(vocab=vocab, seed=seed)
    queries, positives, negatives = words.texts(count, 6), words.texts(count, 60), words.texts(count, 60)
    margins = np.random.default_rng(seed).normal(0.0, 3.0, size=count)
    with open(path, "w", encoding="utf-8") as f:
        for q, p, n, m in zip(queries, positives, negatives, margins):
            f.write(json.dumps({"query": q, "positive": p, "negative": n, "label": float(m)}) + "\n")
    return path


class StepTimer(TrainerCallback):
    """Times each optimiser step (CUDA synchronised), so steps/s leaves out start-up, the first steps and saving."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def steady_steps_per_s(self) -> float | None:
        """Steps/s over the second half of the steps (the first ones warm up kernels and the allocator)."""
        half = self.ends[len(self.ends) // 2:]
        return (len(half) - 1) / (half[-1] - half[0]) if len(half) > 1 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch, preset F's (default: %(default)s)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per text (default: %(default)s)")
    parser.add_argument("--precision", default="bf16", help="bf16 (preset F on a GPU that has it), fp16, fp32")
    parser.add_argument("--smoke", action="store_true", help="CPU check: a toy model, 3 steps, batch 4, 32 tokens")
    parser.add_argument("--output", default="outputs/train-gpu", help="work folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.smoke:
        args.steps, args.batch_size, args.max_length, args.precision = 3, 4, 32, "fp32"
    elif not torch.cuda.is_available():
        parser.error("no GPU here: run with --smoke for the CPU check")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    model_dir = build_model(out / "model-random", args.smoke, args.seed)
    vocab = (2000 if args.smoke else 30522) - len(SPECIAL_TOKENS) - 2 * 26
    rows = write_rows(out / "rows.jsonl", args.steps * args.batch_size, vocab, args.seed)

    config = load_preset("F").replace(
        model=str(model_dir), max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
        precision=args.precision, warmup_steps=max(args.steps // 10, 1), logging_steps=max(args.steps // 10, 1),
        save_steps=args.steps * 10, seed=args.seed,
    )
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    timer = StepTimer()
    summary = train(config, model_dir, lambda: rows, run_dir, callbacks=[timer])
    seconds = summary["train_seconds"]
    report = {
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "steps": summary["steps"], "seconds": seconds,
        "steps_per_s_overall": round(summary["steps"] / seconds, 3),
        "steps_per_s_steady": round(timer.steady_steps_per_s() or 0.0, 3),
        "rows_per_s_steady": round((timer.steady_steps_per_s() or 0.0) * args.batch_size, 1),
        "peak_gpu_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
        "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if gpu else None,
        "peak_host_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "batch_size": args.batch_size, "max_length": args.max_length, "precision": args.precision,
        "model": "DistilBertForMaskedLM, random weights, "
                 + ("toy (2 layers, 64 wide)" if args.smoke else "distilbert-base size"),
        "recipe": config.recipe, "lambda_q": config.lambda_q, "lambda_d": config.lambda_d,
        "last_loss": summary.get("loss"), "last_flops": summary.get("flops"),
    }
    write_json(out / "train-gpu.json", report)
    logger.info("%s", json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
