"""Readers for the MS MARCO training files of the sentence-transformers `msmarco-hard-negatives` dataset.

- `msmarco-hard-negatives.jsonl.gz`: one line per training query, `{"qid", "pos": [pid], "neg": {system: [pid]}}`,
  read line by line (streamed, never whole).
- `cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz`: a pickled dict qid -> {pid: score}. A pickle cannot be
  streamed; we load it once and key it by strings like every other id in this project.
- `collection.tsv` (`pid<TAB>text`): random access through an array of byte offsets (8 bytes per passage, 70 MB for
  the 8.8M passages) instead of a dict of all texts (several GB).
"""
from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path
from typing import Iterator

import numpy as np

from training.examples import QueryCandidates


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_hard_negatives(path: str | Path) -> Iterator[QueryCandidates]:
    """Streams the hard-negatives file; every id becomes a string."""
    path = Path(path)
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                yield QueryCandidates(
                    qid=str(data["qid"]),
                    positives=[str(p) for p in data["pos"]],
                    negatives={system: [str(p) for p in pids] for system, pids in data.get("neg", {}).items()},
                )
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(
                    f"{path}, line {lineno}: expected a JSON object with 'qid', 'pos' and 'neg' ({type(e).__name__}: {e})"
                ) from None


def read_teacher_scores(path: str | Path) -> dict[str, dict[str, float]]:
    """A pickled {qid: {pid: score}} (the cross-encoder score file) or a JSON file of the same shape."""
    path = Path(path)
    if path.name.endswith((".json", ".json.gz")):
        with _open(path) as f:
            raw = json.load(f)
    else:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = pickle.load(f)  # the published file format; only load score files you trust
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict qid -> {{pid: score}}, got {type(raw).__name__}")
    return {str(q): {str(p): float(s) for p, s in scores.items()} for q, scores in raw.items()}


class TsvTexts:
    """id -> text for a `id<TAB>text` file, by seeking to byte offsets kept in numpy arrays."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.suffix == ".gz":
            raise ValueError(f"{self.path}: random access needs the uncompressed file; gunzip it first")
        ids: list[str] | None = None  # stays None while the ids are 0..n-1 in order (MS MARCO): row = id
        offsets: list[int] = []
        with open(self.path, "rb") as f:
            pos = 0
            for lineno, line in enumerate(f, 1):
                tab = line.find(b"\t")
                if tab <= 0:
                    raise ValueError(f"{self.path}, line {lineno}: expected 'id<TAB>text'")
                pid = line[:tab].decode("utf-8")
                if ids is None and pid != str(len(offsets)):
                    ids = [str(i) for i in range(len(offsets))]
                if ids is not None:
                    ids.append(pid)
                offsets.append(pos + tab + 1)
                pos += len(line)
        self._row = {pid: i for i, pid in enumerate(ids)} if ids is not None else None
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._file = open(self.path, "rb")

    def __len__(self) -> int:
        return len(self._offsets)

    def __call__(self, pid: str) -> str:
        row = self._row.get(pid, -1) if self._row is not None else (int(pid) if pid.isdigit() else -1)
        if row < 0 or row >= len(self._offsets):
            raise KeyError(f"{self.path}: no passage {pid!r}")
        self._file.seek(int(self._offsets[row]))
        return self._file.readline().decode("utf-8").rstrip("\r\n")

