"""FLOPS = sum_j p_q(j) p_d(j): against its meaning, the mean number of shared terms over all query-document pairs."""
import numpy as np
import pytest
import scipy.sparse as sp

from evaluation.flops import sparsity_stats, sparsity_stats_from_matrices, term_presence


def random_sparse(rows, cols, density, seed):
    return sp.random(rows, cols, density=density, format="csr", random_state=seed, dtype=np.float32)


def test_flops_is_the_mean_number_of_shared_terms():
    docs, queries = random_sparse(200, 50, 0.1, 1), random_sparse(30, 50, 0.15, 2)
    shared = ((queries != 0).astype(np.float64) @ (docs != 0).astype(np.float64).T).toarray()
    assert sparsity_stats_from_matrices(docs, queries).flops == pytest.approx(shared.mean())
    assert sparsity_stats(term_presence(docs), docs.shape[0], queries).flops == pytest.approx(shared.mean())


def test_by_hand_and_explicit_zeros_do_not_count():
    docs = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 3], [1, 1, 0], [0, 0, 0]], dtype=np.float32))
    queries = sp.csr_matrix((np.array([0.5, 0.0, 0.7], dtype=np.float32), np.array([0, 1, 2]), np.array([0, 2, 3])),
                            shape=(2, 3))  # query 0 stores an explicit zero at term 1
    stats = sparsity_stats_from_matrices(docs, queries)
    # p_d = [2/4, 1/4, 2/4]; p_q = [1/2, 0, 1/2]
    assert stats.flops == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert stats.mean_query_terms == 1.0
    assert stats.mean_doc_terms == pytest.approx(5 / 4)
    assert (stats.num_queries, stats.num_docs) == (2, 4)


def test_mismatched_vocabulary_and_bad_counts_are_errors():
    queries = random_sparse(3, 10, 0.3, 0)
    with pytest.raises(ValueError, match="queries have 10 vocabulary columns but the index has 9"):
        sparsity_stats(np.ones(9), 5, queries)
    with pytest.raises(ValueError, match="must lie in"):
        sparsity_stats(np.full(10, 6), 5, queries)
    with pytest.raises(ValueError, match="needs documents and queries"):
        sparsity_stats(np.zeros(10), 0, queries)
