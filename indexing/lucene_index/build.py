"""Building the Lucene impact index: export the encoded corpus, run Anserini, swap the folder in when complete."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from contracts.atomic import write_json, write_text
from contracts.encoded import open_encoded, read_vocab
from indexing.lucene_index.export import EXPORT_DIR, corpus_scale, export_collection
from indexing.lucene_index.index import FORMAT, FORMAT_VERSION, LUCENE_DIR, LuceneImpactIndex
from indexing.lucene_index.java import start_jvm


def build_lucene_index(encoded_dir: str | Path, index_dir: str | Path, scale: float | None = None, bits: int = 8,
                       overwrite: bool = False, threads: int = 2, keep_export: bool = False,
                       progress: bool = True) -> "LuceneImpactIndex":
    """Export the encoded corpus and index it with Anserini; the folder appears only once it is complete.

    `scale` None takes the numba index's default for these bits, so the two back ends hold the same integers.
    """
    encoded_dir, index_dir = Path(encoded_dir), Path(index_dir)
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    encoded = open_encoded(encoded_dir)
    _refuse_existing(index_dir, overwrite)
    start_jvm()
    started = time.perf_counter()
    if scale is None:
        scale = corpus_scale(encoded_dir, bits)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.", suffix=".building", dir=index_dir.parent))
    try:
        export = export_collection(encoded_dir, work / EXPORT_DIR, scale, bits, parts=max(1, threads), progress=progress)
        exported = time.perf_counter()
        counters = _run_anserini(work / EXPORT_DIR, work / LUCENE_DIR, threads, progress)
        if counters["indexed"] + counters["empty"] != len(export["doc_ids"]) or counters["errors"]:
            raise RuntimeError(
                f"Anserini indexed {counters} of {len(export['doc_ids'])} exported documents from {work / EXPORT_DIR}"
            )
        if not keep_export:
            shutil.rmtree(work / EXPORT_DIR)
        write_text(work / "doc_ids.txt", "".join(f"{i}\n" for i in export["doc_ids"]))
        write_text(work / "vocab.json", json.dumps(read_vocab(encoded_dir), ensure_ascii=False))
        finished = time.perf_counter()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": encoded["model"],
            "vocab_size": int(encoded["vocab_size"]),
            "vocab_hash": encoded["vocab_hash"],
            "query_max_length": encoded.get("query_max_length"),
            "doc_max_length": encoded.get("doc_max_length"),
            "num_docs": len(export["doc_ids"]),
            "num_postings": export["num_postings"],
            "empty_docs": export["empty_docs"],
            "scale": float(scale),
            "bits": bits,
            "encoded": str(encoded_dir),
            "anserini_counters": counters,
            "build_seconds": {"export": round(exported - started, 3), "lucene": round(finished - exported, 3)},
        }
        write_json(work / "manifest.json", manifest)
        if index_dir.exists():
            shutil.rmtree(index_dir)  # _refuse_existing checked it is an index of ours (or empty) and overwrite is on
        os.chmod(work, 0o777 & ~_umask())  # mkdtemp made it private; the index is as readable as any folder
        work.rename(index_dir)
    finally:
        if work.exists():
            shutil.rmtree(work)
    index = LuceneImpactIndex.load(index_dir)
    if progress:
        print(f"Lucene-indexed {index.num_docs:,} documents, {manifest['num_postings']:,} postings, scale {scale:.3f}, "
              f"{bits} bits, {index.size_bytes() / 2**20:.1f} MiB, in {finished - started:.1f} s "
              f"(export {exported - started:.1f} s, Anserini {finished - exported:.1f} s) -> {index_dir}")
    return index


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _refuse_existing(index_dir: Path, overwrite: bool) -> None:
    if not index_dir.exists():
        return
    if index_dir.is_dir() and not any(index_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{index_dir}: the folder already exists; pass --overwrite to replace it")
    ours = (index_dir / "manifest.json").exists() and _manifest_format(index_dir) == FORMAT
    if not ours:
        raise FileExistsError(
            f"{index_dir}: --overwrite only replaces a Lucene impact index built by this project, and this folder "
            f"holds something else; choose another --index folder or delete it yourself"
        )


def _manifest_format(index_dir: Path) -> str | None:
    try:
        return json.loads((index_dir / "manifest.json").read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError):
        return None


def _run_anserini(collection_dir: Path, lucene_dir: Path, threads: int, progress: bool) -> dict:
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
    args.quiet = not progress
    indexer = autoclass("io.anserini.index.IndexCollection")(args)
    indexer.run()
    counters = indexer.getCounters()
    return {name: int(getattr(counters, name).get()) for name in ("indexed", "empty", "unindexable", "skipped", "errors")}
