"""The SPLADE encoder against sentence-transformers' own pooling: same vectors in any batch order or token budget,
truncation at max_length, the lower precisions close to fp32, the GPU-shaped path equal on the CPU."""
import numpy as np
import pytest
import torch

from indexing.encoder import (
    SpladeEncoder,
    TokenBudget,
    _Projection,
    _vocab_projection_removed,
    document_text,
    max_pool_packed,
    token_budget_batches,
)

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
    longer = SpladeEncoder(splade_tiny_path, doc_max_length=64).encode_documents([long_text]).toarray()
    assert not np.allclose(truncated, longer)


# ---- token-budget batches, the packed projection, precisions, progress, quiet loading ---------------------------


def test_token_budget_batches_cover_every_text_once_within_the_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500).tolist() + [1000]  # one text longer than the budget
    budget = TokenBudget(tokens=900, texts=16)
    batches = token_budget_batches(lengths, budget)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= 16 and (padded <= 900 or len(batch) == 1)
    with pytest.raises(ValueError, match="token budget"):
        TokenBudget(tokens=0)


def _reference_pool(encoder, texts, max_length):
    """Today's algorithm written plainly: per document, its real tokens projected in full, then the max."""
    features = encoder.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    head = encoder.mlm.get_output_embeddings()
    with torch.inference_mode():
        with _vocab_projection_removed(encoder.mlm):
            hidden = encoder.mlm(**features).logits
        mask = features["attention_mask"].bool()
        return torch.stack([head(hidden[i][mask[i]]).amax(0) for i in range(len(texts))]), hidden[mask], mask


def test_gpu_shaped_path_equals_the_per_document_loop_on_cpu(encoder):
    """The CUDA shape (all the batch's tokens in one product over the whole vocabulary, one segment max) run on a
    CPU in fp32 gives the same maxima as projecting each document alone; so do small CPU tiles."""
    reference, tokens, mask = _reference_pool(encoder, TEXTS, 128)
    doc_index = torch.arange(len(TEXTS)).repeat_interleave(mask.sum(1))
    head = encoder.mlm.get_output_embeddings()
    V = encoder.vocab_size
    with torch.inference_mode():
        gpu_shaped = max_pool_packed(tokens, doc_index, len(TEXTS), _Projection(head, "fp32", V), V, len(tokens), V)
        tiled = max_pool_packed(tokens, doc_index, len(TEXTS), _Projection(head, "fp32", 1000), V, 7, 1000)
    # within 1e-5 of logits near -11: products summed in another order (AVX-512 kernels) differ by a few ulps
    np.testing.assert_allclose(gpu_shaped.numpy(), reference.numpy(), rtol=2e-6, atol=1e-5)
    np.testing.assert_allclose(tiled.numpy(), reference.numpy(), rtol=2e-6, atol=1e-5)


def test_batches_report_progress_and_small_budgets_give_the_same_vectors(splade_tiny_path, encoder):
    small = SpladeEncoder(splade_tiny_path, doc_max_length=128, token_budget=40)
    calls = []
    texts = TEXTS * 3
    few = small.encode(texts, 128, on_batch=calls.append).toarray()
    assert len(calls) > 1 and sum(calls) == len(texts)  # the bar moves per batch
    np.testing.assert_allclose(few, encoder.encode_documents(texts).toarray(), atol=1e-5)


def test_lower_precisions_stay_close_to_fp32(splade_tiny_path, encoder):
    exact = encoder.encode_documents(TEXTS[:2]).toarray()
    for precision in ("int8", "bf16"):
        other = SpladeEncoder(splade_tiny_path, doc_max_length=128, precision=precision)
        assert other.describe()["precision"] == precision
        approx = other.encode_documents(TEXTS[:2]).toarray()
        top = np.argsort(-exact, axis=1)[:, :10]
        assert all(np.take(approx[i], top[i]).min() > 0 for i in range(2)), precision  # the top terms survive
        assert np.abs(approx - exact).max() < 1.0, precision
    with pytest.raises(ValueError, match="precision 'fp8': expected one of fp32, bf16, int8, auto"):
        SpladeEncoder(splade_tiny_path, precision="fp8")


def test_auto_precision_is_the_hardware_s_and_only_fp32_ignores_the_batch(splade_tiny_path):
    """"auto" resolves to fp32 on a CPU (recorded as such); fp32 gives a document the same weights alone or in a
    batch of other lengths (float rounding apart), the reason it stays the commands' default."""
    from indexing.encoder import auto_precision

    auto = SpladeEncoder(splade_tiny_path, doc_max_length=64, precision="auto")
    assert auto.describe()["precision"] == auto_precision("cpu") == "fp32"
    fp32 = SpladeEncoder(splade_tiny_path, doc_max_length=64)
    together = fp32.encode_documents(TEXTS * 3).toarray()
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(fp32.encode_documents([text]).toarray()[0], together[i], atol=1e-5)


def test_loading_a_model_shows_no_loading_bar(splade_tiny_path, capfd):
    SpladeEncoder(splade_tiny_path)
    assert "Loading weights" not in capfd.readouterr().err
