"""BM25 hard negatives through Pyserini (Lucene), where a Java runtime is available.

The Lucene index is built once in the work folder (its completion marker is written last) and reused.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, Sequence

from contracts.atomic import write_text


def mine_with_bm25(
    docs: Iterable[tuple[str, str]],
    queries: Sequence[tuple[str, str]],
    work_dir: str | Path,
    depth: int = 50,
    k1: float = 0.9,
    b: float = 0.4,
) -> dict[str, list[str]]:
    """{qid: top-`depth` doc ids by BM25 (Anserini defaults k1 0.9, b 0.4), best first}."""
    from indexing.lucene_index.java import start_jvm

    start_jvm()
    from pyserini.index.lucene import LuceneIndexer
    from pyserini.search.lucene import LuceneSearcher

    index_dir = Path(work_dir) / "bm25-index"
    done = Path(work_dir) / "bm25-index.complete"
    if not done.exists():
        if index_dir.exists():
            shutil.rmtree(index_dir)
        index_dir.mkdir(parents=True)
        indexer = LuceneIndexer(str(index_dir), threads=1)
        for doc_id, text in docs:
            indexer.add_doc_dict({"id": doc_id, "contents": text})
        indexer.close()
        write_text(done, "ok\n")
    searcher = LuceneSearcher(str(index_dir))
    searcher.set_bm25(k1, b)
    hits = searcher.batch_search([text for _, text in queries], [qid for qid, _ in queries], k=depth, threads=1)
    return {qid: [h.docid for h in hits.get(qid, [])] for qid, _ in queries}
