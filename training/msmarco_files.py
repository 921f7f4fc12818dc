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
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from contracts.textfiles import open_text
from training.examples import QueryCandidates


def read_hard_negatives(path: str | Path) -> Iterator[QueryCandidates]:
    """Streams the hard-negatives file; every id becomes a string.

    Args:
        path: msmarco-hard-negatives.jsonl(.gz).

    Returns:
        An iterator of QueryCandidates, one per line.

    Raises:
        ValueError: a line that is not such a JSON object (naming the file and line).
    """
    path = Path(path)
    with open_text(path, "hard-negatives") as f:
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
                    f"{path}, line {lineno}: expected a JSON object with 'qid', 'pos' and 'neg' "
                    f"({type(e).__name__}: {e})"
                ) from None


def read_teacher_scores(path: str | Path) -> TeacherScores:
    """A pickled {qid: {pid: score}} (the cross-encoder score file) or a JSON file of the same shape.

    Args:
        path: the score file (.pkl, .pkl.gz, .json or .json.gz).

    Returns:
        A read-only mapping qid -> {pid: score} with string ids, over the loaded dict (not a copy of it).

    Raises:
        ValueError: the file does not hold a dict.
    """
    path = Path(path)
    if path.name.endswith((".json", ".json.gz")):
        with open_text(path, "teacher scores") as f:
            raw = json.load(f)
    else:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = pickle.load(f)  # the published file format; only load score files you trust
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict qid -> {{pid: score}}, got {type(raw).__name__}")
    return TeacherScores(raw)


def _key(text: str, integers: bool):
    return int(text) if integers and text.isdigit() else text


class _QueryScores(Mapping):
    """One query's {pid: score} with string pids, over the raw dict (int or str keys)."""

    def __init__(self, raw: dict):
        self._raw = raw
        first = next(iter(raw), "")
        self._integers = isinstance(first, int)

    def __getitem__(self, pid: str) -> float:
        return float(self._raw[_key(pid, self._integers)])

    def __contains__(self, pid) -> bool:
        return _key(str(pid), self._integers) in self._raw

    def __iter__(self):
        return (str(p) for p in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class TeacherScores(Mapping):
    """qid -> {pid: score} with string ids, read through the loaded score dict.

    The published file holds 160 million scores keyed by integers; as Python objects they take most of the
    memory of a run (about 100 bytes a score). A copy keyed by strings, as every other id of this project is,
    would need as much again at once, so ids are converted at each lookup instead.

    Args:
        raw: the loaded {qid: {pid: score}}, keys int or str.
    """

    def __init__(self, raw: dict):
        self._raw = raw
        self._integers = isinstance(next(iter(raw), ""), int)

    def __getitem__(self, qid: str) -> _QueryScores:
        return _QueryScores(self._raw[_key(str(qid), self._integers)])

    def __iter__(self):
        return (str(q) for q in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class TsvTexts:
    """id -> text for a `id<TAB>text` file, by seeking to byte offsets kept in numpy arrays.

    Args:
        path: the uncompressed TSV file (collection.tsv).

    Raises:
        ValueError: a gzipped file (no random access), or a line without an id and a tab.
    """

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

