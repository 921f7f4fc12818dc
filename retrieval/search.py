"""Retrieval: encode queries with the index's model, search the index, return or write a TREC run."""
from __future__ import annotations

import time
from typing import Sequence

from contracts.trec import write_run


def retrieve(encoder, index, queries: Sequence[tuple[str, str]], k: int = 1000, progress: bool = True,
             vectors=None, **search_options) -> dict[str, list[tuple[str, float]]]:
    """{qid: [(doc id, score), ...] best first} for (qid, text) queries.

    `encoder` is a SpladeEncoder, `index` anything with check_vocabulary() and search() (numba or Lucene).
    `vectors`, when given, are the queries already encoded by `encoder` (rows in the order of `queries`).
    `search_options` go to index.search (the numba index: method="pruned" | "exhaustive", alpha).
    """
    index.check_vocabulary(encoder.vocab_hash, encoder.vocab_size)
    qids = [qid for qid, _ in queries]
    started = time.perf_counter()
    if vectors is None:
        vectors = encoder.encode_queries([text for _, text in queries], progress=progress)
    encoded = time.perf_counter()
    hits = index.search(vectors, k=k, **search_options)
    searched = time.perf_counter()
    if progress and qids:
        print(f"retrieved top-{k} for {len(qids):,} queries: encoding {encoded - started:.1f} s, "
              f"search {1000 * (searched - encoded) / len(qids):.2f} ms/query")
    return dict(zip(qids, hits))


def retrieve_to_file(encoder, index, queries, output, k: int = 1000, tag: str = "splade", progress: bool = True,
                     **search_options) -> dict:
    results = retrieve(encoder, index, queries, k=k, progress=progress, **search_options)
    write_run(output, results, tag=tag)
    return results
