"""Real SPLADE vectors for the benchmark: the TREC DL 2019 pool and MS MARCO dev queries, encoded with splade-tiny.

Encoding the 30k-document pool takes minutes on a laptop CPU, so it is done once and cached under
benchmarks/cache/ (git-ignored); the encoded shards resume where a killed run stopped.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from contracts.atomic import atomic_path
from contracts.encoded import load_shard, read_encoded

CACHE = Path(__file__).resolve().parent / "cache"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def encode_real(cache: Path = CACHE, data: Path = DATA, model: str = "splade-tiny", max_queries: int = 2000,
                allow_partial: bool = False):
    """Returns (doc CSR float32, query CSR float32, encoded folder); encodes only what is not cached yet.

    With allow_partial, an unfinished encoding is not resumed: the shards done so far (a prefix of the pool) are used.

    The pool is read whole, on purpose: it is 30k passages (about 40 MB of floats) that the benchmarks score in
    memory. An MS MARCO-sized folder is read shard by shard instead
    (contracts.encoded.iter_shards; benchmarks/scale.py).
    """
    # Deferred: the encoder brings torch, needed only when something is not cached yet.
    from indexing.encode import encode_corpus
    from indexing.encoder import SpladeEncoder
    from pipelines.datasets import resolve_dataset
    from pipelines.models import resolve_model

    encoded = cache / f"trec-dl-2019-{model}"
    queries_file = cache / f"msmarco-dev-small-{model}-queries-{max_queries}.npz"
    encoder = None
    partial = allow_partial and (encoded / "manifest.json").exists() and not _complete(encoded)
    if not partial and (not (encoded / "manifest.json").exists() or not _complete(encoded)):
        encoder = SpladeEncoder(resolve_model(model))
        dataset = resolve_dataset(data / "trec-dl-2019")
        encode_corpus(encoder, dataset.corpus(), encoded, total=dataset.count_documents(), source=dataset.source())
    if not queries_file.exists():
        encoder = encoder or SpladeEncoder(resolve_model(model))
        queries = resolve_dataset(data / "msmarco-passage-dev-small").queries()[:max_queries]
        matrix = encoder.encode_queries([text for _, text in queries], progress=True)
        with atomic_path(queries_file) as tmp:
            with open(tmp, "wb") as f:
                sp.save_npz(f, sp.csr_matrix(matrix, dtype=np.float32))
    if partial:  # the shards written so far, in order (open_encoded refuses an unfinished folder)
        manifest = json.loads((encoded / "manifest.json").read_text())
        docs = sp.vstack([load_shard(encoded / s["file"])[1] for s in manifest["shards"]], format="csr")
    else:
        _, docs = read_encoded(encoded)
    return docs, sp.load_npz(queries_file).tocsr(), encoded


def _complete(folder: Path) -> bool:
    return bool(json.loads((folder / "manifest.json").read_text()).get("complete"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="splade-tiny")
    args = parser.parse_args()
    docs, queries, folder = encode_real(model=args.model)
    print(f"{docs.shape[0]:,} docs, {docs.nnz / docs.shape[0]:.1f} nnz/doc; {queries.shape[0]:,} queries, "
          f"{queries.nnz / queries.shape[0]:.1f} nnz/query -> {folder}")
