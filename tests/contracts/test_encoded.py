"""The encoded-folder contract: an interrupted encoding resumes to the same shards; another model or corpus is
refused; empty documents keep their row."""
import pytest

from contracts.encoded import open_encoded, read_encoded
from indexing.encode import encode_corpus


class Killed(Exception):
    pass


def killed_after(docs, n):
    for i, doc in enumerate(docs):
        if i == n:
            raise Killed()
        yield doc


def test_interrupted_encoding_resumes_to_the_same_result(tmp_path, encoder, cranfield):
    docs = list(cranfield.corpus())[:60]
    whole = tmp_path / "whole"
    encode_corpus(encoder, docs, whole, shard_size=16, progress=False)

    resumed = tmp_path / "resumed"
    with pytest.raises(Killed):
        encode_corpus(encoder, killed_after(docs, 40), resumed, shard_size=16, progress=False)
    partial = (resumed / "manifest.json").read_text()
    assert '"complete": false' in partial
    with pytest.raises(ValueError, match="encoding stopped after 2 shards"):
        open_encoded(resumed)

    calls = []
    original = encoder.encode_documents
    encoder.encode_documents = lambda texts, **kw: calls.append(len(texts)) or original(texts, **kw)
    try:
        encode_corpus(encoder, docs, resumed, shard_size=16, progress=False)
    finally:
        del encoder.encode_documents
    assert calls == [16, 12]  # only the missing shards were encoded
    ids_a, a = read_encoded(whole)
    ids_b, b = read_encoded(resumed)
    assert ids_a == ids_b == [d for d, _ in docs]
    assert (a != b).nnz == 0
    assert sorted(p.name for p in whole.iterdir()) == sorted(p.name for p in resumed.iterdir())


def test_resuming_with_another_model_is_refused(tmp_path, encoder, cranfield):
    docs = list(cranfield.corpus())[:5]
    out = tmp_path / "enc"
    encode_corpus(encoder, docs, out, shard_size=2, progress=False)

    class Other:
        vocab = encoder.vocab

        def describe(self):
            return {**encoder.describe(), "vocab_hash": "another"}

    with pytest.raises(ValueError, match="vocab_hash"):
        encode_corpus(Other(), docs, out, shard_size=2, progress=False)


def test_empty_documents_are_kept(tmp_path, encoder):
    out = tmp_path / "enc"
    docs = [("a", "wing flutter"), ("b", ""), ("c", "heat transfer")]
    encode_corpus(encoder, docs, out, shard_size=2, progress=False)
    ids, m = read_encoded(out)
    assert ids == ["a", "b", "c"] and m.shape[0] == 3


def test_resuming_with_another_corpus_is_refused(tmp_path, encoder):
    out = tmp_path / "enc"
    encode_corpus(encoder, [("a", "wing flutter")], out, progress=False, source="/data/one/corpus.jsonl")
    with pytest.raises(ValueError, match="differ from those encoded in shard-00000.npz: the corpus changed"):
        encode_corpus(encoder, [("b", "heat transfer")], out, progress=False, source="/data/two/corpus.jsonl")
