"""Shared fixtures: the packaged SPLADE model and a real collection encoded once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is missing: the real test collections live in ../shared/data")
    return path


@pytest.fixture(scope="session")
def shared_dataset():
    """A function from a collection's name to its folder under ../shared/data; skips the test when it is missing
    (the real collections are not part of the repository)."""
    return _shared_dataset


@pytest.fixture(scope="session")
def splade_tiny_path() -> Path:
    from pipelines.models import resolve_model

    return resolve_model("splade-tiny")


@pytest.fixture(scope="session")
def encoder(splade_tiny_path):
    from indexing.encoder import SpladeEncoder

    return SpladeEncoder(splade_tiny_path, doc_max_length=128)


@pytest.fixture(scope="session")
def cranfield(shared_dataset):
    from pipelines.datasets import resolve_dataset

    return resolve_dataset(shared_dataset("cranfield"))


@pytest.fixture(scope="session")
def cranfield_encoded(tmp_path_factory, encoder, cranfield) -> Path:
    """Cranfield (1,400 real documents) encoded with splade-tiny at 128 tokens: about 15 s on 2 cores."""
    from indexing.encode import encode_corpus

    out = tmp_path_factory.mktemp("cranfield") / "encoded"
    encode_corpus(encoder, cranfield.corpus(), out, shard_size=500, progress=False)
    return out


@pytest.fixture(scope="session")
def cranfield_index(tmp_path_factory, cranfield_encoded):
    from indexing.numba_index.build import build_index

    return build_index(cranfield_encoded, tmp_path_factory.mktemp("cranfield-index") / "index", progress=False)


@pytest.fixture(scope="session")
def cranfield_queries(encoder, cranfield):
    queries = cranfield.queries()
    return queries, encoder.encode_queries([t for _, t in queries])
