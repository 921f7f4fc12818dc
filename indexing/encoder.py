"""The SPLADE encoder, defined once: text -> sparse vector over the model's vocabulary.

The model is a sentence-transformers SparseEncoder (an MLM transformer followed by SPLADE max pooling):
training builds and saves it, indexing and retrieval load it through `SpladeEncoder`.

Inference takes a faster road to the same numbers. sentence-transformers materialises the logits of every
token over the whole vocabulary ([batch, length, 30522] floats, 1 GB for 32 passages of 256 tokens) and then
applies relu, log1p and max to that tensor; on a CPU that is memory traffic, not arithmetic. Because
log1p(relu(x)) is monotone, max over tokens commutes with it, so we

- cut the texts into token-budget batches (sorted by length, so padding stays small),
- run the transformer without its vocabulary projection,
- pack the real tokens of the whole batch ([tokens, hidden]; padding is never projected),
- project them onto the vocabulary in tiles (token tile x vocabulary tile, into one reused buffer) and keep a
  running maximum per document (a segment max: `indexing/segment_max.py` on a CPU, `index_reduce_` on CUDA),
- and apply log1p(relu(.)) once per text.

On a CPU with bf16 matrix instructions, fp32 goes one step further (indexing/screened_projection.py): the projection
runs in bf16 to find the few hundred terms per text that can be positive, with a proven bound on bf16's error, and
exactly those are computed in fp32. The vectors are fp32's within rounding at bf16's speed: most of the encoding's
time was the fp32 projection of every token onto all 30,522 terms.

On CUDA the tiles are as large as the GPU's memory allows (one vocabulary tile, all the batch's tokens): one
matrix product and one segment max per batch instead of hundreds of small kernels. `tests/indexing/test_encoder.py`
checks the result against `SparseEncoder.encode` itself.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from indexing.screened_projection import ReusedBuffer, ScreenedProjection
from indexing.segment_max import relu_bf16_bits_to_fp32, segment_max_into

logger = logging.getLogger(__name__)

__all__ = ["AUTO", "PRECISIONS", "SpladeEncoder", "TokenBudget", "auto_precision", "document_text",
           "has_bf16_matmul", "load_sparse_encoder", "max_pool_packed", "token_budget_batches", "vocabulary",
           "vocabulary_hash"]

PRECISIONS = ("fp32", "bf16", "int8")
# "auto" (opt-in) runs the fastest precision within 0.002 SciFact NDCG@10 of exact fp32: bf16 on a GPU, fp32 on a
# CPU. Measured with `python -m benchmarks.encoding --ndcg` (splade-tiny, 2 idle cores of an AMD EPYC with
# AVX512-BF16, one run; README "Encoding"): NDCG@10 fp32 0.6437, bf16 0.6433, int8 0.6428; against a plain fp32
# torch loop, passages / abstracts / single-query p50, fp32 (screened, below) 2.93x / 2.91x / 2.43x, bf16
# 2.79x / 2.70x / 1.25x, int8 1.82x / 1.57x / 1.68x (benchmarks/results/encoding/cpu-avx512bf16-screened.json).
# fp32 is as fast as bf16 there and exact, so it is also the commands' default. On a CPU without bf16
# instructions bf16 runs reference kernels at 0.03x.
# WHY fp32 is the one default: only fp32 gives a document the same weights whatever is batched beside it
# (within float rounding). bf16 changes them by up to 0.03 (padding and shapes change its rounding) and int8 by up
# to 0.28 (torch's dynamic quantisation scales the activations per batch), so an index would depend on batch sizes,
# on how many workers split the corpus and on where a resumed encoding restarted.
AUTO = "auto"
# fp32 on a CPU with bf16 matrix instructions screens the vocabulary projection in bf16 and computes in fp32 every
# term that can be positive (indexing/screened_projection.py): the same vectors within fp32 rounding, at nearly
# bf16's speed. False: the plain fp32 tiles everywhere.
SCREEN_FP32 = True
CPU_TOKEN_BUDGET = 8192  # padded tokens per batch on a CPU: the body's activations stay in a few MB
CPU_TOKEN_TILE = 1024  # tokens x vocabulary tile of the projection: 1024 x 8192 floats (32 MB), measured fastest
CPU_VOCAB_TILE = 8192
MAX_TEXTS = 512  # rows per batch at most: the pooled [texts, vocabulary] maxima stay under 64 MB
# A CPU batch of at most this many padded tokens runs on one thread (0: never). Off by default. WHY, measured in
# `python -m benchmarks.encoding` (single queries, splade-tiny, 2 cores, fp32, p50): on the idle machine all threads
# took 6.03 ms against 9.04 on one; with other jobs on the cores one thread took 6.80 against 16.77. A server that
# encodes many queries side by side can set it (512 covers any query at 64 tokens).
SINGLE_THREAD_TOKENS = 0


def document_text(title: str | None, text: str) -> str:
    """How a document with a title is shown to the model (the BEIR convention: title, space, text).

    Args:
        title: the document's title, or None.
        text: its body.

    Returns:
        The text the model encodes.
    """
    title = (title or "").strip()
    return f"{title} {text}".strip() if title else text


@contextlib.contextmanager
def _quiet_loading(verbose: bool):
    """Hide transformers' `Loading weights` bar and its load report unless asked: a user cannot act on them."""
    import transformers  # deferred with torch's ecosystem: only a model load needs it

    if verbose:
        yield
        return
    level = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def load_sparse_encoder(model_path: str | Path, max_length: int = 256, device: str | None = None,
                        verbose: bool = False):
    """A SparseEncoder from a sentence-transformers SparseEncoder folder or a plain MaskedLM checkpoint.

    Args:
        model_path: the model folder.
        max_length: tokens kept per text by the SparseEncoder's own `encode`.
        device: torch device (default cpu).
        verbose: show transformers' loading bar and messages.

    Returns:
        A `sentence_transformers.SparseEncoder`.
    """
    # sentence-transformers is deferred: importing it costs seconds that commands without a model do not pay
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    model_path = Path(model_path)
    with _quiet_loading(verbose):
        if (model_path / "modules.json").exists() and _is_sparse_encoder_folder(model_path):
            model = SparseEncoder(str(model_path), device=device or "cpu")
            model.max_seq_length = max_length
            return model
        transformer = Transformer(str(model_path), transformer_task="fill-mask", max_seq_length=max_length)
        return SparseEncoder(modules=[transformer, SpladePooling(pooling_strategy="max")], device=device or "cpu")


