"""Hard negatives mined with this project's own index: encode the corpus, build the impact index, search.

The encoded corpus and the index are kept in the work folder (both resumable and reused), and the encoded vectors
double as the teacher's document vectors when the teacher is the same SPLADE model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from indexing.numba_index.build import build_index
from indexing.numba_index.index import ImpactIndex
from indexing.encode import encode_corpus
from retrieval.search import retrieve


def mine_with_splade(
    encoder,
    docs: Iterable[tuple[str, str]],
    queries: Sequence[tuple[str, str]],
    work_dir: str | Path,
    depth: int = 50,
    num_docs: int | None = None,
) -> dict[str, list[str]]:
    """{qid: top-`depth` doc ids, best first} (positives included: the caller filters them)."""
    work_dir = Path(work_dir)
    encoded_dir, index_dir = work_dir / "encoded", work_dir / "index"
    encode_corpus(encoder, docs, encoded_dir, total=num_docs)
    if (index_dir / "manifest.json").exists():
        index = ImpactIndex.load(index_dir)
    else:
        index = build_index(encoded_dir, index_dir)
    results = retrieve(encoder, index, list(queries), k=depth)
    return {qid: [doc_id for doc_id, _ in hits] for qid, hits in results.items()}
