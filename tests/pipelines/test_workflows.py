"""The workflows of pipelines/: evaluate a model, mine negatives, the back-end table, the one path rule.

Most tests encode with a bag-of-words encoder (one vocabulary entry per word, weight log(1 + count)): a real
encoder of a tiny kind, so that encode -> index -> retrieve -> score runs in a second and every figure can be
recomputed independently (brute force, pytrec-style scoring of the written run). One test runs splade-tiny
through `train --evaluate`.
"""
from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from contracts.encoded import read_encoded
from contracts.trec import read_qrels, read_run
from evaluation.flops import sparsity_stats_from_matrices
from evaluation.metrics import evaluate
from indexing.encode import encode_corpus
from indexing.encoder import SpladeEncoder, vocabulary_hash
from pipelines.backends import BACKENDS, build_any_index, get_backend, index_is_current, open_index, reuse_or_build
from pipelines.cli import build_parser, main
from pipelines.commands.train import evaluate_before_after
from pipelines.datasets import resolve_dataset
from pipelines.layout import corpus_slug, mining_dir, output_paths, slugify
from pipelines.workflows import brute_force_check, compare_backends, evaluate_model, mine_with_splade
from tests.reference import quantized, ranked
from training.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[2]
TRICKY = [".hidden", "my.model.", "../x/y", "msmarco-passage/dev/small", "beir/scifact", "a b/../c"]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class WordEncoder:
    """Bag of words over a fixed vocabulary; counts its query encodings (the workflow must encode queries once)."""

    def __init__(self, texts, model_path: str = "bag-of-words"):
        self.vocab = sorted({w for t in texts for w in _words(t)})
        self.column = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.vocab_hash = vocabulary_hash(self.vocab)
        self.model_path = model_path
        self.query_encodings = 0

    def describe(self) -> dict:
        return {"model": self.model_path, "vocab_size": self.vocab_size, "vocab_hash": self.vocab_hash,
                "query_max_length": 64, "doc_max_length": 256}

    def _encode(self, texts) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for row, text in enumerate(texts):
            for word, n in Counter(w for w in _words(text) if w in self.column).items():
                rows.append(row)
                cols.append(self.column[word])
                vals.append(math.log1p(n))
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), self.vocab_size), dtype=np.float32)

    def encode_documents(self, texts, progress: bool = False) -> sp.csr_matrix:
        return self._encode(texts)

    def encode_queries(self, texts, progress: bool = False) -> sp.csr_matrix:
        self.query_encodings += 1
        return self._encode(texts)


@pytest.fixture(scope="module")
def demo():
    return resolve_dataset("demo")


@pytest.fixture()
def words(demo):
    return WordEncoder([text for _, text in demo.corpus()] + [text for _, text in demo.queries()])


def _mtime(path: Path) -> int:
    return (path / "manifest.json").stat().st_mtime_ns


# ---- evaluate_model and mining ---------------------------------------------------------------------------------


def test_evaluate_model_scores_its_own_run_and_takes_flops_from_the_index(demo, words, tmp_path):
    result = evaluate_model(words, demo, tmp_path / "encoded", tmp_path / "index", tmp_path / "run.trec", k=50,
                            progress=False)
    assert words.query_encodings == 1

    # the run on disk is the one scored, and scoring it again gives the same figures
    qrels = read_qrels(demo.qrels_path)
    written = read_run(tmp_path / "run.trec")
    assert written == result.results.run()
    assert result.metrics == evaluate(qrels, written, "default", warn=False).means
    assert 0.3 < result.metrics["NDCG@10"] <= 1.0

    # exact: the same top-k as brute-force scoring of the same integers
    doc_ids, docs = read_encoded(tmp_path / "encoded")
    expected = ranked(result.results.vectors, docs, doc_ids, 50, result.scale, result.bits)
    assert result.results.hits == [list(h) for h in expected]
    check = brute_force_check(result, demo.qrels_path)
    assert check.identical and check.metrics["brute force, same integers"] == result.metrics

    # FLOPS from the index's document frequencies equals FLOPS over the quantised documents themselves
    reference = sparsity_stats_from_matrices(quantized(docs, result.scale, result.bits), result.results.vectors)
    assert result.sparsity.flops == pytest.approx(reference.flops, rel=1e-12)
    assert result.sparsity.mean_doc_terms == pytest.approx(reference.mean_doc_terms, rel=1e-12)
    assert result.num_docs == len(doc_ids) == demo.count_documents()