def _is_sparse_encoder_folder(path: Path) -> bool:
    modules = json.loads((path / "modules.json").read_text())
    return any("SpladePooling" in m.get("type", "") for m in modules)


def vocabulary(tokenizer) -> list[str]:
    """Token strings in id order; ids without a token (never in BERT vocabularies) get a placeholder.

    Args:
        tokenizer: a Hugging Face tokenizer.

    Returns:
        One string per token id, from 0 to the largest id.
    """
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    return [by_id.get(i, f"[id{i}]") for i in range(max(by_id) + 1)]


def vocabulary_hash(vocab: Sequence[str]) -> str:
    """A short fingerprint of the vocabulary: indexes and queries must agree on it.

    Args:
        vocab: the token strings in id order.

    Returns:
        16 hex digits of the SHA-256 of the tokens joined by newlines.
    """
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()[:16]


# ---- batches -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenBudget:
    """How a batch is filled: padded tokens (rows x longest row) up to `tokens`, and at most `texts` rows."""

    tokens: int = CPU_TOKEN_BUDGET
    texts: int = MAX_TEXTS

    def __post_init__(self):
        if self.tokens < 1 or self.texts < 1:
            raise ValueError(f"a token budget needs tokens >= 1 and texts >= 1, got {self.tokens} and {self.texts}")


