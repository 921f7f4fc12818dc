"""Encoding a corpus: (doc id, text) pairs through the SPLADE encoder into an encoded folder, shard by shard.

One worker or N (`shard_id`, `shard_num`: worker I encodes the I-th contiguous range of the corpus into its own
part of the folder). Every shard records a digest of its documents' ids and texts, so a folder is resumed or
reused only with the corpus it was made from: a changed corpus is refused (or, with `overwrite`, encoded again),
never served from stale vectors.
"""
from __future__ import annotations

import inspect
import itertools
import json
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from contracts.atomic import write_json, write_text
from contracts.encoded import (
    DocumentDigest,
    EncodedMismatch,
    check_encoded_ids,
    file_stamp,
    load_shard_ids,
    open_encoded,
    part_name,
    save_shard,
    shard_name,
    start_or_resume,
)
from contracts.manifest import read_json

logger = logging.getLogger(__name__)

__all__ = ["CorpusChanged", "Corpus", "encode_corpus"]


class Corpus:
    """A corpus that can be read again from the start (`make()` opens it anew): what `encode_corpus` needs when
    --overwrite may have to start over after reading part of it.

    Args:
        make: a function of no arguments returning a fresh iterable of (doc id, text) pairs.
    """

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


class CorpusChanged(EncodedMismatch):
    """The corpus differs from the one the folder was encoded from."""


