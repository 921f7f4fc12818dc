"""Encoding a corpus: (doc id, text) pairs through the SPLADE encoder into an encoded folder, shard by shard."""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from contracts.atomic import write_json, write_text
from contracts.encoded import save_shard, start_or_resume


def encode_corpus(
    encoder,
    docs: Iterable[tuple[str, str]],
    output_dir: str | Path,
    shard_size: int = 2000,
    total: int | None = None,
    progress: bool = True,
    source: str | None = None,
) -> dict:
    """Encode (doc id, text) pairs into shards under output_dir; returns the final manifest.

    `encoder` is an `indexing.encoder.SpladeEncoder` (anything with encode_documents and describe()); `source`
    names the corpus (a dataset folder or id), so that a folder is never resumed with another corpus.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {**encoder.describe(), "source": source}
    manifest = start_or_resume(out, info, shard_size)
    if manifest["complete"]:
        return manifest
    done_docs = sum(s["num_docs"] for s in manifest["shards"])
    write_text(out / "vocab.json", json.dumps(encoder.vocab, ensure_ascii=False))

    bar = tqdm(total=total, initial=done_docs, desc="encoding corpus", unit="doc", disable=not progress)
    started, encoded = time.perf_counter(), 0
    remaining = itertools.islice(iter(docs), done_docs, None)
    while True:
        chunk = list(itertools.islice(remaining, shard_size))
        if not chunk:
            break
        ids = [doc_id for doc_id, _ in chunk]
        matrix = encoder.encode_documents([text for _, text in chunk])
        number = len(manifest["shards"])
        name = f"shard-{number:05d}.npz"
        save_shard(out / name, ids, matrix)
        manifest["shards"].append({"file": name, "num_docs": len(ids), "nnz": int(matrix.nnz)})
        write_json(out / "manifest.json", manifest)
        encoded += len(ids)
        bar.update(len(ids))
    bar.close()
    manifest["complete"] = True
    manifest["num_docs"] = sum(s["num_docs"] for s in manifest["shards"])
    write_json(out / "manifest.json", manifest)
    seconds = time.perf_counter() - started
    if progress and encoded:
        nnz = sum(s["nnz"] for s in manifest["shards"])
        print(
            f"encoded {encoded:,} documents in {seconds:.1f} s ({encoded / seconds:.1f} docs/s); "
            f"{manifest['num_docs']:,} in {out}, {nnz / max(manifest['num_docs'], 1):.1f} non-zeros per document"
        )
    return manifest