def token_budget_batches(lengths: Sequence[int], budget: TokenBudget) -> list[np.ndarray]:
    """Positions of the texts grouped into batches, longest texts first, each within the token budget.

    Sorting by length keeps the padding small; a batch grows while rows x its longest row (the first, since rows
    come longest first) stays within `budget.tokens`. A text longer than the budget alone gets a batch of its own.

    Args:
        lengths: tokens of each text (after truncation).
        budget: the token budget and the most texts per batch.

    Returns:
        Arrays of positions into `lengths`, one per batch, in encoding order.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        rows = max(1, min(budget.texts, budget.tokens // longest))
        batches.append(order[start : start + rows])
        start += rows
    return batches


# ---- the projection and its maximum --------------------------------------------------------------------------


def max_pool_packed(tokens: torch.Tensor, doc_index: torch.Tensor, num_docs: int, projection,
                    vocab_size: int, token_tile: int, vocab_tile: int) -> torch.Tensor:
    """max over each document's tokens of the vocabulary logits, never holding more than one tile of them.

    Args:
        tokens: [n, hidden] the real tokens of a batch, packed, documents one after another.
        doc_index: [n] int64, the row (document) of each token, ascending.
        num_docs: rows of the result.
        projection: a `_Projection`: `projection(x, start, stop, out)` returns the logits of x over vocabulary ids
            [start, stop), written into `out` when it is given.
        vocab_size: columns of the result.
        token_tile, vocab_tile: tile sizes; on a GPU both cover everything (one product, one segment max).

    Returns:
        [num_docs, vocab_size] float32 maxima, before log1p; a maximum that is not positive may come back as 0
        (relu, which the caller applies, does not change it).
    """
    x = projection.inputs(tokens)
    if num_docs == 1 and len(x) <= token_tile and projection.whole_vocabulary \
            and not isinstance(projection, ScreenedProjection):
        # a single short text (a query): one product over the whole vocabulary, one max; its logits fit in a tile
        cpu = x.device.type == "cpu" and projection.compute != "int8"
        logits = projection(x, 0, vocab_size, projection.buffer.shaped(len(x), vocab_size) if cpu else None)
        if logits.dtype == torch.bfloat16 and cpu:  # bf16 amax is slow, int16's is not
            return relu_bf16_bits_to_fp32(logits.view(torch.int16).amax(0, keepdim=True).numpy())
        return logits.float().amax(0, keepdim=True)
    if x.device.type == "cpu":
        if isinstance(projection, ScreenedProjection):  # its own bf16 tiles
            return projection.pool(x, _offsets(doc_index, num_docs))
        return _max_pool_cpu(x, doc_index, num_docs, projection, vocab_size, token_tile, vocab_tile)
    pooled = torch.full((num_docs, vocab_size), -torch.inf, dtype=torch.float32, device=x.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)  # "beta" API note
        for v in range(0, vocab_size, vocab_tile):
            stop = min(v + vocab_tile, vocab_size)
            target = pooled[:, v:stop]
            for t in range(0, len(x), token_tile):
                logits = projection(x[t : t + token_tile], v, stop, None)
                target.index_reduce_(0, doc_index[t : t + token_tile], logits.float(), "amax", include_self=True)
    return pooled


def _max_pool_cpu(x, doc_index, num_docs, projection, vocab_size, token_tile, vocab_tile) -> torch.Tensor:
    """`max_pool_packed` on a CPU: each tile's product goes into one reused buffer (fp32 or bf16) and its
    maximum per document into the running maxima by `segment_max_into`, which reads bf16 as int16 bit patterns."""
    offsets = _offsets(doc_index, num_docs)
    bf16 = projection.compute == "bf16"
    dtype, lowest = (np.int16, np.iinfo(np.int16).min) if bf16 else (np.float32, -np.inf)
    pooled = np.empty((num_docs, vocab_size), dtype=dtype)
    buffer = None  # int8 products come back in their own tensor
    if projection.compute in ("fp32", "bf16"):
        buffer = torch.empty(min(token_tile, max(len(x), 1)), min(vocab_tile, vocab_size), dtype=x.dtype)
    for v in range(0, vocab_size, vocab_tile):
        stop = min(v + vocab_tile, vocab_size)
        maxima = np.full((num_docs, stop - v), lowest, dtype=dtype)  # contiguous rows: the kernel vectorises them
        for t in range(0, len(x), token_tile):
            chunk = x[t : t + token_tile]
            logits = projection(chunk, v, stop, None if buffer is None else buffer[: len(chunk), : stop - v])
            segment_max_into(logits, t, offsets, maxima)
        pooled[:, v:stop] = maxima
    return relu_bf16_bits_to_fp32(pooled) if bf16 else torch.from_numpy(pooled)


def _offsets(doc_index: torch.Tensor, num_docs: int) -> np.ndarray:
    """[num_docs + 1] int64 token offsets of the documents of an ascending doc_index."""
    offsets = np.zeros(num_docs + 1, dtype=np.int64)
    np.cumsum(torch.bincount(doc_index, minlength=num_docs).numpy(), out=offsets[1:])
    return offsets


class _Identity(nn.Module):
    def forward(self, x):
        return x


def _projection_slot(mlm: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the MLM head's vocabulary projection and its attribute name, wherever the architecture
    keeps it."""
    head = mlm.get_output_embeddings()
    for parent in mlm.modules():
        for name, child in parent.named_children():
            if child is head:
                return parent, name
    raise ValueError(f"{type(mlm).__name__}: cannot find the vocabulary projection of the MLM head")


