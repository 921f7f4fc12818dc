"""The FLOPS regulariser over the global batch: Σ_j (mean_i w_ij)², the mean taken over the vectors of every process.

sentence-transformers' FlopsLoss (like naver/splade and lightning-ir) averages over each process's local batch,
so under data-parallel training every process regularises a batch P times smaller than the global one. The square
of a mean over fewer vectors is larger on average (E[m²] = μ² + σ²/n), so the same λ pushes harder the more GPUs a
run has (Tevatron's users report models 2-4x sparser on 1 GPU than on 4). Here the per-term sums of all processes
are all-reduced and divided by the total number of vectors, so λ means the same on 1, 2 or 8 GPUs.

Gradient: `torch.distributed.nn.functional.all_reduce` is differentiable and its backward all-reduces (sums) the
gradient, so each process receives P times its own share of ∂L/∂w; DDP then averages the parameter gradients over
the P processes, and the update equals the single-process gradient of the concatenated batch
(tests/training/test_global_flops.py checks value and gradient within 1e-6).

Gradient accumulation: the HF Trainer runs a backward per micro-batch, so this regulariser is the global FLOPS of
each micro-batch (all processes' micro-batches together), and the Trainer averages the micro-batch losses. The
mean over the whole accumulated batch would need the vectors of micro-batches not yet computed (a GradCache-style
second forward); with accumulation λ therefore means what it means for a global batch of one micro-batch per
process. This project's runs do not set gradient accumulation; a run that needs it for memory should keep the
micro-batch × processes product at the batch its λ was tuned for.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from sentence_transformers.sparse_encoder.losses import FlopsLoss
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class GlobalFlopsLoss(FlopsLoss):
    """FlopsLoss whose mean runs over the vectors of all processes.

    It subclasses sentence-transformers' FlopsLoss rather than replacing it: SpladeLoss, its regulariser-weight
    scheduler callback and the model card all expect a FlopsLoss (its `threshold`, config and citation are kept),
    and in a single process the computation is FlopsLoss's own, unchanged.

    Args:
        model: the SparseEncoder being trained (stored by FlopsLoss, unused here).
        threshold: as FlopsLoss: vectors with at most this many non-zeros are left out of the sum (still counted).
    """

    def compute_loss_from_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Σ_j (Σ_{p,i} w_pij / N)², N the number of vectors over all processes.

        Args:
            embeddings: (local batch, vocabulary) sparse vectors of this process (dense tensor).

        Returns:
            A scalar tensor, the same on every process; its gradient flows into this process's `embeddings`.
        """
        if not is_distributed():
            return super().compute_loss_from_embeddings(embeddings)
        if self.threshold is not None:
            active = (embeddings != 0).sum(dim=1)
            embeddings = embeddings * (active > self.threshold).to(embeddings.dtype).unsqueeze(1)
        # fp32 sums: under bf16 a sum over thousands of vectors would lose the small weights
        total = differentiable_all_reduce(embeddings.float().sum(dim=0), op=dist.ReduceOp.SUM)
        count = torch.tensor(float(embeddings.shape[0]), device=embeddings.device)
        dist.all_reduce(count, op=dist.ReduceOp.SUM)  # processes may hold batches of different sizes
        return torch.sum((total / count) ** 2)
