"""A rebuild with --overwrite killed at any moment leaves the previous index loading and answering (#13.2), and the
next build clears what the killed one left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks import synthetic
from contracts.atomic import atomic_folder
from contracts.encoded import write_encoded
from indexing.base import index_of_format
from indexing.numba_index.build import build_index
from indexing.numba_index.index import FORMAT, ImpactIndex

ROOT = Path(__file__).resolve().parents[2]
REBUILD = """
import sys
from indexing.numba_index.build import build_index
print("building", flush=True)
build_index(sys.argv[1], sys.argv[2], bits=16, overwrite=True, progress=False, bucket_bytes=200_000)
print("built", flush=True)
"""


def answers(index: ImpactIndex, queries: sp.csr_matrix) -> list:
    return index.search(queries, k=10)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    spec = synthetic.SyntheticSpec(num_docs=10_000, num_queries=20, vocab=5000, topics=50, seed=5)
    model = synthetic._model(spec)
    docs = synthetic.documents(spec, model)
    root = tmp_path_factory.mktemp("faults")
    encoded = write_encoded(root / "encoded", [f"p{i}" for i in range(docs.shape[0])], docs,
                            [f"t{i}" for i in range(spec.vocab)], {"model": "synthetic", "vocab_hash": "synthetic"},
                            shard_size=2500)
    return encoded, synthetic.queries(spec, False, model)


def start_rebuild(encoded: Path, index: Path) -> tuple[subprocess.Popen, float]:
    child = subprocess.Popen([sys.executable, "-c", REBUILD, str(encoded), str(index)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "building"
    return child, time.perf_counter()


def test_killed_rebuild_leaves_the_previous_index_answering(corpus, tmp_path):
    encoded, queries = corpus
    index_dir = tmp_path / "index"
    expected = answers(build_index(encoded, index_dir, progress=False), queries)
    before = (index_dir / "manifest.json").read_bytes()
    child, started = start_rebuild(encoded, tmp_path / "timing")  # how long a rebuild takes here
    assert child.wait(timeout=300) == 0
    duration = time.perf_counter() - started
    rng = np.random.default_rng(int(os.environ.get("FAULT_SEED", "11")))
    for delay in np.sort(rng.uniform(0.0, duration, size=5)):
        child, _ = start_rebuild(encoded, index_dir)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        survivor = ImpactIndex.load(index_dir)
        if (index_dir / "manifest.json").read_bytes() == before:
            assert answers(survivor, queries) == expected, f"killed after {delay:.2f} s: the old index changed"
        else:  # the kill came after the swap: the new index is complete
            assert json.loads((index_dir / "manifest.json").read_text())["bits"] == 16
            assert len(answers(survivor, queries)) == len(expected)
            return
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".index.")]
    assert leftovers, "no kill landed inside a build: the test proved nothing"
    rebuilt = build_index(encoded, index_dir, bits=16, overwrite=True, progress=False)
    assert rebuilt.manifest["bits"] == 16
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index.")], "leftover build folders remain"


def test_a_swap_killed_between_its_two_renames_is_undone(corpus, tmp_path):
    """Killed after the old index was moved aside and before the new one was moved in: the next build puts the
    old one back before anything else, so a failure of that build too still leaves it answering."""
    encoded, queries = corpus
    index_dir = tmp_path / "index"
    expected = answers(build_index(encoded, index_dir, progress=False), queries)
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()  # a process that is gone: its leftovers are stale
    index_dir.rename(tmp_path / f".index.old-{killed.pid}-x1y2")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(index_dir, True, index_of_format(FORMAT), what="numba impact index"):
            raise RuntimeError("disk full")
    assert answers(ImpactIndex.load(index_dir), queries) == expected
