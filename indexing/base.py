"""What every index back end shares: the quantisation rule, and the manifest's vocabulary and scale."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def quantize(matrix: sp.csr_matrix, scale: float, bits: int | None) -> sp.csr_matrix:
    """round(w * scale) as integers (DESIGN.md); with `bits`, clipped to what that many bits hold; zeros dropped."""
    q = matrix.copy().astype(np.float64)
    q.data = np.rint(q.data * scale)
    if bits is not None:
        np.clip(q.data, 0, 2**bits - 1, out=q.data)
    q.data = q.data.astype(np.int64)
    q.eliminate_zeros()
    return q


def default_scale(max_weight: float, bits: int) -> float:
    """The largest scale at which the heaviest weight of the corpus still fits in `bits` bits."""
    if max_weight <= 0:
        raise ValueError("the encoded corpus has no positive weight: nothing to index")
    return (2**bits - 1) / max_weight


class QuantizedIndex:
    """What every back end shares: a manifest with the vocabulary and the scale that queries are quantised with."""

    path: Path
    manifest: dict
    kind = "index"

    @property
    def num_docs(self) -> int:
        return int(self.manifest["num_docs"])

    @property
    def scale(self) -> float:
        return float(self.manifest["scale"])

    def check_vocabulary(self, vocab_hash: str, vocab_size: int, what: str = "the query encoder") -> None:
        if vocab_hash != self.manifest["vocab_hash"] or vocab_size != self.manifest["vocab_size"]:
            raise ValueError(
                f"{self.path}: this {self.kind} was built for vocabulary {self.manifest['vocab_hash']} "
                f"({self.manifest['vocab_size']} terms, model {self.manifest['model']}), but {what} uses "
                f"{vocab_hash} ({vocab_size} terms): encode queries with the index's model"
            )

    def quantize_queries(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        """Queries get the index's scale (no bit limit: query weights are never stored), zeros dropped."""
        if queries.shape[1] != self.manifest["vocab_size"]:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.path} {self.manifest['vocab_size']}")
        q = quantize(sp.csr_matrix(queries), self.scale, None)
        q.sort_indices()
        return q