def encode_corpus(
    encoder,
    docs: Iterable[tuple[str, str]],
    output_dir: str | Path,
    shard_size: int = 2000,
    total: int | None = None,
    progress: bool = True,
    source: str | None = None,
    shard_id: int = 0,
    shard_num: int = 1,
    overwrite: bool = False,
) -> dict:
    """Encode (doc id, text) pairs into shards under output_dir, resuming a folder left incomplete.

    Args:
        encoder: an `indexing.encoder.SpladeEncoder` (anything with `encode_documents`, `describe()` and `vocab`).
        docs: the whole corpus in order, (doc id, text shown to the model); with `overwrite`, something that can
            be read again from the start (a list, a `Corpus`).
        output_dir: the encoded folder (shared by all workers).
        shard_size: documents per shard.
        total: documents in the corpus (for the bar; needed, or counted, with several workers).
        progress: a bar that moves per batch and a summary line.
        source: the corpus file (recorded; its size and mtime let a finished folder skip re-reading it).
        shard_id, shard_num: this worker and the number of workers (Pyserini's --shard-id / --shard-num).
        overwrite: encode again when the folder belongs to another corpus, model, length or precision.

    Returns:
        The manifest of the folder when it is complete (all parts merged), else this worker's part manifest.

    Raises:
        ValueError: shard_size below 1, an empty corpus, a duplicate document id (named, with both documents), or
            a folder made from another corpus, model, length, precision, shard size or number of workers (named;
            `overwrite` encodes again instead).
    """
    if shard_size < 1:
        raise ValueError(f"shard size must be 1 or more, got {shard_size}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if shard_num > 1 and total is None:
        docs = list(docs)
        total = len(docs)
    if total == 0:
        raise ValueError(f"{source or 'the corpus'}: no documents to encode")
    info = {**encoder.describe(), "source": source}
    stamp = file_stamp(source)
    corpus = {"documents": total, **({"size": stamp["size"]} if stamp else {})}
    try:
        manifest = start_or_resume(out, info, shard_size, shard_id, shard_num, corpus)
        return _encode(encoder, docs, out, manifest, info, stamp, total, shard_size, progress, shard_id, shard_num)
    except CorpusChanged as changed:
        if not overwrite:
            raise ValueError(f"{changed}; pass --overwrite to encode it again, or use another --output "
                             f"folder") from None
        logger.warning("%s; encoding it again (--overwrite)", changed)
    except EncodedMismatch as error:
        if not overwrite:
            raise
        logger.warning("%s: encoding it again (--overwrite)", error)
    if iter(docs) is docs:  # a generator, partly read by the check: the encoding would start in the middle
        raise ValueError(f"{out}: cannot encode again from a corpus that can be read only once; pass a list or an "
                         f"indexing.encode.Corpus")
    _clear(out, shard_id, shard_num)
    manifest = start_or_resume(out, info, shard_size, shard_id, shard_num, corpus, replace=True)
    return _encode(encoder, docs, out, manifest, info, stamp, total, shard_size, progress, shard_id, shard_num)


def _encode(encoder, docs, out: Path, manifest: dict, info: dict, stamp: dict, total: int | None, size: int,
            progress: bool, shard_id: int, shard_num: int) -> dict:
    path = out / ("manifest.json" if shard_num == 1 else part_name(shard_id, shard_num))
    start = manifest.get("start", 0)
    stop = manifest.get("stop")
    where = f"{info.get('source') or 'the corpus'}"
    if manifest["complete"] and stamp and manifest.get("corpus", {}).get("source_stamp") == stamp:
        logger.info("%s: complete (%s documents, corpus unchanged); nothing to encode", out,
                    f"{manifest['num_docs']:,}")
        return _folder_or_part(out, manifest, shard_num)

    remaining = itertools.islice(iter(docs), start, stop)
    seen: dict[str, int] = {}  # doc id -> its number in the corpus (1-based), to name both duplicates
    number = start
    whole = DocumentDigest()
    for entry in manifest["shards"]:  # the shards already written must be of the same documents
        chunk = list(itertools.islice(remaining, entry["num_docs"]))
        _check_duplicates(chunk, seen, number, where)
        _check_shard(out, entry, chunk, number, where)
        for doc_id, text in chunk:
            whole.update(doc_id, text)
        number += len(chunk)
    if manifest["complete"]:
        extra = next(remaining, None)
        if extra is not None:
            raise CorpusChanged(f"{out}: encoded from {number - start:,} documents of {where}, which now has more "
                                f"(document {number + 1}, id {extra[0]!r}, is new)")
        if stamp and manifest.get("corpus", {}).get("source_stamp") != stamp:
            manifest["corpus"] = {**manifest.get("corpus", {}), "source_stamp": stamp}
            write_json(path, manifest)  # same documents (a copy or a touched file): remember the new stamp
        logger.info("%s: complete (%s documents, corpus unchanged); nothing to encode", out,
                    f"{sum(s['num_docs'] for s in manifest['shards']):,}")
        return _folder_or_part(out, manifest, shard_num)

    write_text(out / "vocab.json", json.dumps(encoder.vocab, ensure_ascii=False))
    todo = None if total is None else (stop if stop is not None else total) - start
    bar = tqdm(total=todo, initial=number - start, desc="encoding corpus", unit="doc", disable=not progress,
               dynamic_ncols=True)
    per_batch = "on_batch" in inspect.signature(encoder.encode_documents).parameters
    started, encoded, nnz_new = time.perf_counter(), 0, 0
    while True:
        chunk = list(itertools.islice(remaining, size))
        if not chunk:
            break
        _check_duplicates(chunk, seen, number, where)
        ids = [doc_id for doc_id, _ in chunk]
        texts = [text for _, text in chunk]
        if per_batch:
            matrix = encoder.encode_documents(texts, on_batch=bar.update)
        else:
            matrix = encoder.encode_documents(texts)
            bar.update(len(ids))
        digest = DocumentDigest()
        for doc_id, text in chunk:
            digest.update(doc_id, text)
            whole.update(doc_id, text)
        name = shard_name(len(manifest["shards"]), shard_id, shard_num)
        save_shard(out / name, ids, matrix)
        manifest["shards"].append({"file": name, "num_docs": len(ids), "nnz": int(matrix.nnz),
                                   "digest": digest.hexdigest()})
        write_json(path, manifest)
        encoded += len(ids)
        number += len(ids)
        nnz_new += int(matrix.nnz)
        bar.set_postfix_str(f"{nnz_new / encoded:.0f} non-zeros/doc", refresh=False)
    bar.close()
    if stop is not None and number < stop:
        raise CorpusChanged(f"{where}: ended after {number:,} documents, but worker {shard_id} of {shard_num} "
                            f"encodes documents {start + 1:,}..{stop:,}: the corpus changed while the workers ran")
    num_docs = sum(s["num_docs"] for s in manifest["shards"])
    if shard_num == 1 and num_docs == 0:
        raise ValueError(f"{where}: no documents to encode")
    manifest["complete"] = True
    manifest["num_docs"] = num_docs
    # the fingerprint of the documents this manifest covers (one worker: the corpus; worker I: its range)
    manifest["corpus"] = {"source": info.get("source"), "documents": num_docs, "digest": whole.hexdigest(),
                          **({"source_stamp": stamp} if stamp else {})}
    write_json(path, manifest)
    seconds = time.perf_counter() - started
    if encoded:
        nnz = sum(s["nnz"] for s in manifest["shards"])
        logger.info("encoded %s documents in %.1f s (%.1f docs/s); %s in %s, %.1f non-zeros per document",
                    f"{encoded:,}", seconds, encoded / max(seconds, 1e-9), f"{num_docs:,}", out,
                    nnz / max(num_docs, 1))
    if shard_num == 1:
        return manifest
    # rewritten unchanged, so that it is newer than every part: an index of an older state is rebuilt
    write_json(out / "manifest.json", read_json(out / "manifest.json", what="encoded-corpus manifest"))
    if _all_parts_complete(out):
        check_encoded_ids(out)  # duplicates across workers' parts: only visible once all are done
        logger.info("%s: all %d parts complete", out, shard_num)
        return open_encoded(out)
    logger.info("%s: part %d of %d complete; the folder is usable once every part is", out, shard_id, shard_num)
    return manifest


def _folder_or_part(out: Path, manifest: dict, shard_num: int) -> dict:
    """A complete folder's manifest (parts merged) when there is one, else this worker's part."""
    return open_encoded(out) if shard_num == 1 or _all_parts_complete(out) else manifest


def _all_parts_complete(out: Path) -> bool:
    try:
        open_encoded(out)
    except ValueError:
        return False
    return True


def _check_duplicates(chunk: list[tuple[str, str]], seen: dict[str, int], number: int, where: str) -> None:
    for offset, (doc_id, _) in enumerate(chunk, number + 1):
        first = seen.setdefault(doc_id, offset)
        if first != offset:
            raise ValueError(f"{where}: document id {doc_id!r} is used twice, by documents {first} and {offset} "
                             f"(in corpus order); ids must be unique")


def _check_shard(out: Path, entry: dict, chunk: list[tuple[str, str]], number: int, where: str) -> None:
    """The documents of a shard already written must be those it was encoded from (its digest; a folder written
    before digests were recorded is checked by its ids)."""
    first, last = number + 1, number + entry["num_docs"]
    if len(chunk) < entry["num_docs"]:
        raise CorpusChanged(f"{out}: {entry['file']} holds documents {first:,}..{last:,}, but {where} now ends after "
                            f"{number + len(chunk):,} documents: the corpus changed")
    if "digest" in entry:
        digest = DocumentDigest()
        for doc_id, text in chunk:
            digest.update(doc_id, text)
        if digest.hexdigest() != entry["digest"]:
            raise CorpusChanged(f"{out}: documents {first:,}..{last:,} of {where} differ from those encoded in "
                                f"{entry['file']}: the corpus changed since this folder was encoded")
    elif load_shard_ids(out / entry["file"]) != [doc_id for doc_id, _ in chunk]:
        raise CorpusChanged(f"{out}: the ids of documents {first:,}..{last:,} of {where} differ from those in "
                            f"{entry['file']}: the corpus changed since this folder was encoded")


def _clear(out: Path, shard_id: int, shard_num: int) -> None:
    """Remove an encoding (one worker: the whole folder's files; worker I of N: its part) before encoding again."""
    if shard_num == 1:
        doomed: Iterator[Path] = itertools.chain(out.glob("shard-*.npz"), out.glob("part-*.npz"),
                                                 out.glob("part-*.json"), [out / "manifest.json"])
    else:
        part = part_name(shard_id, shard_num)
        doomed = itertools.chain(out.glob(part.replace(".json", "-shard-*.npz")), [out / part])
    for path in doomed:
        path.unlink(missing_ok=True)