def test_a_second_evaluation_and_mining_reuse_the_encoded_corpus_and_the_index(demo, words, tmp_path):
    first = evaluate_model(words, demo, tmp_path / "encoded", tmp_path / "index", tmp_path / "run.trec", k=20,
                           progress=False)
    stamps = (_mtime(tmp_path / "encoded"), _mtime(tmp_path / "index"))
    again = evaluate_model(words, demo, tmp_path / "encoded", tmp_path / "index", tmp_path / "run2.trec", k=20,
                           progress=False)
    assert (_mtime(tmp_path / "encoded"), _mtime(tmp_path / "index")) == stamps
    assert again.metrics == first.metrics and again.results.hits == first.results.hits

    mined = mine_with_splade(words, demo, demo.queries(), tmp_path, depth=5)
    assert (_mtime(tmp_path / "encoded"), _mtime(tmp_path / "index")) == stamps
    assert mined == {qid: [d for d, _ in hits[:5]] for qid, hits in zip(first.results.qids, first.results.hits)}


def test_an_index_of_an_older_encoding_is_rebuilt(demo, words, tmp_path):
    encode_corpus(words, demo.corpus(), tmp_path / "encoded", progress=False)
    index = reuse_or_build(tmp_path / "encoded", tmp_path / "index", progress=False)
    assert index_is_current(tmp_path / "index", tmp_path / "encoded")
    assert not index_is_current(tmp_path / "index", tmp_path / "encoded", bits=16)

    # the encoded folder is deleted and made again from another corpus (first 60 documents): same path
    shutil.rmtree(tmp_path / "encoded")
    half = list(demo.corpus())[:60]
    encode_corpus(words, half, tmp_path / "encoded", progress=False)
    assert not index_is_current(tmp_path / "index", tmp_path / "encoded")
    rebuilt = reuse_or_build(tmp_path / "encoded", tmp_path / "index", progress=False)
    assert rebuilt.num_docs == 60 != index.num_docs
    assert rebuilt.doc_ids == [doc_id for doc_id, _ in half]


def test_the_backend_table(demo, words, tmp_path):
    assert set(BACKENDS) == {"numba", "lucene"}
    with pytest.raises(ValueError, match="unknown index back end 'faiss': expected one of numba, lucene"):
        get_backend("faiss")
    encode_corpus(words, demo.corpus(), tmp_path / "encoded", progress=False)
    built = build_any_index(tmp_path / "encoded", tmp_path / "index", "numba", progress=False)
    loaded = open_index(tmp_path / "index", "numba")
    assert loaded.doc_ids == built.doc_ids and loaded.manifest == built.manifest


