"""What the training log shows besides the loss: FLOPS and the mean number of non-zeros of queries and documents.

SpladeLoss already passes the query and document vectors of each batch to its two FLOPS regularisers, so a
regulariser that also takes measurements (and computes exactly FlopsLoss otherwise) sees them without a second
forward pass. FLOPS follows DESIGN.md, Σ_j p_q(j)·p_d(j), estimated on this process's batch (the trainer
averages the processes' estimates for the log); the regulariser itself runs over the global batch (GlobalFlopsLoss).
"""
from __future__ import annotations

import torch

from training.global_flops import GlobalFlopsLoss


class BatchStats:
    """Running sums of the measurements since the last log line: FLOPS and mean non-zeros per query and document."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums = {"flops": 0.0, "query_nnz": 0.0, "document_nnz": 0.0}
        self.counts = {k: 0 for k in self.sums}
        self._active: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def add(self, side: str, embeddings: torch.Tensor) -> None:
        """Records one batch of vectors of `side` ('query' or 'document'); FLOPS once both sides of a batch are in.

        Args:
            side: 'query' or 'document'.
            embeddings: (batch, vocabulary) vectors.
        """
        active = embeddings.detach() > 0
        self._add(f"{side}_nnz", active.sum(dim=1).float().mean().item())
        self._active[side] = active.float().mean(dim=0)
        if "query" in self._active and "document" in self._active:
            self._add("flops", float((self._active.pop("query") * self._active.pop("document")).sum()))

    def _add(self, key: str, value: float) -> None:
        self.sums[key] += value
        self.counts[key] += 1

    def pop_means(self) -> dict[str, float]:
        """The means since the last call (keys flops, query_nnz, document_nnz, those measured), then a reset.

        Returns:
            {measurement: mean over the batches recorded}.
        """
        means = {k: round(self.sums[k] / self.counts[k], 4) for k in self.sums if self.counts[k]}
        self.reset()
        return means


class MeasuredFlopsLoss(GlobalFlopsLoss):
    """The global-batch FLOPS regulariser that also records the vectors it regularises.

    Args:
        model: the SparseEncoder being trained.
        stats: where the measurements go.
        side: 'query' or 'document'.
        threshold: as FlopsLoss's.
    """

    def __init__(self, model, stats: BatchStats, side: str, threshold: float | None = None):
        super().__init__(model, threshold=threshold)
        self.stats = stats
        self.side = side

    def compute_loss_from_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        self.stats.add(self.side, embeddings)
        return super().compute_loss_from_embeddings(embeddings)
