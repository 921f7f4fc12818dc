import numpy as np
import pytest
import torch

from indexing.encoder import SpladeEncoder, document_text

TEXTS = [
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft",
    "boundary layer",
    "an experimental study of a wing in a propeller slipstream was made in order to determine the spanwise "
    "distribution of the lift increase due to slipstream at different angles of attack of the wing",
]


def test_fast_pooling_equals_sentence_transformers(encoder):
    """Our chunked max-pooling must give SparseEncoder.encode's numbers."""
    mine = encoder.encode_documents(TEXTS).toarray()
    with torch.inference_mode():
        reference = encoder.model.encode_document(TEXTS, convert_to_tensor=True, convert_to_sparse_tensor=False)
    reference = reference.cpu().numpy()
    assert mine.shape == reference.shape == (3, 30522)
    np.testing.assert_allclose(mine, reference, atol=1e-5)
    assert ((mine > 0) == (reference > 0)).all()


def test_batching_by_length_keeps_input_order(encoder):
    together = encoder.encode_documents(TEXTS).toarray()
    alone = np.vstack([encoder.encode_documents([t]).toarray() for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_weights_are_sparse_and_positive(encoder):
    x = encoder.encode_queries(["boundary layer transition"])
    assert 0 < x.nnz < 200
    assert (x.data > 0).all()
    assert x.dtype == np.float32


def test_empty_query_is_an_error(encoder):
    with pytest.raises(ValueError, match="query 1 is empty"):
        encoder.encode_queries(["fine", "   "])


def test_title_is_joined_to_text():
    assert document_text("Title", "body") == "Title body"
    assert document_text("", "body") == "body"
    assert document_text(None, "body") == "body"


def test_max_length_truncates(splade_tiny_path):
    short = SpladeEncoder(splade_tiny_path, doc_max_length=8)  # [CLS] + 6 word pieces + [SEP]
    long_text = " ".join(["aircraft"] * 5 + ["submarine"] * 50)
    truncated = short.encode_documents([long_text]).toarray()
    first_six = short.encode_documents(["aircraft aircraft aircraft aircraft aircraft submarine"]).toarray()
    np.testing.assert_allclose(truncated, first_six, atol=1e-6)
    assert not np.allclose(truncated, SpladeEncoder(splade_tiny_path, doc_max_length=64).encode_documents([long_text]).toarray())