@contextlib.contextmanager
def _vocab_projection_removed(mlm: nn.Module, slot: tuple[nn.Module, str] | None = None):
    """Temporarily replace the MLM head's vocabulary projection by the identity (`slot`: `_projection_slot(mlm)`,
    found once by a caller that runs many batches: the walk over the modules costs 0.1-0.3 ms a query)."""
    parent, name = slot or _projection_slot(mlm)
    head = getattr(parent, name)
    setattr(parent, name, _Identity())
    try:
        yield
    finally:
        setattr(parent, name, head)


class _Projection:
    """The vocabulary projection x @ W.T + b in one precision, tile by tile.

    fp32: `torch.addmm` into the caller's buffer. bf16 / fp16: the weights are cast once, the product's tile is
    converted to fp32 before the maximum (the maximum itself is exact). int8: per-vocabulary-row int8 weights,
    prepacked once per vocabulary tile for fbgemm's dynamic-quantised linear.
    """

    def __init__(self, head: nn.Linear, compute: str, vocab_tile: int):
        weight = head.weight.detach()
        bias = head.bias.detach() if head.bias is not None else torch.zeros(weight.shape[0], device=weight.device)
        self.compute = compute
        self.whole_vocabulary = compute != "int8"  # int8 weights are packed per vocabulary tile
        if compute == "int8":
            self.packed = {}
            for v in range(0, weight.shape[0], vocab_tile):
                w = weight[v : v + vocab_tile].float().contiguous()
                scales = (w.abs().amax(1) / 127.0).clamp_min(1e-12).double()
                q = torch.quantize_per_channel(w, scales, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
                self.packed[v] = torch.ops.quantized.linear_prepack(q, bias[v : v + vocab_tile].float().contiguous())
            return
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[compute]
        self.weight_t = weight.to(dtype).t().contiguous()  # [hidden, vocab]: tiles are column slices
        self.bias = bias.to(dtype)
        self.buffer = ReusedBuffer(dtype)  # a single query's logits on a CPU

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x in the dtype the products take (cast once per batch, not once per tile)."""
        dtype = torch.float32 if self.compute == "int8" else self.weight_t.dtype
        return x.to(dtype).contiguous()

    def __call__(self, x: torch.Tensor, start: int, stop: int, out: torch.Tensor | None) -> torch.Tensor:
        if self.compute == "int8":
            return torch.ops.quantized.linear_dynamic(x, self.packed[start], True)
        w, b = self.weight_t[:, start:stop], self.bias[start:stop]
        return torch.addmm(b, x, w) if out is None else torch.addmm(b, x, w, out=out)


# ---- the encoder ---------------------------------------------------------------------------------------------


class SpladeEncoder:
    """Encodes queries and documents into scipy CSR matrices (float32) over the model's vocabulary.

    Args:
        model_path: a SparseEncoder folder or a plain MaskedLM checkpoint.
        query_max_length, doc_max_length: tokens kept per query and per document.
        batch_size: the most texts in one batch (default: as many as the token budget allows, up to 512).
        device: torch device (default: cuda when there is one, else cpu).
        precision: "fp32" (exact; screened in bf16 on a CPU with bf16 instructions, see the module docstring),
            "bf16" (bf16 matrix products, fp16 on a GPU without bf16; maxima and output in fp32), "int8"
            (dynamically quantised linear layers and projection) or "auto" (`auto_precision`: bf16 on a GPU, fp32
            on a CPU; `precision` then holds the choice).
        token_budget: padded tokens per batch (default: 8,192 on a CPU, sized to the free memory on a GPU).
        verbose: show transformers' loading bar and messages.

    Raises:
        ValueError: an unknown precision, a batch size or token budget below 1, or a tokenizer and MLM head of
            different sizes.
    """

    def __init__(
        self,
        model_path: str | Path,
        query_max_length: int = 64,
        doc_max_length: int = 256,
        batch_size: int | None = None,
        device: str | None = None,
        precision: str = "fp32",
        token_budget: int | None = None,
        verbose: bool = False,
    ):
        if precision not in PRECISIONS + (AUTO,):
            raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS + (AUTO,))}")
        for name, value in (("batch_size", batch_size), ("token_budget", token_budget),
                            ("query_max_length", query_max_length), ("doc_max_length", doc_max_length)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be 1 or more, got {value}")
        self.model_path = str(model_path)
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        precision = auto_precision(self.device) if precision == AUTO else precision
        self.precision = precision
        self.model = load_sparse_encoder(model_path, max_length=max(query_max_length, doc_max_length),
                                         device=str(self.device), verbose=verbose)
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.mlm = self.model[0].auto_model
        self.vocab = vocabulary(self.tokenizer)
        self.vocab_hash = vocabulary_hash(self.vocab)
        head = self.mlm.get_output_embeddings()
        self._projection_slot = _projection_slot(self.mlm)
        self.vocab_size = head.weight.shape[0]
        if len(self.vocab) != self.vocab_size:
            raise ValueError(
                f"{model_path}: tokenizer has {len(self.vocab)} tokens but the MLM head has {self.vocab_size} outputs"
            )
        cuda = self.device.type == "cuda"
        self.token_tile = CPU_TOKEN_TILE
        self.vocab_tile = self.vocab_size if cuda else CPU_VOCAB_TILE
        self.budget = TokenBudget(token_budget or (_cuda_token_budget(self.device, self.vocab_size) if cuda
                                                   else CPU_TOKEN_BUDGET), batch_size or MAX_TEXTS)
        if cuda:
            self.token_tile = self.budget.tokens  # all the batch's tokens in one product
        self.body_dtype = None  # autocast dtype of the transformer body, None = as loaded
        compute = precision
        if precision == "bf16":
            compute = "bf16" if (not cuda or torch.cuda.is_bf16_supported()) else "fp16"
            self.body_dtype = torch.bfloat16 if compute == "bf16" else torch.float16
        elif precision == "int8":
            if cuda:
                raise ValueError("precision int8 runs on a CPU (fbgemm); on a GPU use bf16")
            self._quantize_body()
        self.projection = _Projection(head, compute, self.vocab_tile)
        if compute == "fp32" and not cuda and SCREEN_FP32 and has_bf16_matmul():
            self.projection = ScreenedProjection(head.weight, self.projection.bias)

    def _quantize_body(self) -> None:
        """int8 weights for the transformer's Linear layers (torch dynamic quantisation), the projection apart."""
        with warnings.catch_warnings(), _vocab_projection_removed(self.mlm):
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning)
            torch.ao.quantization.quantize_dynamic(self.mlm, {nn.Linear}, dtype=torch.qint8, inplace=True)

    def describe(self) -> dict:
        """What an encoded folder records of its encoder (a folder is resumed only with the same).

        Returns:
            {"model", "vocab_size", "vocab_hash", "query_max_length", "doc_max_length", "precision"}.
        """
        return {
            "model": self.model_path,
            "vocab_size": self.vocab_size,
            "vocab_hash": self.vocab_hash,
            "query_max_length": self.query_max_length,
            "doc_max_length": self.doc_max_length,
            "precision": self.precision,
        }

    def encode_queries(self, texts: Sequence[str], progress: bool = False) -> sp.csr_matrix:
        """Queries at `query_max_length` tokens.

        Args:
            texts: the query texts.
            progress: a tqdm bar over the queries.

        Returns:
            [queries, vocabulary] CSR float32 weights, in input order.

        Raises:
            ValueError: an empty query: it would silently match nothing (or everything).
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"query {i} is empty: SPLADE needs at least one token to encode")
        return self.encode(texts, self.query_max_length, progress=progress, what="queries")

    def encode_documents(self, texts: Sequence[str], progress: bool = False, on_batch=None) -> sp.csr_matrix:
        """Documents at `doc_max_length` tokens; empty documents exist in real collections (Cranfield has some)
        and are encoded as the model sees them.

        Args:
            texts: the document texts (`document_text` of title and body).
            progress: a tqdm bar over the documents.
            on_batch: called with the number of texts after each batch (encode_corpus's bar moves per batch).

        Returns:
            [documents, vocabulary] CSR float32 weights, in input order.
        """
        return self.encode(texts, self.doc_max_length, progress=progress, what="documents", on_batch=on_batch)

    def encode(self, texts: Sequence[str], max_length: int, progress: bool = False, what: str = "texts",
               on_batch=None) -> sp.csr_matrix:
        """Encode texts in token-budget batches and return their rows in input order.

        Args:
            texts: the texts.
            max_length: tokens kept per text.
            progress: a tqdm bar over the texts.
            what: the bar's noun.
            on_batch: called with the number of texts after each batch (a caller's own progress bar).

        Returns:
            [len(texts), vocab_size] float32 CSR, indices sorted.
        """
        texts = list(texts)
        if not texts:
            return sp.csr_matrix((0, self.vocab_size), dtype=np.float32)
        if len(texts) == 1 and not progress and on_batch is None:  # a single query: straight into tensors
            return self._encode_padded(self.tokenizer(texts, truncation=True, max_length=max_length,
                                                      return_tensors="pt"))
        features = self.tokenizer(texts, truncation=True, max_length=max_length)
        lengths = [len(ids) for ids in features["input_ids"]]
        batches = token_budget_batches(lengths, self.budget)
        bar = None
        if progress:
            from tqdm.auto import tqdm  # deferred: only a bar needs it

            bar = tqdm(total=len(texts), desc=f"encoding {what}", unit=what[:-1] if what.endswith("s") else what)
        rows: list[sp.csr_matrix] = []
        for batch in batches:
            selected = {key: [values[i] for i in batch] for key, values in features.items()}
            rows.append(self._encode_features(selected))
            if bar is not None:
                bar.update(len(batch))
            if on_batch is not None:
                on_batch(len(batch))
        if bar is not None:
            bar.close()
        stacked = sp.vstack(rows, format="csr")
        order = np.concatenate(batches)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        out = stacked[inverse]
        out.sort_indices()
        return out.astype(np.float32, copy=False)

    def _encode_features(self, features: dict) -> sp.csr_matrix:
        return self._encode_padded(self.tokenizer.pad(features, padding=True, return_tensors="pt"))

    @torch.inference_mode()
    def _encode_padded(self, padded) -> sp.csr_matrix:
        padded = {k: v.to(self.device) for k, v in padded.items()}
        small = self.device.type == "cpu" and padded["input_ids"].numel() <= SINGLE_THREAD_TOKENS
        with _torch_threads(1) if small else contextlib.nullcontext():
            if isinstance(self.projection, ScreenedProjection):  # its candidates are the CSR's columns already
                tokens, offsets = self._packed_tokens(padded)
                ptr, cols, values = self.projection.pool_sparse(tokens, offsets)
                return _csr_of_maxima(ptr, cols, values, self.vocab_size)
            pooled = self.pool(padded)
            pooled.relu_().log1p_()
        return _to_csr(pooled)

    def _packed_tokens(self, features: dict) -> tuple[torch.Tensor, np.ndarray]:
        """The transformed hidden states of a padded batch's real tokens, packed ([tokens, hidden], each
        document's tokens together), and the documents' token offsets."""
        mask = features["attention_mask"].bool()
        autocast = (torch.autocast(self.device.type, dtype=self.body_dtype) if self.body_dtype is not None
                    else contextlib.nullcontext())
        with _vocab_projection_removed(self.mlm, self._projection_slot), autocast:
            hidden = self.mlm(**features).logits  # the head's input: transformed hidden states [B, L, H]
        offsets = np.zeros(mask.shape[0] + 1, dtype=np.int64)
        np.cumsum(mask.sum(1).cpu().numpy(), out=offsets[1:])
        return hidden[mask], offsets

    def pool(self, features: dict) -> torch.Tensor:
        """Max-pooled logits [texts, vocabulary] (fp32, before log1p) of a padded, tokenised batch.

        Args:
            features: the tokenizer's output on the device ("input_ids", "attention_mask", ...).

        Returns:
            A float32 tensor [texts, vocabulary]; a maximum that is not positive may come back as 0.
        """
        tokens, offsets = self._packed_tokens(features)
        doc_index = torch.repeat_interleave(torch.arange(len(offsets) - 1, device=tokens.device),
                                            torch.from_numpy(np.diff(offsets)).to(tokens.device))
        return max_pool_packed(tokens, doc_index, len(offsets) - 1, self.projection, self.vocab_size,
                               self.token_tile, self.vocab_tile)


def auto_precision(device: torch.device | str) -> str:
    """What precision "auto" runs on `device`: "bf16" on a GPU, "fp32" on a CPU (see AUTO above: on a CPU with bf16
    matrix instructions fp32 is screened in bf16 and as fast as bf16, elsewhere bf16 is the slower).

    Args:
        device: a torch device.

    Returns:
        "bf16" or "fp32".
    """
    if torch.device(device).type == "cuda":
        return "bf16"  # fp16 where the GPU lacks bf16 (SpladeEncoder's "bf16" does that)
    return "fp32"


def has_bf16_matmul() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX, as oneDNN reports them); without them
    torch's bf16 products run reference kernels, about 30x slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


@contextlib.contextmanager
def _torch_threads(n: int):
    """torch's intra-op threads set to n for the block (switching costs well under a microsecond)."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _csr_of_maxima(ptr: np.ndarray, cols: np.ndarray, maxima: np.ndarray, vocab_size: int) -> sp.csr_matrix:
    """SPLADE weights log1p(relu(max)) as CSR, from the maxima of the candidate terms of each row (ptr, cols)."""
    weights = np.log1p(np.maximum(maxima, 0, out=maxima), out=maxima)
    keep = weights > 0
    counts = np.add.reduceat(keep, ptr[:-1]) if len(keep) else np.zeros(len(ptr) - 1, dtype=np.int64)
    counts[ptr[:-1] == ptr[1:]] = 0  # reduceat gives an empty row the next row's first value
    indptr = np.zeros(len(ptr), dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((weights[keep], cols[keep], indptr), shape=(len(ptr) - 1, vocab_size))


def _to_csr(weights: torch.Tensor) -> sp.csr_matrix:
    """Rows of non-negative weights (mostly zeros) as CSR, built from the non-zeros only."""
    rows, cols = torch.nonzero(weights, as_tuple=True)
    values = weights[rows, cols].float().cpu().numpy()
    counts = torch.bincount(rows, minlength=weights.shape[0]).cpu().numpy()
    indptr = np.zeros(weights.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((values, cols.cpu().numpy().astype(np.int32), indptr), shape=tuple(weights.shape))


def _cuda_token_budget(device: torch.device, vocab_size: int) -> int:
    """Tokens per batch on a GPU: the [tokens, vocabulary] logits in bf16 plus the body's activations take about a
    quarter of the free memory, leaving the rest to the allocator and other work."""
    free, _ = torch.cuda.mem_get_info(device)
    per_token = vocab_size * (2 + 4) + 64 * 1024  # logits (bf16 and their fp32 copy) and body activations
    return int(max(1024, min(262_144, free // 4 // per_token)))
