"""The SPLADE encoder, defined once: text -> sparse vector over the model's vocabulary.

The model is a sentence-transformers SparseEncoder (an MLM transformer followed by SPLADE max pooling):
training builds and saves it, indexing and retrieval load it through `SpladeEncoder`.

Inference takes a faster road to the same numbers. sentence-transformers materialises the logits of every
token over the whole vocabulary ([batch, length, 30522] floats, 1 GB for 32 passages of 256 tokens) and then
applies relu, log1p and max to that tensor; on a CPU that is memory traffic, not arithmetic. Because
log1p(relu(x)) is monotone, max over tokens commutes with it, so we project a few tokens at a time onto the
vocabulary, keep the running maximum and apply log1p(relu(.)) once per text. Padding tokens are never
projected. `tests/test_encoder.py` checks the result against `SparseEncoder.encode` itself.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

TOKEN_CHUNK = 64  # tokens projected onto the vocabulary at once: 64 x 30522 floats stay in cache


def document_text(title: str | None, text: str) -> str:
    """How a document with a title is shown to the model (the BEIR convention: title, space, text)."""
    title = (title or "").strip()
    return f"{title} {text}".strip() if title else text


def load_sparse_encoder(model_path: str | Path, max_length: int = 256, device: str | None = None):
    """A SparseEncoder from a sentence-transformers SparseEncoder folder or a plain MaskedLM checkpoint."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    model_path = Path(model_path)
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
    """Token strings in id order; ids without a token (never in BERT vocabularies) get a placeholder."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    return [by_id.get(i, f"[id{i}]") for i in range(max(by_id) + 1)]


def vocabulary_hash(vocab: Sequence[str]) -> str:
    """A short fingerprint of the vocabulary: indexes and queries must agree on it."""
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()[:16]


class SpladeEncoder:
    """Encodes queries and documents into scipy CSR matrices (float32) over the model's vocabulary."""

    def __init__(
        self,
        model_path: str | Path,
        query_max_length: int = 64,
        doc_max_length: int = 256,
        batch_size: int = 32,
        device: str | None = None,
    ):
        self.model_path = str(model_path)
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_sparse_encoder(model_path, max_length=max(query_max_length, doc_max_length), device=self.device)
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.mlm = self.model[0].auto_model
        self.vocab = vocabulary(self.tokenizer)
        self.vocab_hash = vocabulary_hash(self.vocab)
        self.vocab_size = self.mlm.get_output_embeddings().weight.shape[0]
        if len(self.vocab) != self.vocab_size:
            raise ValueError(
                f"{model_path}: tokenizer has {len(self.vocab)} tokens but the MLM head has {self.vocab_size} outputs"
            )

    def describe(self) -> dict:
        return {
            "model": self.model_path,
            "vocab_size": self.vocab_size,
            "vocab_hash": self.vocab_hash,
            "query_max_length": self.query_max_length,
            "doc_max_length": self.doc_max_length,
        }

    def encode_queries(self, texts: Sequence[str], progress: bool = False) -> sp.csr_matrix:
        """An empty query is an error: it would silently match nothing (or everything)."""
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"query {i} is empty: SPLADE needs at least one token to encode")
        return self.encode(texts, self.query_max_length, progress=progress, what="queries")

    def encode_documents(self, texts: Sequence[str], progress: bool = False) -> sp.csr_matrix:
        """Empty documents exist in real collections (Cranfield has some): they are encoded as the model sees them."""
        return self.encode(texts, self.doc_max_length, progress=progress, what="documents")

    def encode(self, texts: Sequence[str], max_length: int, progress: bool = False, what: str = "texts") -> sp.csr_matrix:
        """Batches texts by token length (less padding), encodes them and returns rows in input order."""
        texts = list(texts)
        if not texts:
            return sp.csr_matrix((0, self.vocab_size), dtype=np.float32)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        rows: list[sp.csr_matrix] = []
        batches = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"encoding {what}", unit="batch")
        for start in batches:
            batch = [texts[i] for i in order[start : start + self.batch_size]]
            rows.append(sp.csr_matrix(self._encode_batch(batch, max_length)))
        stacked = sp.vstack(rows, format="csr")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        out = stacked[inverse]
        out.sort_indices()
        return out.astype(np.float32)

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str], max_length: int) -> np.ndarray:
        features = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        features = {k: v.to(self.device) for k, v in features.items()}
        head = self.mlm.get_output_embeddings()
        with _vocab_projection_removed(self.mlm):
            hidden = self.mlm(**features).logits  # the head's input: transformed hidden states [B, L, H]
        mask = features["attention_mask"].bool()
        weight_t, bias = head.weight.t(), head.bias
        pooled = torch.empty(len(texts), weight_t.shape[1], dtype=torch.float32, device=self.device)
        for i in range(len(texts)):
            tokens = hidden[i][mask[i]]
            best = None
            for c in range(0, tokens.shape[0], TOKEN_CHUNK):
                chunk = tokens[c : c + TOKEN_CHUNK]
                logits = (torch.addmm(bias, chunk, weight_t) if bias is not None else chunk @ weight_t).amax(0)
                best = logits if best is None else torch.maximum(best, logits)
            pooled[i] = best
        return pooled.relu_().log1p_().float().cpu().numpy()


class _Identity(nn.Module):
    def forward(self, x):
        return x


@contextlib.contextmanager
def _vocab_projection_removed(mlm: nn.Module):
    """Temporarily replace the MLM head's vocabulary projection by the identity, wherever the architecture keeps it."""
    head = mlm.get_output_embeddings()
    for parent in mlm.modules():
        for name, child in parent.named_children():
            if child is head:
                setattr(parent, name, _Identity())
                try:
                    yield
                finally:
                    setattr(parent, name, head)
                return
    raise ValueError(f"{type(mlm).__name__}: cannot find the vocabulary projection of the MLM head")


def iter_batches(items: Iterable, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
