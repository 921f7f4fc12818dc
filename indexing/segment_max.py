"""The running maximum per document over a tile of vocabulary logits, on a CPU.

The encoder projects the packed real tokens of a batch (documents one after another) onto the vocabulary tile by
tile and keeps each document's maximum. torch has no fast CPU segment maximum: `index_reduce_(..., "amax")`
scatters row by row (17 ms for 6,077 tokens x 8,192 terms, fp32), `segment_reduce` takes 140 ms, and its bf16
`amax` is slower than fp32's (the issue measured 174 against 56 ms). This kernel reads each document's rows once,
in place, vectorised over the vocabulary: 5.7 ms on that tile in fp32 and 3.9 ms on bf16 logits.

bf16 logits are reduced as their int16 bit patterns. A non-negative bf16 has a non-negative int16 pattern in the
same order; a negative one has a negative pattern. So the int16 maximum is the bf16 maximum whenever that is
positive, and negative exactly when it is not, which relu maps to 0 either way: `relu_bf16_bits_to_fp32` turns the
maxima into the fp32 values relu(max) bit for bit, with no fp32 copy of the tile ever made.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch

__all__ = ["bf16_keys_to_fp32", "bf16_segment_max_keys_into", "relu_bf16_bits_to_fp32", "segment_max_into"]


@nb.njit(inline="always")
def _value(x):
    return x


@nb.njit(inline="always")
def _bf16_order_key(bits):
    """An int16 key in the order of the bf16 value of `bits` (see `bf16_segment_max_keys_into`)."""
    return bits ^ ((bits >> np.int16(15)) & np.int16(0x7FFF))


@nb.njit(cache=True, nogil=True)
def _segment_max_into(tile, first_row, offsets, out, key):
    """out[d, j] = max(out[d, j], key(tile[i, j])) over the tile's rows i of document d; `key` is a jitted function
    (numba compiles one loop per key, inlined)."""
    rows = tile.shape[0]
    last_row = first_row + rows
    d_lo = np.searchsorted(offsets, first_row, side="right") - 1
    d_hi = np.searchsorted(offsets, last_row, side="left")
    for d in range(d_lo, d_hi):
        lo = max(offsets[d], first_row) - first_row
        hi = min(offsets[d + 1], last_row) - first_row
        target = out[d]
        for i in range(lo, hi):
            row = tile[i]
            for j in range(row.shape[0]):
                k = key(row[j])
                if k > target[j]:
                    target[j] = k


def segment_max_into(tile: torch.Tensor, first_row: int, offsets: np.ndarray, out: np.ndarray) -> None:
    """out[d] = max(out[d], the rows of document d in this tile), for every document the tile touches.

    Args:
        tile: [rows, columns] logits (fp32, or bf16 reduced as int16 bit patterns; see the module's docstring) of
            the packed tokens first_row .. first_row + rows.
        first_row: the tile's first token in the batch.
        offsets: [documents + 1] int64, document d owns the batch's tokens offsets[d] .. offsets[d + 1].
        out: [documents, columns] running maxima, C-contiguous (a strided view would not vectorise: 2.6x slower),
            float32 for fp32 tiles, int16 for bf16 ones.
    """
    values = tile.view(torch.int16) if tile.dtype == torch.bfloat16 else tile
    _segment_max_into(values.numpy(), first_row, offsets, out, _value)


def relu_bf16_bits_to_fp32(bits: np.ndarray) -> torch.Tensor:
    """relu of bf16 values given as int16 bit patterns, as float32 (exact: a bf16 is the top half of an fp32).

    Args:
        bits: int16 bf16 bit patterns.

    Returns:
        A float32 tensor of the same shape: max(value, 0).
    """
    widened = torch.from_numpy(bits).clamp_(min=0).to(torch.int32)
    return widened.bitwise_left_shift_(16).view(torch.float32)


def bf16_segment_max_keys_into(tile: torch.Tensor, first_row: int, offsets: np.ndarray, out: np.ndarray) -> None:
    """`segment_max_into` for bf16 tiles whose negative maxima matter too, kept as order-preserving int16 keys.

    A bf16 bit pattern read as int16 is in value order among non-negative values only; flipping the 15 low bits of
    the negative ones (`key = bits ^ ((bits >> 15) & 0x7FFF)`, its own inverse) puts every value in order.

    Args:
        tile: [rows, columns] bf16 logits of the packed tokens first_row .. first_row + rows.
        first_row: the tile's first token in the batch.
        offsets: [documents + 1] int64 token offsets of the documents.
        out: [documents, columns] int16 keys of the running maxima, C-contiguous, started at -32768.
    """
    _segment_max_into(tile.view(torch.int16).numpy(), first_row, offsets, out, _bf16_order_key)


def bf16_keys_to_fp32(keys: np.ndarray) -> np.ndarray:
    """The float32 values of `bf16_segment_max_keys_into`'s keys (exact).

    Args:
        keys: int16 keys.

    Returns:
        float32 array of the same shape.
    """
    bits = (keys ^ ((keys >> 15) & np.int16(0x7FFF))).astype(np.int32)
    return np.left_shift(bits, 16).view(np.float32)
