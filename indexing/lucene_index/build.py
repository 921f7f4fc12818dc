"""Building the Lucene impact index: export the encoded corpus, run Anserini, swap the folder in when complete."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from contracts.atomic import atomic_folder, write_json
from contracts.encoded import check_encoded_ids, open_encoded, read_vocab
from indexing.base import check_bits, check_overwrite, common_manifest, index_of_format, write_folder_files
from indexing.lucene_index.export import EXPORT_DIR, corpus_scale, export_collection
from indexing.lucene_index.index import FORMAT, FORMAT_VERSION, LUCENE_DIR, LuceneImpactIndex
from indexing.lucene_index.java import start_jvm

logger = logging.getLogger(__name__)


def build_lucene_index(encoded_dir: str | Path, index_dir: str | Path, scale: float | None = None, bits: int = 8,
                       overwrite: bool = False, threads: int = 2, keep_export: bool = False,
                       progress: bool = True, verbose: bool = False) -> LuceneImpactIndex:
    """Export the encoded corpus and index it with Anserini; the folder appears only once it is complete.

    Args:
        encoded_dir: a complete encoded folder (contracts/encoded.py).
        index_dir: the index folder; an existing Lucene index there is replaced only with `overwrite`.
        scale: None takes the numba index's default for these bits, so the two back ends hold the same integers.
        bits: 8 or 16 bits per impact.
        overwrite: replace an existing Lucene index at `index_dir`.
        threads: Anserini's indexing threads (and the export's parts).
        keep_export: keep the exported JSON documents in the folder (for inspection).
        progress: the export's progress bar and the closing log line.
        verbose: Anserini's own INFO lines (its settings and counters).

    Returns:
        The built index, opened.

    Raises:
        ValueError: bits other than 8 or 16, or an incomplete encoded folder.
        FileExistsError: `index_dir` holds something that may not be replaced.
        RuntimeError: Anserini indexed another number of documents than were exported.
    """
    encoded_dir, index_dir = Path(encoded_dir), Path(index_dir)
    check_bits(bits)
    encoded = open_encoded(encoded_dir)
    check_encoded_ids(encoded_dir)  # a folder encoded before ids were checked, or edited: hits under the wrong id
    check_overwrite(index_dir, overwrite, FORMAT)
    start_jvm()
    started = time.perf_counter()
    if scale is None:
        scale = corpus_scale(encoded_dir, bits)
    # the old index answers until the new one is complete
    with atomic_folder(index_dir, overwrite, index_of_format(FORMAT), what="Lucene impact index") as work:
        export = export_collection(encoded_dir, work / EXPORT_DIR, scale, bits, parts=max(1, threads),
                                   progress=progress)
        exported = time.perf_counter()
        counters = _run_anserini(work / EXPORT_DIR, work / LUCENE_DIR, threads, verbose)
        if counters["indexed"] + counters["empty"] != len(export["doc_ids"]) or counters["errors"]:
            raise RuntimeError(
                f"Anserini indexed {counters} of {len(export['doc_ids'])} exported documents from {work / EXPORT_DIR}"
            )
        if not keep_export:
            shutil.rmtree(work / EXPORT_DIR)
        write_folder_files(work, export["doc_ids"], read_vocab(encoded_dir))
        finished = time.perf_counter()
        manifest = common_manifest(FORMAT, FORMAT_VERSION, {**encoded, "encoded": encoded_dir},
                                   vocab_size=int(encoded["vocab_size"]), num_docs=len(export["doc_ids"]),
                                   num_postings=export["num_postings"], scale=scale, bits=bits)
        manifest.update({
            "empty_docs": export["empty_docs"],
            "anserini_counters": counters,
            "build_seconds": {"export": round(exported - started, 3), "lucene": round(finished - exported, 3)},
        })
        write_json(work / "manifest.json", manifest)
    index = LuceneImpactIndex.load(index_dir)
    if progress:
        logger.info("Lucene-indexed %s documents, %s postings, scale %.3f, %d bits, %.1f MiB, in %.1f s "
                    "(export %.1f s, Anserini %.1f s) -> %s", f"{index.num_docs:,}", f"{manifest['num_postings']:,}",
                    scale, bits, index.size_bytes() / 2**20, finished - started, exported - started,
                    finished - exported, index_dir)
    return index


def _run_anserini(collection_dir: Path, lucene_dir: Path, threads: int, verbose: bool) -> dict:
    """Anserini's IndexCollection (what `python -m pyserini.index.lucene` runs) with -impact -pretokenized -optimize."""
    from jnius import autoclass

    args = autoclass("io.anserini.index.IndexCollection$Args")()
    args.collectionClass = "JsonVectorCollection"
    args.generatorClass = "DefaultLuceneDocumentGenerator"
    args.input = str(collection_dir)
    args.index = str(lucene_dir)
    args.threads = int(max(1, threads))
    args.impact = True
    args.pretokenized = True
    args.optimize = True  # one segment: smaller and faster to search
    args.memoryBuffer = 1024  # MB; Anserini's default buffer would not fit the heap set in indexing/java.py
    args.quiet = not verbose  # Anserini's ~36 INFO lines of settings and counters: only when asked for
    indexer = autoclass("io.anserini.index.IndexCollection")(args)
    indexer.run()
    counters = indexer.getCounters()
    names = ("indexed", "empty", "unindexable", "skipped", "errors")
    return {name: int(getattr(counters, name).get()) for name in names}
