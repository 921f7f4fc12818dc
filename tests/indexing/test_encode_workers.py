"""Encoding with N workers into one folder, fingerprints of the corpus, duplicate ids, and bad numbers.

Most tests use a bag-of-words encoder (the folder logic does not depend on the model); the two-worker equality
test runs the real CLI with splade-tiny in two processes.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from contracts.encoded import check_encoded_ids, open_encoded, read_encoded, worker_range
from indexing.encode import Corpus, encode_corpus
from pipelines.cli import build_parser, main
from pipelines.datasets import DEMO, resolve_dataset

ROOT = Path(__file__).resolve().parents[2]


class Words:
    """One column per word of a fixed vocabulary, weight log(1 + count)."""

    def __init__(self, vocab=("wing", "flutter", "heat", "transfer", "boundary", "layer", "flow")):
        self.vocab = list(vocab)
        self.column = {w: i for i, w in enumerate(self.vocab)}
        self.model_path = "words"

    def describe(self) -> dict:
        return {"model": self.model_path, "vocab_size": len(self.vocab), "vocab_hash": "words",
                "query_max_length": 64, "doc_max_length": 256}

    def encode_documents(self, texts, progress=False):
        rows = [{self.column[w]: np.log1p(n) for w, n in Counter(t.lower().split()).items() if w in self.column}
                for t in texts]
        m = sp.dok_matrix((len(texts), len(self.vocab)), dtype=np.float32)
        for r, row in enumerate(rows):
            for c, v in row.items():
                m[r, c] = v
        return m.tocsr()


DOCS = [(f"d{i:02d}", text) for i, text in enumerate(
    ["wing flutter", "heat transfer", "boundary layer flow", "wing heat", "flow flow", "layer", "transfer wing",
     "boundary", "flutter flutter heat", "flow of heat"])]


def test_worker_ranges_cover_the_corpus_in_order():
    for total in (0, 1, 7, 10, 101):
        for n in (1, 2, 3, 8):
            ranges = [worker_range(i, n, total) for i in range(n)]
            assert ranges[0][0] == 0 and ranges[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError, match="--shard-id 2 --shard-num 2"):
        worker_range(2, 2, 10)


def test_parts_are_read_only_when_all_are_complete_and_in_corpus_order(tmp_path):
    out = tmp_path / "enc"
    whole = tmp_path / "whole"
    encode_corpus(Words(), DOCS, whole, shard_size=2, progress=False)
    for shard_id in (2, 0):
        part = encode_corpus(Words(), DOCS, out, shard_size=2, total=len(DOCS), progress=False, shard_id=shard_id,
                             shard_num=3)
        assert part["complete"] and "part" in part  # this worker's part: the folder is not complete yet
    with pytest.raises(ValueError, match=r"encoded by 3 workers, but parts not started: 1"):
        open_encoded(out)
    with pytest.raises(ValueError, match="parts not started: 1"):
        read_encoded(out)
    merged = encode_corpus(Words(), DOCS, out, shard_size=2, total=len(DOCS), progress=False, shard_id=1, shard_num=3)
    assert merged["num_docs"] == len(DOCS) and merged["complete"]
    ids, matrix = read_encoded(out)
    ids_whole, matrix_whole = read_encoded(whole)
    assert ids == ids_whole == [d for d, _ in DOCS]
    assert (matrix != matrix_whole).nnz == 0
    assert (out / "part-1-of-3.json").exists() and (out / "part-1-of-3-shard-00000.npz").exists()


def test_an_unfinished_part_is_named(tmp_path):
    out = tmp_path / "enc"

    def killed(docs, n):
        for i, doc in enumerate(docs):
            if i == n:
                raise KeyboardInterrupt
            yield doc

    encode_corpus(Words(), DOCS, out, shard_size=2, total=len(DOCS), progress=False, shard_id=0, shard_num=2)
    with pytest.raises(KeyboardInterrupt):
        encode_corpus(Words(), killed(DOCS, 8), out, shard_size=2, total=len(DOCS), progress=False, shard_id=1,
                      shard_num=2)
    with pytest.raises(ValueError, match=r"parts not finished: 1 \(1 shards done\)"):
        open_encoded(out)
    encode_corpus(Words(), DOCS, out, shard_size=2, total=len(DOCS), progress=False, shard_id=1, shard_num=2)
    assert open_encoded(out)["num_docs"] == len(DOCS)


def test_another_number_of_workers_is_refused(tmp_path):
    encode_corpus(Words(), DOCS, tmp_path, shard_size=2, total=len(DOCS), progress=False, shard_id=0, shard_num=2)
    with pytest.raises(ValueError, match=r"being encoded by 2 worker\(s\) \(--shard-num 2\), not 3"):
        encode_corpus(Words(), DOCS, tmp_path, shard_size=2, total=len(DOCS), progress=False, shard_id=0, shard_num=3)


def _demo_copy(tmp_path) -> Path:
    copy = tmp_path / "collection"
    shutil.copytree(DEMO, copy)
    return copy


def test_a_changed_corpus_is_refused_and_overwrite_encodes_it_again(tmp_path, caplog):
    data = _demo_copy(tmp_path)
    out = tmp_path / "encoded"
    dataset = resolve_dataset(data)
    first = encode_corpus(Words(), Corpus(dataset.corpus), out, total=dataset.count_documents(),
                          source=dataset.source(), progress=False)
    with open(data / "corpus.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "new-doc", "text": "wing flutter at high speed"}) + "\n")
    with pytest.raises(ValueError, match=r"which now has more \(document \d+, id 'new-doc', is new\).*--overwrite"):
        encode_corpus(Words(), Corpus(dataset.corpus), out, total=dataset.count_documents(), source=dataset.source(),
                      progress=False)
    again = encode_corpus(Words(), Corpus(dataset.corpus), out, total=dataset.count_documents(),
                          source=dataset.source(), progress=False, overwrite=True)
    assert again["num_docs"] == first["num_docs"] + 1
    assert read_encoded(out)[0][-1] == "new-doc"

    # an edited text (same ids, same count) is caught by the digest of its shard
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    doc = json.loads(lines[0])
    lines[0] = json.dumps({**doc, "text": doc["text"] + " edited"})
    (data / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="differ from those encoded in shard-00000.npz: the corpus changed"):
        encode_corpus(Words(), Corpus(dataset.corpus), out, total=dataset.count_documents(), source=dataset.source(),
                      progress=False)


def test_a_finished_encoding_says_it_is_complete_and_the_same_corpus_elsewhere_is_reused(tmp_path, caplog):
    data = _demo_copy(tmp_path)
    dataset = resolve_dataset(data)
    out = tmp_path / "encoded"
    encode_corpus(Words(), dataset.corpus(), out, source=dataset.source(), progress=False)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="indexing.encode"):
        encode_corpus(Words(), dataset.corpus(), out, source=dataset.source(), progress=False)
    assert "complete" in caplog.text and "nothing to encode" in caplog.text
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # nothing rewritten: indexes of it stay current
    # mining's folder used with the dataset's path recorded (or none): the same content is accepted
    moved = _demo_copy(tmp_path / "elsewhere")
    encode_corpus(Words(), resolve_dataset(moved).corpus(), out, source=None, progress=False)
    encode_corpus(Words(), resolve_dataset(moved).corpus(), out, source=resolve_dataset(moved).source(),
                  progress=False)


def test_duplicate_ids_are_refused_naming_both_documents(tmp_path):
    docs = DOCS[:6] + [("d01", "again")] + DOCS[6:]
    with pytest.raises(ValueError, match=r"document id 'd01' is used twice, by documents 2 and 7"):
        encode_corpus(Words(), docs, tmp_path / "one", shard_size=3, progress=False)
    # in two workers' parts: found when the last part completes
    out = tmp_path / "two"
    encode_corpus(Words(), docs, out, shard_size=3, total=len(docs), progress=False, shard_id=0, shard_num=2)
    with pytest.raises(ValueError, match=r"'d01' is used twice, by documents 2 and 7"):
        encode_corpus(Words(), docs, out, shard_size=3, total=len(docs), progress=False, shard_id=1, shard_num=2)
    with pytest.raises(ValueError, match=r"'d01' is used twice, by documents 2 and 7"):
        check_encoded_ids(out)


def test_bad_numbers_and_an_empty_corpus_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="shard size must be 1 or more, got 0"):
        encode_corpus(Words(), DOCS, tmp_path / "a", shard_size=0, progress=False)
    with pytest.raises(ValueError, match="no documents to encode"):
        encode_corpus(Words(), [], tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="no documents to encode"):
        encode_corpus(Words(), [], tmp_path / "c", total=0, progress=False)
    for flag in ("--shard-size", "--batch-size", "--token-budget", "--shard-num"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(["encode", "--dataset", "demo", "--output", "x", flag, "0"])
        assert exit_info.value.code == 2
        assert f"argument {flag}: expected a whole number of 1 or more, got 0" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "corpus.jsonl").write_text("")
    assert main(["encode", "--dataset", str(empty), "--output", str(tmp_path / "e")]) == 2
    assert "the corpus holds no documents" in capsys.readouterr().err
    assert main(["encode", "--dataset", "demo", "--output", str(tmp_path / "f"), "--shard-id", "2",
                 "--shard-num", "2"]) == 2
    assert "--shard-id 2: expected 0 .. 1 for --shard-num 2" in capsys.readouterr().err


def test_torchrun_environment_gives_the_worker():
    from pipelines.commands.stages import worker

    args = build_parser().parse_args(["encode", "--dataset", "demo", "--output", "x"])
    assert worker(args, {})[:2] == (0, 1)
    assert worker(args, {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})[:2] == (3, 4)
    args = build_parser().parse_args(["encode", "--dataset", "demo", "--output", "x", "--shard-id", "1",
                                      "--shard-num", "2"])
    assert worker(args, {"RANK": "3", "WORLD_SIZE": "4"})[:2] == (1, 2)  # the flags win


def test_two_worker_processes_build_the_same_index_as_one(tmp_path, cranfield, encoder):
    """Two CLI processes (--shard-id 0/1 --shard-num 2) into one folder; the index equals one worker's (encoded
    here, in this process, with the same model and length), byte for byte."""
    from indexing.numba_index.build import build_index

    data = tmp_path / "data"
    data.mkdir()
    lines = cranfield.corpus_path.read_text(encoding="utf-8").splitlines()[:30]
    (data / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["--model", "splade-tiny", "--dataset", str(data), "--doc-max-length", str(encoder.doc_max_length),
              "--shard-size", "6", "-q", "--output", str(tmp_path / "two")]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "pipelines", "encode", *common, "--shard-id", str(i),
                                 "--shard-num", "2"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
               for i in (0, 1)]
    dataset = resolve_dataset(data)
    encode_corpus(encoder, dataset.corpus(), tmp_path / "one", shard_size=6, source=dataset.source(), progress=False)
    for w in workers:
        assert w.wait() == 0, w.stderr.read()
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["workers"] == 2
    build_index(tmp_path / "one", tmp_path / "index-one", progress=False)
    build_index(tmp_path / "two", tmp_path / "index-two", progress=False)
    arrays = sorted(p.name for p in (tmp_path / "index-one").glob("*.npy"))
    assert arrays and arrays == sorted(p.name for p in (tmp_path / "index-two").glob("*.npy"))
    for name in arrays + ["doc_ids.txt"]:
        assert (tmp_path / "index-one" / name).read_bytes() == (tmp_path / "index-two" / name).read_bytes(), name


def test_a_folder_written_before_digests_is_checked_by_its_ids(tmp_path):
    out = tmp_path / "enc"
    encode_corpus(Words(), DOCS, out, shard_size=4, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    for shard in manifest["shards"]:
        del shard["digest"]
    del manifest["corpus"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    encode_corpus(Words(), DOCS, out, shard_size=4, progress=False)  # the same ids: taken as it is
    renamed = [("x00", DOCS[0][1])] + DOCS[1:]
    with pytest.raises(ValueError, match=r"the ids of documents 1..4 of the corpus differ from those in shard-00000"):
        encode_corpus(Words(), renamed, out, shard_size=4, progress=False)


def test_the_bar_moves_per_batch_not_per_shard(tmp_path, splade_tiny_path, monkeypatch):
    """The real encoder's batches reach encode_corpus's bar: one 10-document shard, batches of at most 2 texts."""
    import indexing.encode as encode_module
    from indexing.encoder import SpladeEncoder

    updates = []

    class Bar:
        def __init__(self, *args, **kwargs):
            pass

        def update(self, n):
            updates.append(n)

        def set_postfix_str(self, *args, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(encode_module, "tqdm", Bar)
    encoder = SpladeEncoder(splade_tiny_path, doc_max_length=32, batch_size=2)
    encode_corpus(encoder, DOCS, tmp_path / "e", shard_size=len(DOCS), total=len(DOCS), progress=True)
    assert updates == [2] * 5
