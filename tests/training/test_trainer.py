"""Training splade-tiny on a tiny slice of the SciFact training split: the loss falls, a larger lambda gives
sparser vectors, checkpoints load where indexing loads models, --resume continues, the log is written, the
distil recipe and the data-parallel launch run."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

QUERIES = 24  # training queries of the slice
OTHER_DOCS = 100  # unjudged documents added to the judged ones, so there is something to mine
COMMON = ["--max-length", "48", "--batch-size", "8", "--warmup-steps", "0", "--lambda-warmup", "none",
          "--logging-steps", "1", "--mining-depth", "10", "--epochs", "4", "--seed", "1"]


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory, shared_dataset) -> Path:
    """A dataset folder: the first judged training queries of SciFact, their documents and a few others."""
    source = shared_dataset("beir-scifact")
    folder = tmp_path_factory.mktemp("scifact-slice")
    qrels = [line.split() for line in (source / "train-qrels.txt").read_text().splitlines() if line.strip()]
    judged = {}
    for qid, _, doc, _rel in qrels:
        judged.setdefault(qid, set()).add(doc)
    lines = (source / "train-queries.tsv").read_text().splitlines()
    queries = [line for line in lines if line.split("\t")[0] in judged]
    queries = queries[:QUERIES]
    qids = {line.split("\t")[0] for line in queries}
    docs = {d for q in qids for d in judged[q]}
    corpus, others = [], 0
    for line in (source / "corpus.jsonl").read_text().splitlines():
        doc_id = json.loads(line)["id"]
        if doc_id in docs or others < OTHER_DOCS:
            others += doc_id not in docs
            corpus.append(line)
    (folder / "train-queries.tsv").write_text("\n".join(queries) + "\n")
    (folder / "train-qrels.txt").write_text("".join(" ".join(r) + "\n" for r in qrels if r[0] in qids))
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    return folder


def train_cli(*args: str) -> int:
    from pipelines.cli import main

    return main(["train", "--model", "splade-tiny", *args])


def log_rows(run: Path) -> list[dict]:
    with open(run / "training-log.csv") as f:
        return list(csv.DictReader(f))


def ranking_loss(model_path: Path, rows_path: Path) -> float:
    """SPLADE-max's ranking loss (in-batch + hard negatives) over one row per training query, all at once."""
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss

    from indexing.encoder import load_sparse_encoder

    rows = list({r["query"]: r for r in map(json.loads, rows_path.read_text().splitlines())}.values())
    model = load_sparse_encoder(model_path, max_length=48)
    with torch.no_grad():
        columns = [model.encode([r[c] for r in rows], convert_to_tensor=True, convert_to_sparse_tensor=False)
                   for c in ("query", "positive", "negative")]
        return float(SparseMultipleNegativesRankingLoss(model).compute_loss_from_embeddings(columns, None))


def doc_nonzeros(model_path: Path, folder: Path) -> float:
    from indexing.encoder import SpladeEncoder

    texts = [json.loads(line)["text"] for line in (folder / "corpus.jsonl").read_text().splitlines()]
    vectors = SpladeEncoder(model_path, doc_max_length=48).encode_documents(texts)
    return float(np.diff(vectors.indptr).mean())


@pytest.fixture(scope="module")
def max_run(scifact_slice, tmp_path_factory) -> Path:
    """SPLADE-max, small lambda: 6 steps, then --resume to 10."""
    out = tmp_path_factory.mktemp("max-run")
    flags = ["--dataset", str(scifact_slice), "--output", str(out), *COMMON, "--learning-rate", "3e-4",
             "--lambda-q", "1e-4", "--lambda-d", "1e-4", "--save-steps", "3"]
    assert train_cli(*flags, "--max-steps", "6") == 0
    assert train_cli(*flags, "--max-steps", "10", "--resume") == 0
    return out


