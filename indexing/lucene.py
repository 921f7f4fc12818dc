"""The Lucene impact index: the encoded corpus exported as Pyserini's JsonVectorCollection, indexed by Anserini.

The export carries the same quantised integers as the numba index (`indexing.impact_index.quantize`, same
scale and bits), so both back ends score every document identically. Terms are spelled with the model's
vocabulary (`lucene_terms`): Anserini turns each vector into a pseudo-document that repeats a term `impact`
times, split on whitespace, so a token that Java calls whitespace (or one longer than Lucene's 255-character
token limit) would not survive the round trip and gets a reserved spelling instead.

Folder layout:
  manifest.json   format and version, vocabulary size and hash, number of docs and postings, scale, bits, model
  lucene/         the Lucene index (Anserini IndexCollection -impact -pretokenized, one segment)
  doc_ids.txt     external document id of each internal number (= position in the encoded corpus)
  vocab.json      token strings in id order
  collection/     the JsonVectorCollection export, only with keep_export=True (what Anserini users index)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Sequence

from indexing.files import write_json, write_text
from indexing.impact_index import default_scale, quantize
from indexing.shards import iter_shards, open_encoded, read_vocab

FORMAT = "splade-lucene-impact-index"
FORMAT_VERSION = 1
LUCENE_DIR = "lucene"
EXPORT_DIR = "collection"
MAX_TOKEN_CHARS = 255  # Lucene's WhitespaceTokenizer splits longer tokens
# Characters that java.lang.Character.isWhitespace accepts outside the Unicode separator categories, and the
# no-break spaces it rejects inside them.
_JAVA_EXTRA_WHITESPACE = set("\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f")
_JAVA_NOBREAK_SPACES = set("\u00a0\u2007\u202f")


def _java_whitespace(ch: str) -> bool:
    if ch in _JAVA_EXTRA_WHITESPACE:
        return True
    return unicodedata.category(ch) in ("Zs", "Zl", "Zp") and ch not in _JAVA_NOBREAK_SPACES


def lucene_terms(vocab: Sequence[str]) -> list[str]:
    """The Lucene term of each vocabulary id: the token itself (##ing, [unused0], punctuation stay as they are),
    or `[splade-id-N]` for a token that Anserini's whitespace split would change, or a duplicate."""
    seen = set(vocab)
    terms, used = [], set()
    for i, token in enumerate(vocab):
        safe = token and len(token) <= MAX_TOKEN_CHARS and not any(_java_whitespace(c) for c in token)
        term = token if safe and token not in used else None
        if term is None:
            term = f"[splade-id-{i}]"
            while term in seen or term in used:
                term = f"[{term}]"
        used.add(term)
        terms.append(term)
    return terms


def corpus_scale(encoded_dir: Path, bits: int) -> float:
    """The numba index's default scale: (2^bits - 1) / the heaviest weight of the corpus."""
    heaviest = 0.0
    for _, matrix in iter_shards(encoded_dir):
        if matrix.nnz:
            heaviest = max(heaviest, float(matrix.data.max()))
    return default_scale(heaviest, bits)


def export_collection(encoded_dir: str | Path, out_dir: str | Path, scale: float, bits: int, parts: int = 1,
                      progress: bool = True) -> dict:
    """Write the quantised corpus as JsonVectorCollection files (`{"id", "contents", "vector": {term: impact}}`).

    Documents keep corpus order and are cut into `parts` contiguous files (Anserini indexes one file per thread).
    Returns the doc ids and counts.
    """
    encoded_dir, out_dir = Path(encoded_dir), Path(out_dir)
    manifest = open_encoded(encoded_dir)
    terms = lucene_terms(read_vocab(encoded_dir))
    if len(terms) != manifest["vocab_size"]:
        raise ValueError(f"{encoded_dir / 'vocab.json'}: {len(terms)} tokens, but the manifest says {manifest['vocab_size']}")
    quoted = [json.dumps(t) for t in terms]  # JSON-escaped once: quotes, backslashes and control characters survive
    total = int(manifest["num_docs"])
    per_part = max(1, -(-total // max(1, parts)))
    out_dir.mkdir(parents=True, exist_ok=True)

    from tqdm.auto import tqdm

    ids: list[str] = []
    postings = empty = 0
    files, handle = [], None
    bar = tqdm(total=total, desc="exporting to JsonVectorCollection", unit="doc", disable=not progress)
    try:
        for shard_ids, matrix in iter_shards(encoded_dir):
            q = quantize(matrix, scale, bits)
            q.sort_indices()
            indptr, indices, data = q.indptr, q.indices, q.data
            for row, doc_id in enumerate(shard_ids):
                if len(ids) % per_part == 0:
                    if handle is not None:
                        handle.close()
                    files.append(out_dir / f"part-{len(files):05d}.jsonl")
                    handle = open(files[-1], "w", encoding="utf-8")
                a, b = indptr[row], indptr[row + 1]
                vector = ", ".join(f"{quoted[t]}: {w}" for t, w in zip(indices[a:b].tolist(), data[a:b].tolist()))
                handle.write(f'{{"id": {json.dumps(str(doc_id))}, "contents": "", "vector": {{{vector}}}}}\n')
                ids.append(str(doc_id))
                postings += int(b - a)
                empty += int(a == b)
            bar.update(len(shard_ids))
    finally:
        if handle is not None:
            handle.close()
        bar.close()
    if len(set(ids)) != len(ids):
        raise ValueError(f"{encoded_dir}: document ids are not unique; Lucene needs one document per id")
    return {"doc_ids": ids, "num_postings": postings, "empty_docs": empty, "files": [str(f) for f in files]}


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
    from indexing.java import start_jvm

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
    from retrieval.lucene_search import LuceneImpactIndex

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


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
