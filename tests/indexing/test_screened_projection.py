"""The bf16-screened fp32 projection (indexing/screened_projection.py) against the exact maximum: no positive term is
ever screened out, and every value equals fp32's within rounding; the int16 keys of bf16 keep the order of values."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.screened_projection import ScreenedProjection
from indexing.segment_max import bf16_keys_to_fp32, bf16_segment_max_keys_into


def _exact(x, weight, bias, offsets):
    """relu(max over each document's tokens of x . w + b), in float64."""
    logits = x.double() @ weight.double().T + bias.double()
    return np.stack([logits[offsets[d] : offsets[d + 1]].amax(0).clamp_min(0).numpy()
                     for d in range(len(offsets) - 1)])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), docs=st.integers(1, 6), vocab=st.integers(1, 300),
       hidden=st.sampled_from([8, 64, 128]), scale=st.sampled_from([0.01, 1.0, 30.0]),
       tiles=st.sampled_from([(3, 7), (16, 64), (512, 4096)]))
def test_screening_never_drops_a_positive_term(seed, docs, vocab, hidden, scale, tiles):
    """Biases set to minus each term's true maximum (plus noise of a few bf16 ulps) put most terms next to 0, where a
    bound that is too tight would drop them."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 20, (docs,), generator=g)
    offsets = np.concatenate([[0], np.cumsum(lengths.numpy())]).astype(np.int64)
    x = torch.randn(int(offsets[-1]), hidden, generator=g) * scale
    weight = torch.randn(vocab, hidden, generator=g) / hidden**0.5
    peak = (x @ weight.T).amax(0)
    bias = -peak + peak.abs() * torch.randn(vocab, generator=g) * 2.0**-7
    got = ScreenedProjection(weight, bias).pool(x, offsets, *tiles).numpy()
    want = _exact(x, weight, bias, offsets)
    tolerance = 1e-5 * float((x.abs().amax() * weight.abs().sum(1).amax()).clamp_min(1)) + 1e-6
    assert got.shape == want.shape
    assert (got >= 0).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance)
    assert not ((want > tolerance) & (got == 0)).any()  # a positive term screened out


def test_screening_equals_the_fp32_product_on_the_model(encoder):
    """On splade-tiny's own head and hidden states: the same non-zeros as torch.addmm in fp32, values within 1e-5."""
    head = encoder.mlm.get_output_embeddings()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, head.weight.shape[1], generator=g) * 3
    offsets = np.array([0, 1, 40, 41, 200, 300], dtype=np.int64)
    got = ScreenedProjection(head.weight, head.bias).pool(x, offsets).numpy()
    with torch.inference_mode():
        logits = torch.addmm(head.bias, x, head.weight.T)
    want = np.stack([logits[offsets[d] : offsets[d + 1]].amax(0).relu().numpy() for d in range(len(offsets) - 1)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert ((got > 1e-5) <= (want > 0)).all() and ((want > 1e-5) <= (got > 0)).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 40), cols=st.integers(1, 50))
def test_bf16_keys_keep_the_order_of_values_negative_ones_too(seed, rows, cols):
    g = torch.Generator().manual_seed(seed)
    values = (torch.randn(rows, cols, generator=g) * 10).bfloat16()
    values[torch.rand(rows, cols, generator=g) < 0.1] = -0.0
    cut = sorted({0, rows, *torch.randint(0, rows + 1, (3,), generator=g).tolist()})
    offsets = np.asarray(cut, dtype=np.int64)
    keys = np.full((len(offsets) - 1, cols), np.iinfo(np.int16).min, dtype=np.int16)
    for start in range(0, rows, 7):  # tiles that cut documents
        bf16_segment_max_keys_into(values[start : start + 7], start, offsets, keys)
    got = bf16_keys_to_fp32(keys)
    for d in range(len(offsets) - 1):
        if offsets[d + 1] > offsets[d]:
            np.testing.assert_array_equal(got[d], values[offsets[d] : offsets[d + 1]].float().amax(0).numpy())
