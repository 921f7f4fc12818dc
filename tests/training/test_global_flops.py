"""The FLOPS regulariser over the global batch: two gloo processes on CPU, wrapped in DDP as the Trainer wraps the
model, give the value and the parameter gradient of one process holding the concatenated batch (within 1e-6)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.global_flops import GlobalFlopsLoss, is_distributed
from training.monitor import BatchStats, MeasuredFlopsLoss

VOCAB, DIM = 40, 8
ROWS = (3, 5)  # unequal local batches: the mean must count vectors, not processes
THRESHOLDS = (None, 18)


def batch(seed: int = 0) -> torch.Tensor:
    return torch.randn(sum(ROWS), DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def encoder() -> torch.nn.Module:
    """A tiny 'SPLADE' head: log(1 + relu(x W)), about half the weights zero."""
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(DIM, VOCAB).double(), torch.nn.ReLU(), LogOnePlus())


class LogOnePlus(torch.nn.Module):
    def forward(self, x):
        return torch.log1p(x)


def value_and_gradient(model: torch.nn.Module, inputs: torch.Tensor, threshold) -> tuple[float, torch.Tensor]:
    loss = GlobalFlopsLoss(None, threshold=threshold).compute_loss_from_embeddings(model(inputs))
    loss.backward()
    weight = model.module[0].weight if hasattr(model, "module") else model[0].weight
    return float(loss.detach()), weight.grad.detach().clone()


def worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        start = sum(ROWS[:rank])
        local = batch()[start:start + ROWS[rank]]
        results = {"distributed": is_distributed()}
        for threshold in THRESHOLDS:
            model = torch.nn.parallel.DistributedDataParallel(encoder())  # averages gradients, as under torchrun
            results[threshold] = value_and_gradient(model, local, threshold)
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("global-flops")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # spawn, not fork: inside the whole suite the parent already runs torch's thread pools, and a forked child
    # inherits their locks held (it hung in futex_wait, measured); spawn re-imports torch (~10-30 s) but is safe.
    mp.start_processes(worker, args=(2, str(folder / "init"), str(folder)), nprocs=2, join=True, start_method="spawn")
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_two_processes_equal_one_process_on_the_concatenated_batch(two_process_results, threshold):
    single_value, single_grad = value_and_gradient(encoder(), batch(), threshold)
    assert single_grad.abs().sum() > 0
    for results in two_process_results:
        assert results["distributed"]
        value, grad = results[threshold]
        assert value == pytest.approx(single_value, abs=1e-6, rel=1e-6)
        torch.testing.assert_close(grad, single_grad, atol=1e-6, rtol=1e-6)


def test_local_batch_flops_would_differ(two_process_results):
    """The check has teeth: the local-batch regulariser (sentence-transformers' FlopsLoss) averaged over the two
    processes, what DDP would have optimised, is not the global one."""
    from sentence_transformers.sparse_encoder.losses import FlopsLoss

    with torch.no_grad():
        vectors = encoder()(batch())
        local = [FlopsLoss(None).compute_loss_from_embeddings(part) for part in vectors.split(list(ROWS))]
        assert abs(float(sum(local)) / 2 - two_process_results[0][None][0]) > 1e-3


def test_single_process_is_flops_loss_unchanged():
    from sentence_transformers.sparse_encoder.losses import FlopsLoss

    vectors = encoder()(batch()).detach()
    stats = BatchStats()
    for threshold in THRESHOLDS:
        expected = FlopsLoss(None, threshold=threshold).compute_loss_from_embeddings(vectors)
        measured = MeasuredFlopsLoss(None, stats, "query", threshold=threshold).compute_loss_from_embeddings(vectors)
        assert float(measured) == float(expected)
    assert stats.pop_means()["query_nnz"] > 0
