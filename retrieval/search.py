"""Retrieval: encode queries with the index's model, search the index, return or write a TREC run."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import scipy.sparse as sp

from contracts.trec import write_run
from indexing.base import SearchableIndex, empty_query_rows

logger = logging.getLogger(__name__)

__all__ = ["retrieve", "retrieve_to_file"]

Ranking = list[tuple[str, float]]


def retrieve(encoder, index: SearchableIndex, queries: Sequence[tuple[str, str]], k: int = 1000, progress: bool = True,
             vectors: sp.csr_matrix | None = None, **search_options) -> dict[str, Ranking]:
    """The top k documents of each query, best first.

    Args:
        encoder: a SpladeEncoder (indexing.encoder) of the index's model.
        index: any back end's loaded index (indexing.base.SearchableIndex: numba or Lucene).
        queries: (qid, text) pairs.
        k: documents per query.
        progress: a bar while encoding, and one line of timings (logged at INFO).
        vectors: the queries already encoded by `encoder` (rows in the order of `queries`); encoded here if None.
        search_options: passed to index.search (the numba index: method="auto" | "pruned" | "exhaustive", alpha).

    Returns:
        {qid: [(doc id, score), ...]}.

    Raises:
        ValueError: the encoder's vocabulary is not the index's, or a query has no content: no token but special and
            unknown ones (only zero-width spaces or emoji, say), or no positive weight once quantised. Such a query
            would match documents on the special tokens' weights alone, so its "hits" would mean nothing; the
            message names the query.
    """
    index.check_vocabulary(encoder.vocab_hash, encoder.vocab_size)
    qids = [qid for qid, _ in queries]
    _refuse_contentless(encoder, queries)
    started = time.perf_counter()
    if vectors is None:
        vectors = encoder.encode_queries([text for _, text in queries], progress=progress)
    encoded = time.perf_counter()
    quantised = index.quantize_queries(vectors)
    empty = empty_query_rows(quantised)
    if empty.size:
        qid, text = queries[int(empty[0])]
        raise ValueError(f"query {qid} ({text!r}): its encoding has no positive weight at the index's scale "
                         f"{index.scale:.4g}, so it cannot match anything; {empty.size} such queries in all")
    hits = index.search(quantised, k=k, quantized=True, **search_options)
    searched = time.perf_counter()
    if progress and qids:
        logger.info("retrieved top-%d for %s queries: encoding %.1f s, search %.2f ms/query", k, f"{len(qids):,}",
                    encoded - started, 1000 * (searched - encoded) / len(qids))
    return dict(zip(qids, hits))


def _refuse_contentless(encoder, queries: Sequence[tuple[str, str]]) -> None:
    """A query whose text gives the model no token of its own (empty after the tokenizer, or only [UNK]).

    WHY here and not by weight alone: SPLADE pools over [CLS] and [SEP] too, so such a query still gets a
    handful of positive weights, the same for every content-less query, and would rank documents by them.
    """
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None or not queries:
        return
    unknown = getattr(tokenizer, "unk_token_id", None)
    token_ids = tokenizer([text for _, text in queries], add_special_tokens=False)["input_ids"]
    for (qid, text), ids in zip(queries, token_ids):
        if all(token == unknown for token in ids):
            what = "only unknown tokens" if ids else "no token at all"
            raise ValueError(f"query {qid} ({text!r}) has no content for the model: its text gives {what} "
                             f"(zero-width or control characters, or symbols outside the vocabulary); remove it or "
                             f"rewrite it")


def retrieve_to_file(encoder, index: SearchableIndex, queries: Sequence[tuple[str, str]], output: str | Path,
                     k: int = 1000, tag: str = "splade", progress: bool = True, **search_options) -> dict[str, Ranking]:
    """`retrieve`, then the run written to `output` as a TREC file (atomically; `.gz` compresses).

    Args:
        encoder, index, queries, k, progress, search_options: as for `retrieve`.
        output: the run file to write.
        tag: the run's name in the TREC file's last column.

    Returns:
        What `retrieve` returns.

    Raises:
        ValueError: as `retrieve`, or a tag that the TREC format cannot hold (nothing is written then).
    """
    results = retrieve(encoder, index, queries, k=k, progress=progress, **search_options)
    write_run(output, results, tag=tag)
    return results
