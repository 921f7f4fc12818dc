"""Exact fp32 SPLADE maxima at the speed of bf16 matrix instructions: screen in bf16, compute the survivors in fp32.

A SPLADE vector keeps relu(max over tokens of x_t . w_v + b_v): of the 30,522 terms only the few hundred whose
maximum is positive survive (splade-tiny: 133 per TREC DL passage, 247 per SciFact abstract). The fp32 projection
of every token onto every term is most of the encoding's time, and a CPU with AVX512-BF16 does the same product
in bf16 at about twice the speed. So

1. the products x_t . w_v (no bias) run in bf16 tiles, and each document keeps its maximum per term (exact maxima
   of the bf16 results, `bf16_segment_max_keys_into`);
2. a term is a candidate unless the bound below proves that its exact fp32 maximum plus bias is negative;
3. the candidates (199 per passage, 356 per abstract: about 1.45x the survivors) are computed in fp32 from the
   same fp32 hidden states, one document's tokens against one term's weights at a time.

Every term left out has relu(.) = 0 in exact arithmetic and in fp32, so the result equals the plain fp32 projection
within fp32 rounding (its products summed in another order), which `tests/indexing/test_screened_projection.py`
checks against `torch.addmm`.

The bound. With u = 2^-8 (bf16's unit roundoff), rounding x and w to bf16 changes each product x_i w_i by at most
(2u + u^2)|x_i||w_i|; summing 128 products in fp32 adds less than 1e-5 sum |x_i||w_i|; rounding the sum s to bf16
adds u|s|. By Cauchy-Schwarz sum |x_i||w_i| <= ||x_t|| ||w_v||. Hence for every token t of document d

    x_t . w_v <= m + u|m| + (2u + u^2 + 1e-5)(1 + u) max_t ||x_t|| ||w_v|| + 1e-6,

where m is the bf16 maximum over d's tokens (the 1e-6 covers bf16's flushing of subnormals and the final fp32
addition of the bias). A term is skipped when that plus b_v is below 0.
WHY not the bias inside the bf16 product: torch may round the product to bf16 before adding the bias, and a
large product cancelled by a large bias would then carry an error the bound above does not cover.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch

from indexing.segment_max import bf16_keys_to_fp32, bf16_segment_max_keys_into

__all__ = ["ReusedBuffer", "ScreenedProjection"]

UNIT_ROUNDOFF = 2.0**-8
PRODUCT_ERROR = (2 * UNIT_ROUNDOFF + UNIT_ROUNDOFF**2 + 1e-5) * (1 + UNIT_ROUNDOFF)
ABSOLUTE_SLACK = 1e-6
# The bf16 tile: 512 tokens x 4,096 terms (4 MB) took 136 ms on 8,300 TREC DL tokens against 169 ms for the plain
# fp32 path's 1024 x 8192 and 139-238 ms for the other sizes tried (256 to 2,048 x 2,048 to 16,384).
TOKEN_TILE = 512
VOCAB_TILE = 4096


@nb.njit(cache=True, nogil=True)
def _candidates(maxima, norms_x, norms_w, bias, counts, cols):
    """Terms of each document that the bound cannot rule out; counts[d] += their number, cols gets them when given
    (a first pass counts, the second fills)."""
    docs, width = maxima.shape
    filled = 0
    for d in range(docs):
        scale = PRODUCT_ERROR * norms_x[d]
        for j in range(width):
            m = maxima[d, j]
            if m + UNIT_ROUNDOFF * abs(m) + scale * norms_w[j] + ABSOLUTE_SLACK + bias[j] >= 0:
                if cols.shape[0] > 0:
                    cols[filled] = j
                filled += 1
                counts[d] += 1
    return filled


@nb.njit(cache=True, nogil=True)
def _screen_and_compute(maxima, x, offsets, weight, norms_w, bias):
    """The candidates of every document and their exact maxima: (ptr, cols, exact), as `pool_sparse` returns."""
    docs = len(offsets) - 1
    norms_x = np.zeros(docs, dtype=np.float32)
    for d in range(docs):
        for t in range(offsets[d], offsets[d + 1]):
            norms_x[d] = max(norms_x[d], np.float32(np.sqrt(np.sum(x[t].astype(np.float64) ** 2))))
    counts = np.zeros(docs, dtype=np.int64)
    cols = np.empty(_candidates(maxima, norms_x, norms_w, bias, counts, np.empty(0, np.int32)), np.int32)
    counts[:] = 0
    _candidates(maxima, norms_x, norms_w, bias, counts, cols)
    ptr = np.zeros(docs + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(counts)
    exact = np.empty(len(cols), dtype=np.float32)
    _exact_maxima(x, offsets, weight, bias, ptr, cols, exact)
    return ptr, cols, exact


@nb.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _exact_maxima(x, offsets, weight, bias, ptr, cols, out):
    """out[c] = max over d's tokens of x_t . w_v (fp32) + b_v, for each candidate c (term v = cols[c]) of every
    document d."""
    hidden = x.shape[1]
    for d in range(len(offsets) - 1):
        for c in range(ptr[d], ptr[d + 1]):
            v = cols[c]
            w = weight[v]
            best = -np.inf
            for t in range(offsets[d], offsets[d + 1]):
                row = x[t]
                s = np.float32(0.0)
                for i in range(hidden):
                    s += row[i] * w[i]
                if s > best:
                    best = s
            out[c] = best + bias[v]


class ReusedBuffer:
    """A flat buffer kept between calls and grown on demand. WHY: a fresh tile costs its page faults on every call,
    0.3 ms of a single query's 0.7 ms projection. Not for concurrent use (one encoder per thread, as torch modules).

    Args:
        dtype: the buffer's torch dtype.
    """

    def __init__(self, dtype: torch.dtype):
        self.dtype, self._storage = dtype, torch.empty(0, dtype=dtype)

    def flat(self, elements: int) -> torch.Tensor:
        """At least `elements` elements (views of its start are contiguous in any shape)."""
        if len(self._storage) < elements:
            self._storage = torch.empty(elements, dtype=self.dtype)
        return self._storage

    def shaped(self, rows: int, cols: int) -> torch.Tensor:
        """A contiguous [rows, cols] view of the buffer."""
        return self.flat(rows * cols)[: rows * cols].view(rows, cols)


class ScreenedProjection:
    """The fp32 vocabulary projection and its maximum per document, screened in bf16 (see the module docstring).

    Args:
        weight: [vocab, hidden] fp32 projection weights.
        bias: [vocab] fp32 bias.
    """

    compute = "fp32"
    whole_vocabulary = True

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight = weight.detach().float().contiguous().numpy()
        self.bias = bias.detach().float().contiguous().numpy()
        self.weight_t = weight.detach().to(torch.bfloat16).t().contiguous()  # [hidden, vocab]: column tiles
        self.norms = np.linalg.norm(self.weight.astype(np.float64), axis=1).astype(np.float32)
        self._buffer = ReusedBuffer(torch.bfloat16)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The fp32 hidden states, contiguous (the candidates are computed from them)."""
        return x.float().contiguous()

    def pool(self, x: torch.Tensor, offsets: np.ndarray, token_tile: int = TOKEN_TILE,
             vocab_tile: int = VOCAB_TILE) -> torch.Tensor:
        """relu of the max over each document's tokens of the logits, exact fp32 on every term that can be > 0.

        Args:
            x: [n, hidden] fp32 packed tokens of the batch.
            offsets: [documents + 1] int64 token offsets of the documents.
            token_tile, vocab_tile: tile of the bf16 screening product.

        Returns:
            [documents, vocab] float32, zero where the maximum is not positive.
        """
        ptr, cols, maxima = self.pool_sparse(x, offsets, token_tile, vocab_tile)
        dense = np.zeros((len(offsets) - 1, len(self.bias)), dtype=np.float32)
        dense[np.repeat(np.arange(len(offsets) - 1), np.diff(ptr)), cols] = maxima
        return torch.from_numpy(dense).relu_()

    def pool_sparse(self, x: torch.Tensor, offsets: np.ndarray, token_tile: int = TOKEN_TILE,
                    vocab_tile: int = VOCAB_TILE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`pool` as the candidate terms of each document and their exact maxima (positive or not).

        Args:
            x, offsets, token_tile, vocab_tile: as `pool`.

        Returns:
            (ptr, cols, maxima): document d's candidates are cols[ptr[d] : ptr[d + 1]] (int32, ascending) with the
            fp32 max over its tokens of x . w + b in maxima; every other term's maximum is negative.
        """
        docs, vocab = len(offsets) - 1, len(self.bias)
        if len(x) * vocab <= token_tile * vocab_tile:
            vocab_tile = vocab  # a query: one product over the whole vocabulary instead of a few small ones
        x = x.float().contiguous()
        xb = x.to(torch.bfloat16)
        keys = np.empty((docs, vocab), dtype=np.int16)
        for v in range(0, vocab, vocab_tile):
            stop = min(v + vocab_tile, vocab)
            tile_keys = keys if stop - v == vocab else np.empty((docs, stop - v), dtype=np.int16)
            tile_keys.fill(np.iinfo(np.int16).min)  # contiguous: the kernel vectorises its rows
            for t in range(0, len(xb), token_tile):
                chunk = xb[t : t + token_tile]
                products = torch.mm(chunk, self.weight_t[:, v:stop], out=self._buffer.shaped(len(chunk), stop - v))
                bf16_segment_max_keys_into(products, t, offsets, tile_keys)
            if tile_keys is not keys:
                keys[:, v:stop] = tile_keys
        return _screen_and_compute(bf16_keys_to_fp32(keys), x.numpy(), offsets, self.weight, self.norms, self.bias)