def test_mined_rows_hold_positives_and_mined_negatives(max_run, scifact_slice):
    info = json.loads((max_run / "data" / "train-rows.json").read_text())
    assert info["stats"]["queries_used"] >= QUERIES - 3
    negatives = json.loads((max_run / "data" / "negatives.json").read_text())["negatives"]
    qrels = {tuple(line.split()[::2]) for line in (scifact_slice / "train-qrels.txt").read_text().splitlines()}
    rows = [json.loads(line) for line in (max_run / "data" / "train-rows.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * info["stats"]["queries_used"]  # four passes
    assert all(r["positive"] != r["negative"] for r in rows)
    assert len(negatives) == QUERIES and all(len(v) == 10 for v in negatives.values())
    assert any(doc == d for qid, doc in qrels for d in negatives[qid])  # mining finds positives; rows exclude them


def test_loss_falls_and_checkpoints_load_for_indexing(max_run, splade_tiny_path):
    from indexing.encoder import SpladeEncoder

    rows_path = max_run / "data" / "train-rows.jsonl"
    before, after = ranking_loss(splade_tiny_path, rows_path), ranking_loss(max_run / "model", rows_path)
    assert after < 0.8 * before, (before, after)
    encoder = SpladeEncoder(max_run / "model", doc_max_length=48)
    vectors = encoder.encode_documents(["sparse retrieval with learned term weights"])
    assert vectors.shape == (1, 30522) and vectors.nnz > 0
    steps = sorted(int(p.name.split("-")[1]) for p in (max_run / "checkpoints").glob("checkpoint-*"))
    assert 6 in steps and 9 in steps  # saved every 3 steps, before and after the resume
    SpladeEncoder(max_run / "checkpoints" / f"checkpoint-{steps[-1]}", doc_max_length=48)  # a checkpoint is a model too


def test_log_covers_every_step_across_the_resume(max_run):
    rows = log_rows(max_run)
    assert [int(r["step"]) for r in rows] == list(range(1, 11))
    for r in rows:
        assert float(r["flops"]) > 0 and float(r["query_nnz"]) > 0 and float(r["document_nnz"]) > 0
        assert float(r["query_regularizer_weight"]) == pytest.approx(1e-4)
    assert (max_run / "training-log.png").stat().st_size > 1000
    summary = json.loads((max_run / "training-summary.json").read_text())
    assert summary["steps"] == 10


def test_existing_checkpoints_need_resume(max_run, scifact_slice, capsys):
    assert train_cli("--dataset", str(scifact_slice), "--output", str(max_run), *COMMON, "--max-steps", "12") == 2
    assert "--resume" in capsys.readouterr().err


def test_larger_lambda_gives_sparser_vectors(max_run, scifact_slice, tmp_path):
    from pipelines.models import resolve_model
    from training.config import TrainingConfig
    from training.trainer import train

    config = json.loads((max_run / "training-config.json").read_text())
    config = {k: v for k, v in config.items() if k not in ("base_model_path", "processes")}
    heavy = TrainingConfig(**{**config, "lambda_q": 1.0, "lambda_d": 1.0, "max_steps": 4})
    rows = max_run / "data" / "train-rows.jsonl"
    summary = train(heavy, resolve_model("splade-tiny"), lambda: rows, tmp_path / "heavy")
    light_nnz = doc_nonzeros(max_run / "model", scifact_slice)
    heavy_nnz = doc_nonzeros(Path(summary["model"]), scifact_slice)
    assert heavy_nnz < 0.7 * light_nnz, (light_nnz, heavy_nnz)
    light_log, heavy_log = log_rows(max_run), log_rows(tmp_path / "heavy")
    assert float(heavy_log[-1]["flops"]) < float(light_log[3]["flops"])  # both after 4 steps


def copy_data(source: Path, target: Path, *names: str) -> None:
    """Hand a run the slow files of another (mined negatives, teacher scores, rows): they are reused if they fit."""
    (target / "data").mkdir(parents=True, exist_ok=True)
    for name in names:
        (target / "data" / name).write_bytes((source / "data" / name).read_bytes())


def test_distil_recipe_learns_from_teacher_margins(max_run, scifact_slice, tmp_path):
    out = tmp_path / "distil"
    copy_data(max_run, out, "negatives.json", "teacher-scores.json")
    assert train_cli("--recipe", "distil", "--dataset", str(scifact_slice), "--output", str(out), *COMMON,
                     "--max-steps", "2") == 0
    teacher = json.loads((out / "data" / "teacher-scores.json").read_text())["scores"]
    rows = [json.loads(line) for line in (out / "data" / "train-rows.jsonl").read_text().splitlines()]
    assert rows and all(isinstance(r["label"], float) for r in rows)
    margins = {round(s[p] - s[n], 4) for s in teacher.values() for p in s for n in s}
    assert all(round(r["label"], 4) in margins for r in rows)
    log = log_rows(out)
    assert [int(r["step"]) for r in log] == [1, 2] and all(np.isfinite(float(r["loss"])) for r in log)


def test_data_parallel_launch_with_torchrun(max_run, scifact_slice, tmp_path):
    """Two CPU processes (gloo): the global batch is split, in-batch negatives are gathered across processes."""
    out = tmp_path / "ddp"
    copy_data(max_run, out, "train-rows.jsonl", "train-rows.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "pipelines", "train", "--model", "splade-tiny", "--dataset", str(scifact_slice),
           "--output", str(out), *COMMON, "--max-steps", "2", "--save-steps", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "training-config.json").read_text())["processes"] == 2
    assert [int(r["step"]) for r in log_rows(out)] == [1, 2]
    args = torch.load(out / "checkpoints" / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert args.per_device_train_batch_size == 4 and args.world_size == 2


def test_training_arguments_for_several_processes():
    from training.config import TrainingConfig
    from training.monitor import BatchStats
    from training.trainer import build_loss, build_training_args, precision_flags

    config = TrainingConfig(recipe="max", batch_size=64)
    args = build_training_args(config, "/tmp/unused", processes=4, cuda=False)
    assert args.per_device_train_batch_size == 16 and args.ddp_find_unused_parameters is False
    assert args.dataloader_drop_last and str(args.batch_sampler.value) == "no_duplicates"
    with pytest.raises(ValueError, match="divisible"):
        build_training_args(config.replace(batch_size=30), "/tmp/unused", processes=4, cuda=False)
    assert precision_flags("auto", cuda=True, bf16_supported=True) == {"fp16": False, "bf16": True}
    assert precision_flags("auto", cuda=True) == {"fp16": True, "bf16": False}
    assert precision_flags("auto", cuda=False) == {"fp16": False, "bf16": False}
    with pytest.raises(ValueError, match="GPU"):
        precision_flags("fp16", cuda=False)

    class Model(torch.nn.Module):  # the losses only store the model at construction
        pass

    loss = build_loss(Model(), config, BatchStats(), processes=4)
    assert loss.loss.gather_across_devices
    assert (loss.query_regularizer_weight, loss.document_regularizer_weight) == (0.0008, 0.0006)
