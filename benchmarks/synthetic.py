"""Seeded SPLADE-like synthetic collections with topical structure.

WHY topics: documents drawn independently from one term distribution all look alike, the k-th best score stays
low and no pruning method can skip anything (ANCHORS.md). Real SPLADE vectors are skewed: a few documents share
many of a query's terms strongly. Here every document and query is drawn around a latent topic (a few hundred
mid-frequency terms with a Zipf law of their own) plus background terms from the global Zipf popularity, so the
query terms are popular (long posting lists, as in real SPLADE) and a handful of documents match them well.

Shapes: 30,522-term vocabulary, uint8 impacts (log-normal, topical terms heavier), document non-zeros
log-normal around 120 with a long tail, queries of about 25 ("light") and 45 ("heavy") non-zeros.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

VOCAB = 30_522


@dataclass(frozen=True)
class SyntheticSpec:
    """The seeded synthetic collection's shape: sizes, non-zeros per vector, topics and skew (Zipf). The defaults
    are MS MARCO-like SPLADE statistics at 1M documents; the same spec always draws the same vectors."""

    num_docs: int = 1_000_000
    num_queries: int = 1000
    vocab: int = VOCAB
    doc_nnz: float = 120.0
    light_nnz: float = 25.0
    heavy_nnz: float = 45.0
    topics: int = 2000
    terms_per_topic: int = 400
    topic_share: float = 0.5  # fraction of a document's / query's terms drawn from its topic
    zipf: float = 1.0
    seed: int = 42


@dataclass
class _Model:
    global_cdf: np.ndarray
    topic_terms: np.ndarray  # [topics, terms_per_topic]
    topic_cdf: np.ndarray  # [terms_per_topic]


def _model(spec: SyntheticSpec) -> _Model:
    rng = np.random.default_rng(spec.seed)
    rank = np.arange(1, spec.vocab + 1, dtype=np.float64)
    term_of_rank = rng.permutation(spec.vocab).astype(np.int32)
    popularity = np.empty(spec.vocab)
    popularity[term_of_rank] = 1.0 / (rank + 10.0) ** spec.zipf
    global_cdf = np.cumsum(popularity / popularity.sum())
    # Topic vocabularies favour popular terms, flattened so that topics differ from each other.
    flat = popularity ** 0.5
    flat /= flat.sum()
    topic_terms = np.empty((spec.topics, spec.terms_per_topic), dtype=np.int32)
    for t in range(spec.topics):
        topic_terms[t] = rng.choice(spec.vocab, size=spec.terms_per_topic, replace=False, p=flat)
    within = 1.0 / (np.arange(1, spec.terms_per_topic + 1) + 2.0) ** 0.8
    return _Model(global_cdf, topic_terms, np.cumsum(within / within.sum()))


@nb.njit(cache=True)
def _draw(seed, n_rows, mean_nnz, sigma_nnz, max_nnz, topic_share, global_cdf, topic_terms, topic_cdf,
          topic_mu, background_mu, impact_sigma, vocab):
    np.random.seed(seed)
    n_topics = topic_terms.shape[0]
    lengths = np.empty(n_rows, dtype=np.int64)
    mu = np.log(mean_nnz) - 0.5 * sigma_nnz * sigma_nnz
    for i in range(n_rows):
        lengths[i] = min(max_nnz, max(1, int(np.exp(np.random.normal(mu, sigma_nnz)))))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    indices = np.empty(lengths.sum(), dtype=np.int32)
    data = np.empty(lengths.sum(), dtype=np.float32)
    weight = np.zeros(vocab, dtype=np.float64)
    present = np.empty(max_nnz, dtype=np.int32)
    o = 0
    for i in range(n_rows):
        topic = np.random.randint(0, n_topics)
        n_present = 0
        attempts = 0
        while n_present < lengths[i] and attempts < 4 * lengths[i]:
            attempts += 1
            if np.random.random() < topic_share:
                j = np.searchsorted(topic_cdf, np.random.random())
                t = topic_terms[topic, min(j, topic_terms.shape[1] - 1)]
                w = np.exp(np.random.normal(topic_mu, impact_sigma))
            else:
                t = min(np.searchsorted(global_cdf, np.random.random()), vocab - 1)
                w = np.exp(np.random.normal(background_mu, impact_sigma))
            if weight[t] == 0.0:
                present[n_present] = t
                n_present += 1
            weight[t] = max(weight[t], w)
        sorted_terms = np.sort(present[:n_present])
        for j in range(n_present):
            t = sorted_terms[j]
            indices[o] = t
            data[o] = min(255.0, max(1.0, np.floor(weight[t] + 0.5)))
            weight[t] = 0.0
            o += 1
        indptr[i + 1] = o
    return indptr, indices[:o], data[:o]


def documents(spec: SyntheticSpec, model: _Model | None = None) -> sp.csr_matrix:
    """[num_docs, vocab] CSR float32 holding integer impacts 1..255."""
    model = model or _model(spec)
    parts = [document_chunk(spec, c, min(CHUNK, spec.num_docs - start), model)
             for c, start in enumerate(range(0, spec.num_docs, CHUNK))]
    return sp.vstack(parts, format="csr")


CHUNK = 100_000  # documents drawn per seed: chunk c of any collection of the same spec is the same matrix


def document_chunk(spec: SyntheticSpec, number: int, rows: int = CHUNK, model: _Model | None = None) -> sp.csr_matrix:
    """Documents number * CHUNK ... of the collection (`rows` of them; fewer than CHUNK only for the last chunk),
    drawn alone: a collection of any size is written chunk by chunk without holding it (benchmarks/scale.py)."""
    model = model or _model(spec)
    indptr, indices, data = _draw(spec.seed * 1000 + number, rows, spec.doc_nnz, 0.55, 1024, spec.topic_share,
                                  model.global_cdf, model.topic_terms, model.topic_cdf,
                                  np.log(60.0), np.log(20.0), 0.6, spec.vocab)
    return sp.csr_matrix((data, indices, indptr), shape=(rows, spec.vocab))


def queries(spec: SyntheticSpec, heavy: bool, model: _Model | None = None) -> sp.csr_matrix:
    """[num_queries, vocab] CSR float32 with integer weights; light ~25 non-zeros, heavy ~45."""
    model = model or _model(spec)
    indptr, indices, data = _draw(spec.seed * 1000 + 999 - int(heavy), spec.num_queries,
                                  spec.heavy_nnz if heavy else spec.light_nnz, 0.3, 256, spec.topic_share,
                                  model.global_cdf, model.topic_terms, model.topic_cdf,
                                  np.log(60.0), np.log(25.0), 0.6, spec.vocab)
    return sp.csr_matrix((data, indices, indptr), shape=(spec.num_queries, spec.vocab))


def collection(spec: SyntheticSpec) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """(documents, light queries, heavy queries), the same arrays for the same spec on every machine."""
    model = _model(spec)
    return documents(spec, model), queries(spec, False, model), queries(spec, True, model)