def test_train_evaluate_reuses_the_mined_folders_for_the_base_model(tmp_path, splade_tiny_path, cranfield):
    """`train --evaluate` with the base model as miner: "before" reuses mining's encoding and index, "after"
    (here the same model) encodes afresh; both routes must give the same figures."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "corpus.jsonl").write_text("\n".join(cranfield.corpus_path.read_text().splitlines()[:40]) + "\n")
    queries = cranfield.queries_path.read_text().splitlines()[:6]
    (data / "queries.tsv").write_text("\n".join(queries) + "\n")
    qids = {line.split("\t")[0] for line in queries}
    (data / "qrels.txt").write_text("".join(line + "\n" for line in cranfield.qrels_path.read_text().splitlines()
                                            if line.split()[0] in qids))
    dataset = resolve_dataset(data)
    config = TrainingConfig(model=str(splade_tiny_path), dataset=str(data), miner=str(splade_tiny_path), max_length=64)
    output = tmp_path / "run"
    mined = mining_dir(output / "data", config.miner)
    miner = SpladeEncoder(splade_tiny_path, doc_max_length=64)
    mine_with_splade(miner, dataset, dataset.queries(), mined, depth=5)

    results = evaluate_before_after(config, splade_tiny_path, splade_tiny_path, output)
    assert not (output / "evaluation" / "before" / "encoded").exists()  # mining's folders served "before"
    assert (output / "evaluation" / "after" / "encoded" / "manifest.json").exists()
    for figure in ("ndcg@10", "flops", "query_nnz", "doc_nnz"):
        assert results["before"][figure] == results["after"][figure], figure
    assert (output / "evaluation.json").exists() and (output / "evaluation" / "before" / "run.trec").exists()
    assert results["before"]["flops"] > 0


def test_compare_backends_finds_the_same_runs_in_both(demo, words, tmp_path):
    encode_corpus(words, demo.corpus(), tmp_path / "encoded", progress=False)
    comparison = compare_backends(words, demo.queries(), tmp_path / "encoded", tmp_path / "out", ks=(10,), threads=1,
                                  labels={"dataset": "demo"})
    assert comparison.identical and comparison.figures["parity@10"] == {"queries": 34, "identical": 34}
    assert list(comparison.figures)[0] == "dataset"
    runs = tmp_path / "out" / "runs"
    assert read_run(runs / "numba-k10.trec") == read_run(runs / "lucene-k10.trec")
    assert comparison.figures["numba"]["size_mib"] > 0 and comparison.figures["lucene"]["latency_ms@10"]["median"] > 0


# ---- command-line values checked before any model loads ----------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["retrieve", "--k", "0"], "argument --k: expected a whole number of 1 or more, got 0"),
    (["retrieve", "--k", "ten"], "argument --k: expected a whole number of 1 or more, got 'ten'"),
    (["retrieve", "--alpha", "1.5"], r"argument --alpha: expected a number in \(0, 1\]"),
    (["retrieve", "--alpha", "nan"], r"argument --alpha: expected a number in \(0, 1\]"),
    (["retrieve", "--alpha", "0"], r"argument --alpha: expected a number in \(0, 1\]"),
    (["demo", "--k", "-5"], "argument --k: expected a whole number of 1 or more, got -5"),
    (["lucene-compare", "--dataset", "demo", "--output", "x", "--k", "10", "0"], "argument --k"),
])
def test_numbers_are_checked_where_they_are_parsed(argv, message, capsys):
    if argv[0] == "retrieve":
        argv = argv + ["--dataset", "demo", "--index", "idx", "--output", "run.trec"]
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_retrieve_output_and_missing_model_give_clear_messages(demo, words, tmp_path, capsys):
    encode_corpus(words, demo.corpus(), tmp_path / "encoded", progress=False)
    build_any_index(tmp_path / "encoded", tmp_path / "index", progress=False)  # records model "bag-of-words"
    base = ["retrieve", "--dataset", "demo", "--index", str(tmp_path / "index")]

    assert main(base + ["--output", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder; --output names the run file to write" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(base + ["--output", str(tmp_path / "file" / "run.trec")]) == 2
    assert "is a file, so the run cannot be written under it" in capsys.readouterr().err
    assert main(base + ["--output", str(tmp_path / "run.trec")]) == 2
    err = capsys.readouterr().err
    assert "built with the model at bag-of-words, which is not on this machine; pass --model" in err
    assert main(["demo", "--output", str(tmp_path / "file")]) == 2
    assert "is a file; --output names a folder" in capsys.readouterr().err


# ---- one path rule for Python and the Makefile ------------------------------------------------------------------


def test_slug_rule():
    assert [slugify(n) for n in TRICKY] == ["hidden", "my.model", "x-y", "msmarco-passage-dev-small", "beir-scifact",
                                            "a-b-..-c"]
    assert slugify("..") == slugify("/") == "dataset"  # never an empty or a parent-folder component
    assert corpus_slug("msmarco-passage/trec-dl-2019/judged") == "msmarco-passage"
    assert corpus_slug("../shared/data/trec-dl-2019") == "shared-data-trec-dl-2019"
    paths = output_paths("my.model.", "msmarco-passage/dev/small", "lucene", out="o")
    assert (paths.encoded, paths.index, paths.run) == (Path("o/encoded/my.model/msmarco-passage"),
                                                       Path("o/index/my.model/msmarco-passage-lucene"),
                                                       Path("o/eval/my.model/msmarco-passage-dev-small-lucene.trec"))


# The Makefile's variables: one set in the environment (or a parent make's flags) would change what is printed.
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MODEL", "MODELS", "DATASET", "BACKEND", "OUT", "INDEX",
                  "INDEX_DIR", "EVAL_DIR", "SPLADE", "PY")


def _make(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -o: never (re)install the virtualenv from a test; PY: this interpreter, wherever the venv is
    cmd = ["make", "-s", "-o", ".venv/.installed", f"PY={sys.executable}", *args]
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)


def _flag(lines: list[str], command: str, flag: str) -> str:
    line = next(line for line in lines if f" pipelines {command} " in line or f"splade {command} " in line)
    words = shlex.split(line)
    return words[words.index(flag) + 1]


@pytest.mark.parametrize("model, dataset, backend", [
    ("my.model.", ".hidden", "numba"), (".hidden", "../x/y", "lucene"),
    ("../x/y", "msmarco-passage/dev/small", "numba"), ("a b/../c", "my.model.", "lucene"),
])
def test_makefile_targets_use_the_python_paths(model, dataset, backend, tmp_path):
    out = tmp_path / "out"
    done = _make("-n", "index", "retrieve", "demo", "lucene-compare", f"MODEL={model}", f"DATASET={dataset}",
                 f"BACKEND={backend}", f"OUT={out}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.replace("\\\n", " ").splitlines()
    expected = output_paths(model, dataset, backend, out=out)
    assert _flag(lines, "encode", "--output") == str(expected.encoded)
    assert _flag(lines, "index", "--encoded") == str(expected.encoded)
    assert _flag(lines, "index", "--output") == str(expected.index)
    assert _flag(lines, "retrieve", "--index") == str(expected.index)
    assert _flag(lines, "retrieve", "--output") == str(expected.run)
    assert _flag(lines, "demo", "--output") == str(expected.work)
    assert _flag(lines, "lucene-compare", "--output") == str(expected.compare)


def test_makefile_evaluation_loops_use_the_python_paths(tmp_path):
    """The shell loops of eval-beir and ensemble, run with `splade` replaced by `echo`."""
    out = tmp_path / "out"
    datasets = [".hidden", "../x/y"]
    for d in datasets:
        output_paths("my.model.", d, out=out).index.mkdir(parents=True)
    done = _make("eval-beir", "MODEL=my.model.", f"DATASET={' '.join(datasets)}", f"OUT={out}", "SPLADE=echo splade")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    retrieves = [shlex.split(line) for line in lines if line.startswith("splade retrieve")]
    evaluates = [shlex.split(line) for line in lines if line.startswith("splade evaluate")]
    for d, retrieve, score in zip(datasets, retrieves, evaluates, strict=True):
        paths = output_paths("my.model.", d, out=out)
        assert retrieve[retrieve.index("--index") + 1] == str(paths.index)
        assert retrieve[retrieve.index("--output") + 1] == str(paths.run)
        assert score[score.index("--output") + 1] == str(paths.metrics)

    for model in ("my.model.", "../x/y"):
        path = output_paths(model, ".hidden", out=out).run
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("q 0 d 1 1.0 x\n")
    done = _make("ensemble", "MODELS=my.model. ../x/y", "DATASET=.hidden", f"OUT={out}", "SPLADE=echo splade")
    assert done.returncode == 0, done.stderr
    fuse = shlex.split(next(line for line in done.stdout.splitlines() if line.startswith("splade fuse")))
    name = "ensemble my.model+x-y"
    assert fuse[fuse.index("--name") + 1 : fuse.index("--name") + 3] == name.split()
    assert fuse[fuse.index("--output") + 1] == str(output_paths(name, ".hidden", out=out).run)
    assert fuse[fuse.index("--run") + 1 : fuse.index("--method")] == [
        str(output_paths(m, ".hidden", out=out).run) for m in ("my.model.", "../x/y")]
