"""Every system the benchmark measures, behind one small interface, all fed the same quantised integer vectors.

A system builds from `Data` (documents as a CSR matrix of integer impacts, queries as CSR integer weights) and
answers one query at a time on one thread (`search_one`) or a whole query set on all cores (`search_all`).
Results are internal document numbers (row numbers of the document matrix) with their scores.

Peers are imported only inside their own class: one that is not installed fails alone, with its error
reported in the table.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numba as nb
import numpy as np
import scipy.sparse as sp


@dataclass
class Data:
    """One collection as every system receives it: the same quantised integers for all, so results compare."""

    docs: sp.csr_matrix  # [num_docs, vocab] integer impacts 1..255 stored as float32
    queries: dict[str, sp.csr_matrix]  # query set name -> [n, vocab] integer weights as float32
    folder: Path  # holds encoded/ (the shards our index and the Lucene export read) and query files

    @property
    def num_docs(self) -> int:
        return self.docs.shape[0]

    @property
    def vocab(self) -> int:
        return self.docs.shape[1]


def dir_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _rows(q: sp.csr_matrix, i: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = q.indptr[i], q.indptr[i + 1]
    return q.indices[a:b], q.data[a:b]


class SplitQueries(NamedTuple):
    """A prepared query set of ours: the CSR matrix (batch search) and its rows (one query at a time), split once
    and untimed, as the peers' `_rows` slices arrays without a copy. WHY: scipy's `q[i]` costs ~18 us, which a
    timed loop would charge to ours alone (a tenth of a k=10 MS MARCO dev query at 1M documents)."""

    matrix: sp.csr_matrix
    rows: list

    @classmethod
    def of(cls, matrix: sp.csr_matrix) -> SplitQueries:
        return cls(matrix, [matrix[i] for i in range(matrix.shape[0])])


class System:
    name = "?"
    exact = True
    family = "?"

    def build(self, data: Data, workdir: Path) -> None:
        raise NotImplementedError

    def prepare(self, q: sp.csr_matrix, k: int):
        """Per query set, anything converted once (not timed): Python dicts, Java maps, ..."""
        return q

    def search_one(self, prepared, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def search_all(self, prepared, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.search_one(prepared, i, k) for i in range(self.num_queries(prepared))]

    def num_queries(self, prepared) -> int:
        return prepared.shape[0]

    def size_bytes(self) -> int:
        return dir_size(self.path)

    def describe(self) -> str:
        return self.name

    def variants(self) -> list[dict]:
        """Search settings measured over one build (attribute values set before each); the first is the default."""
        return [{}]


# --------------------------------------------------------------------------------------------- ours
class Ours(System):
    """indexing.numba_index: block-max pruning (exact at alpha = 1), every posting (method='exhaustive'), or the
    one the index picks for the k asked (method='auto')."""

    family = "ours"

    def __init__(self, alphas=(1.0,), method: str = "pruned", block_size: int | None = None,
                 reorder: str = "top-terms"):
        from indexing.numba_index.index import DEFAULT_BLOCK_SIZE

        self.alphas, self.alpha, self.method = tuple(alphas), alphas[0], method
        self.block_size, self.reorder = block_size or DEFAULT_BLOCK_SIZE, reorder
        self.exact = self.alpha == 1.0
        self.name = {"exhaustive": "ours, exhaustive", "auto": "ours, auto"}.get(method, "ours")

    def build(self, data, workdir):
        from indexing.numba_index.build import build_index_from_matrix

        self.path = workdir / f"ours-b{self.block_size}-{self.reorder}"
        if not (self.path / "manifest.json").exists():
            build_index_from_matrix(data.docs, [str(i) for i in range(data.num_docs)], self.path, None,
                                    {"model": "bench"},
                                    bits=8, scale=1.0, overwrite=True, progress=False, block_size=self.block_size,
                                    reorder=self.reorder)
        from indexing.numba_index.index import ImpactIndex

        self.index = ImpactIndex.load(self.path)
        self.stats = np.zeros(3, dtype=np.int64)

    def prepare(self, q, k):
        return SplitQueries.of(sp.csr_matrix(q.astype(np.int64)))

    def num_queries(self, prepared):
        return len(prepared.rows)

    def search_one(self, q, i, k):
        docs, scores, counts = self.index.search_arrays(q.rows[i], k, quantized=True, threads=1, alpha=self.alpha,
                                                        method=self.method, stats=self.stats)
        return docs[0, : counts[0]], scores[0, : counts[0]]

    def search_all(self, q, k):
        docs, scores, counts = self.index.search_arrays(q.matrix, k, quantized=True, alpha=self.alpha,
                                                        method=self.method)
        return [(docs[i, : counts[i]], scores[i, : counts[i]]) for i in range(q.matrix.shape[0])]

    def describe(self):
        return f"ours (blocks of {self.block_size}, {self.reorder} reordering)"

    def variants(self):
        if self.method != "pruned":
            return [{}]
        return [{"alpha": a, "exact": a == 1.0, "name": "ours, exact" if a == 1.0 else f"ours, alpha {a:g}"}
                for a in self.alphas]


# --------------------------------------------------------------------------------------------- plain baselines
@nb.njit(cache=True, nogil=True)
def _taat(indptr, indices, data, q_terms, q_weights, k, acc, touched):
    """The official SPLADE repository's design (numba_score_float + select_topk): term at a time into a dense
    accumulator, the documents scoring > 0 gathered, then a partition for the top k. Written without branches
    in the loops (a mispredicted branch per posting or per document would make the baseline a straw man)."""
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        w = q_weights[i]
        for p in range(indptr[t], indptr[t + 1]):
            acc[indices[p]] += w * np.int64(data[p])
    num_docs = acc.shape[0]
    n = 0
    for d in range(num_docs):
        touched[n] = d
        n += acc[d] > 0
    keys = np.empty(n, dtype=np.int64)
    for j in range(n):
        d = touched[j]
        keys[j] = acc[d] * (num_docs + 1) + (num_docs - d)
        acc[d] = 0
    if n > k:
        keys = np.partition(keys, n - k)[n - k:]
    keys = np.sort(keys)[::-1]
    scores = keys // (num_docs + 1)
    return num_docs - (keys - scores * (num_docs + 1)), scores


@nb.njit(cache=True, parallel=True)
def _taat_batch(indptr, indices, data, q_indptr, q_terms, q_weights, k, num_docs, chunks, out_docs, out_scores, counts):
    for c in nb.prange(chunks):
        acc = np.zeros(num_docs, dtype=np.int64)
        touched = np.empty(num_docs, dtype=np.int32)
        for q in range(c, q_indptr.shape[0] - 1, chunks):
            a, b = q_indptr[q], q_indptr[q + 1]
            d, s = _taat(indptr, indices, data, q_terms[a:b], q_weights[a:b], k, acc, touched)
            counts[q] = d.shape[0]
            out_docs[q, : d.shape[0]] = d
            out_scores[q, : d.shape[0]] = s


class NumbaExhaustive(System):
    name = "numba exhaustive TAAT (SPLADE repo design)"
    family = "exhaustive"

    def build(self, data, workdir):
        self.path = workdir / "numba-taat"
        csc = data.docs.tocsc()
        csc.sort_indices()
        self.path.mkdir(parents=True, exist_ok=True)
        for name, arr in (("indptr", csc.indptr.astype(np.int64)), ("indices", csc.indices.astype(np.int32)),
                          ("data", csc.data.astype(np.uint8))):
            np.save(self.path / f"{name}.npy", arr)
        self.indptr, self.indices, self.data = (np.load(self.path / f"{n}.npy") for n in ("indptr", "indices", "data"))
        self.acc = np.zeros(data.num_docs, dtype=np.int64)
        self.touched = np.empty(data.num_docs, dtype=np.int32)

    def prepare(self, q, k):
        return sp.csr_matrix(q.astype(np.int64))

    def search_one(self, q, i, k):
        t, w = _rows(q, i)
        return _taat(self.indptr, self.indices, self.data, t, w, k, self.acc, self.touched)

    def search_all(self, q, k):
        n = q.shape[0]
        docs, scores, counts = np.zeros((n, k), np.int64), np.zeros((n, k), np.int64), np.zeros(n, np.int64)
        _taat_batch(self.indptr, self.indices, self.data, q.indptr.astype(np.int64), q.indices, q.data, k,
                    self.acc.shape[0], nb.get_num_threads(), docs, scores, counts)
        return [(docs[i, : counts[i]], scores[i, : counts[i]]) for i in range(n)]


class ScipyBrute(System):
    name = "scipy CSC column slices + argpartition"
    family = "exhaustive"

    def build(self, data, workdir):
        self.path = workdir / "scipy.npz"
        self.csc = sp.csc_matrix(data.docs, dtype=np.float32)
        self.csc.sort_indices()
        sp.save_npz(self.path, self.csc, compressed=False)

    def search_one(self, q, i, k):
        t, w = _rows(q, i)
        scores = self.csc[:, t] @ w.astype(np.float32)
        positive = np.flatnonzero(scores > 0)  # argpartition over a half-zero 1M array is slow; positives first
        s = scores[positive]
        if s.shape[0] > k:
            part = np.argpartition(-s, k - 1)[:k]
            positive, s = positive[part], s[part]
        order = np.lexsort((positive, -s))
        return positive[order], s[order].astype(np.int64)

    def search_all(self, q, k):
        from concurrent.futures import ThreadPoolExecutor  # scipy's product releases the GIL

        with ThreadPoolExecutor(os.cpu_count()) as pool:
            return list(pool.map(lambda i: self.search_one(q, i, k), range(q.shape[0])))


# --------------------------------------------------------------------------------------------- Lucene
class Lucene(System):
    name = "Lucene impact search (Pyserini)"
    family = "lucene"

    def build(self, data, workdir):
        from indexing.lucene_index.build import build_lucene_index

        self.path = workdir / "lucene"
        if not (self.path / "manifest.json").exists():
            build_lucene_index(data.folder / "encoded", self.path, scale=1.0, bits=8, overwrite=True,
                               threads=os.cpu_count() or 1, progress=False)
        from indexing.lucene_index.index import LuceneImpactIndex

        self.index = LuceneImpactIndex.load(self.path)

    def prepare(self, q, k):
        q = sp.csr_matrix(q.astype(np.int64))
        return q, [self.index._query_map(q, i) for i in range(q.shape[0])]

    def num_queries(self, prepared):
        return prepared[0].shape[0]

    def search_one(self, prepared, i, k):
        hits = self.index._searcher.search(prepared[1][i], k)
        docs = np.fromiter((int(h.docid) for h in hits), dtype=np.int64, count=len(hits))
        scores = np.fromiter((round(h.score) for h in hits), dtype=np.int64, count=len(hits))
        return docs, scores

    def search_all(self, prepared, k):
        # Anserini's own batch search over Java threads (the tie re-ordering of LuceneImpactIndex.search left out).
        rows = list(range(len(prepared[1])))
        found = self.index._batch(prepared[1], rows, k, os.cpu_count() or 1)
        return [(np.array([int(d) for d, _ in found[r]], dtype=np.int64),
                 np.array([s for _, s in found[r]], dtype=np.int64)) for r in rows]

    def size_bytes(self):
        return dir_size(self.path / "lucene")


# --------------------------------------------------------------------------------------------- PISA
def _term(t: int) -> str:
    return f"{t:05d}"  # zero-padded: PISA sorts its lexicon as strings, so string order = id order


class Pisa(System):
    """PISA (through pyterrier-pisa) with MaxScore or block-max WAND: the exact peers we compare speeds with."""

    family = "pisa"

    def __init__(self, algorithm: str = "maxscore"):
        self.algorithm = algorithm
        self.name = {"maxscore": "PISA MaxScore", "block_max_wand": "PISA block-max WAND"}[algorithm]

    def build(self, data, workdir):
        """PISA's own binary collection written with numpy (what pyterrier-pisa's toks indexer writes, without
        its per-posting Python loop), then PISA compresses it (block_simdbp) and computes its block maxima."""
        import pyterrier_pisa  # noqa: F401  (fails here, reported, if the peer is not installed)
        from pyterrier_pisa import _pisathon

        self.path = workdir / "pisa"
        if not (self.path / "pt_meta.json").exists():
            if self.path.exists():
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True)
            csc = data.docs.tocsc()
            csc.sort_indices()
            df = np.diff(csc.indptr)
            terms = np.flatnonzero(df > 0)
            lengths = df[terms]
            head = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
            np.cumsum(lengths + 1, out=head[1:])
            docs = np.empty(int(head[-1]), dtype=np.uint32)
            freqs = np.empty(int(head[-1]), dtype=np.uint32)
            docs[head[:-1]] = lengths
            freqs[head[:-1]] = lengths
            body = np.ones(int(head[-1]), dtype=bool)
            body[head[:-1]] = False
            docs[body] = csc.indices
            freqs[body] = csc.data.astype(np.uint32)
            np.concatenate([np.array([1, data.num_docs], dtype=np.uint32), docs]).tofile(self.path / "inv.docs")
            freqs.tofile(self.path / "inv.freqs")
            doclen = np.asarray(data.docs.sum(axis=1)).ravel().astype(np.uint32)
            np.concatenate([np.array([data.num_docs], dtype=np.uint32), doclen]).tofile(self.path / "inv.sizes")
            (self.path / "fwd.documents").write_text("".join(f"{i}\n" for i in range(data.num_docs)))
            (self.path / "fwd.terms").write_text("".join(f"{_term(t)}\n" for t in terms))
            _pisathon.build_binlex(str(self.path / "fwd.documents"), str(self.path / "fwd.doclex"))
            _pisathon.build_binlex(str(self.path / "fwd.terms"), str(self.path / "fwd.termlex"))
            (self.path / "pt_meta.json").write_text(json.dumps(
                {"type": "sparse_index", "format": "pisa", "package_hint": "pyterrier-pisa", "stemmer": "none"}))
        self.ctxt = _pisathon.RetrievalContext()
        # The first prepare_index compresses the index and writes the block maxima: part of the build.
        _pisathon.prepare_index(self.ctxt, str(self.path), "block_simdbp", "quantized", "", quantize=0, stop_fname="")
        self._pisathon = _pisathon

    def prepare(self, q, k):
        return [{_term(int(t)): float(w) for t, w in zip(*_rows(q, i))} for i in range(q.shape[0])]

    def num_queries(self, prepared):
        return len(prepared)

    def _retrieve(self, inp, k, threads):
        n = len(inp) * k
        qidx, docnos = np.empty(n, dtype=np.int32), np.empty(n, dtype=object)
        ranks, scores = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.float32)
        size = self._pisathon.retrieve(self.ctxt, self.algorithm, inp, k=k, threads=threads, query_weighted=1,
                                       pretokenised=True, result_qidxs=qidx, result_docnos=docnos, result_ranks=ranks,
                                       result_scores=scores)
        return qidx[:size], docnos[:size], scores[:size]

    def search_one(self, prepared, i, k):
        _, docnos, scores = self._retrieve([(0, prepared[i])], k, 1)
        return docnos.astype(np.int64), np.rint(scores).astype(np.int64)

    def search_all(self, prepared, k):
        qidx, docnos, scores = self._retrieve(list(enumerate(prepared)), k, os.cpu_count() or 1)
        docs, scores = docnos.astype(np.int64), np.rint(scores).astype(np.int64)
        return [(docs[qidx == i], scores[qidx == i]) for i in range(len(prepared))]

    def size_bytes(self):
        # What search reads: the compressed index, PISA's block maxima and the lexicons (not the raw collection).
        keep = [p for p in self.path.iterdir() if ".bmw" in p.name or p.name.endswith("lex")]
        return sum(p.stat().st_size for p in keep)


# --------------------------------------------------------------------------------------------- BMP
class Bmp(System):
    family = "bmp"

    def __init__(self, alphas=(1.0,), beta: float = 1.0, block_size: int = 32):
        self.alphas, self.alpha, self.beta, self.block_size = tuple(alphas), alphas[0], beta, block_size
        self.exact = False  # its Python binding rescales query weights (ANCHORS.md): scores are not exact
        self.name = "BMP"

    def variants(self):
        return [{"alpha": a, "name": f"BMP (alpha {a:g}, beta {self.beta:g})"} for a in self.alphas]

    def build(self, data, workdir):
        import bmp

        self.path = workdir / f"bmp-{self.block_size}.bmp"
        if not self.path.exists():
            tmp = self.path.with_suffix(".tmp")
            indexer = bmp.Indexer(str(tmp), bsize=self.block_size, compress_range=False)
            d = data.docs
            for i in range(d.shape[0]):
                t, w = _rows(d, i)
                indexer.add_document(str(i), {_term(int(a)): int(b) for a, b in zip(t, w)})
            indexer.finish()
            os.replace(tmp, self.path)
        self.searcher = bmp.Searcher(str(self.path))

    def prepare(self, q, k):
        return [{_term(int(t)): float(w) for t, w in zip(*_rows(q, i))} for i in range(q.shape[0])]

    def num_queries(self, prepared):
        return len(prepared)

    def search_one(self, prepared, i, k):
        docnos, scores = self.searcher.search(prepared[i], k=k, alpha=self.alpha, beta=self.beta)
        return np.array([int(d) for d in docnos], dtype=np.int64), np.asarray(scores, dtype=np.float64)

    def search_all(self, prepared, k):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(os.cpu_count()) as pool:  # no batch API; threads help only if it drops the GIL
            return list(pool.map(lambda i: self.search_one(prepared, i, k), range(len(prepared))))


# --------------------------------------------------------------------------------------------- Seismic
class Seismic(System):
    family = "seismic"

    def __init__(self, heap_factors=(0.9,), query_cut: int = 10, n_postings: int | None = None):
        self.heap_factors, self.query_cut, self.n_postings = tuple(heap_factors), query_cut, n_postings
        self.heap_factor = heap_factors[0]
        self.exact = False
        self.name = "Seismic"

    def variants(self):
        return [{"heap_factor": h, "name": f"Seismic (query cut {self.query_cut}, heap factor {h:g})"}
                for h in self.heap_factors]

    def build(self, data, workdir):
        import seismic

        # The library's default (3,500 postings kept per term, on average) at a million documents and above,
        # scaled down with the collection below that.
        n_postings = self.n_postings or max(300, int(3500 * min(1.0, data.num_docs / 1_000_000)))
        self.path = workdir / f"seismic-{n_postings}"
        index_file = Path(str(self.path) + ".index.seismic")
        if index_file.exists():
            self.index = seismic.SeismicIndex.load(str(index_file))
        else:
            dataset = seismic.SeismicDataset()
            d = data.docs
            dataset.add_documents_by_id([str(i) for i in range(d.shape[0])], d.indices.astype(np.int64),
                                        d.data.astype(np.float32), d.indptr.astype(np.int64))
            self.index = seismic.SeismicIndex.build_from_dataset(dataset, n_postings=n_postings, centroid_fraction=0.1,
                                                                 summary_energy=0.4, doc_cut=15,
                                                                 num_threads=os.cpu_count() or 1)
            self.index.save(str(self.path))
        self.file = index_file
        self._string = seismic.get_seismic_string()

    def prepare(self, q, k):
        out = []
        for i in range(q.shape[0]):
            t, w = _rows(q, i)
            out.append((np.array([str(int(x)) for x in t], dtype=self._string), w.astype(np.float32)))
        return out

    def num_queries(self, prepared):
        return len(prepared)

    def search_one(self, prepared, i, k):
        comps, vals = prepared[i]
        hits = self.index.search("q", comps, vals, k=k, query_cut=self.query_cut, heap_factor=self.heap_factor)
        return (np.array([int(h[2]) for h in hits], dtype=np.int64), np.array([h[1] for h in hits], dtype=np.float64))

    def search_all(self, prepared, k):
        n = len(prepared)
        ids = np.array([str(i) for i in range(n)], dtype=self._string)
        comps = [c for c, _ in prepared]
        vals = [v for _, v in prepared]
        hits = self.index.batch_search(ids, comps, vals, k=k, query_cut=self.query_cut, heap_factor=self.heap_factor,
                                       num_threads=os.cpu_count() or 1)
        by_query = {}  # rows come back in completion order: each hit names its query
        for row in hits:
            if row:
                by_query[int(row[0][0])] = row
        return [(np.array([int(h[2]) for h in by_query.get(i, [])], dtype=np.int64),
                 np.array([h[1] for h in by_query.get(i, [])], dtype=np.float64)) for i in range(n)]

    def size_bytes(self):
        return self.file.stat().st_size


# --------------------------------------------------------------------------------------------- kANNolo
class Kannolo(System):
    name = "kANNolo flat scan"
    family = "kannolo"

    def build(self, data, workdir):
        import kannolo

        self.path = workdir / "kannolo.flat"
        d = data.docs
        self.index = kannolo.SparseFlatIndex.build_from_arrays(d.indices.astype(np.int32), d.data.astype(np.float32),
                                                               d.indptr.astype(np.int64))
        self.index.save(str(self.path))

    def prepare(self, q, k):
        return [(t.astype(np.int32), w.astype(np.float32)) for t, w in (_rows(q, i) for i in range(q.shape[0]))]

    def num_queries(self, prepared):
        return len(prepared)

    def search_one(self, prepared, i, k):
        dist, ids = self.index.search(prepared[i][0], prepared[i][1], k)
        return np.asarray(ids, dtype=np.int64), np.rint(np.asarray(dist)).astype(np.int64)

    def search_all(self, prepared, k):
        comps = np.concatenate([c for c, _ in prepared])
        vals = np.concatenate([v for _, v in prepared])
        offsets = np.zeros(len(prepared) + 1, dtype=np.int64)
        np.cumsum([c.shape[0] for c, _ in prepared], out=offsets[1:])
        dist, ids = self.index.batch_search(comps, vals, offsets, k, num_threads=0)
        dist, ids = np.asarray(dist).reshape(len(prepared), -1), np.asarray(ids).reshape(len(prepared), -1)
        return [(ids[i].astype(np.int64), np.rint(dist[i]).astype(np.int64)) for i in range(len(prepared))]

    def size_bytes(self):
        return dir_size(self.path) if self.path.exists() else dir_size(Path(str(self.path) + ".kannolo"))


def _floats(arg: str, default: tuple) -> tuple:
    return tuple(float(x) for x in arg.split("/")) if arg else default


def make(spec: str) -> System:
    """A system from its command-line name; settings after a colon, several separated by slashes:
    ours[:1/0.9/0.8], ours-exhaustive, ours-auto, numba, scipy, lucene, pisa-maxscore, pisa-bmw, bmp[:1/0.9],
    seismic[:0.7/0.9] (heap factors), kannolo."""
    name, _, arg = spec.partition(":")
    if name == "ours":
        return Ours(alphas=_floats(arg, (1.0,)))
    if name == "ours-exhaustive":
        return Ours(method="exhaustive")
    if name == "ours-auto":
        return Ours(method="auto")
    if name == "numba":
        return NumbaExhaustive()
    if name == "scipy":
        return ScipyBrute()
    if name == "lucene":
        return Lucene()
    if name == "pisa-maxscore":
        return Pisa("maxscore")
    if name == "pisa-bmw":
        return Pisa("block_max_wand")
    if name == "bmp":
        return Bmp(alphas=_floats(arg, (1.0,)))
    if name == "seismic":
        return Seismic(heap_factors=_floats(arg, (0.9,)))
    if name == "kannolo":
        return Kannolo()
    raise ValueError(f"unknown system {spec!r}")
