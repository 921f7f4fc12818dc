"""The file contracts between the stages (DESIGN.md): how every file the project reads or writes is laid out.

The bottom layer: every stage imports it, and it imports no stage. Importing it costs numpy only; the encoded-folder
contract (`contracts.encoded`, which needs scipy) is imported on its own.

- `contracts.atomic`: atomic writes of files and folders, with the user's umask.
- `contracts.textfiles`: the one reader of text inputs (gzip by content, UTF-8 BOM, errors with file and line).
- `contracts.manifest`: JSON files and folder manifests with their format/version check.
- `contracts.datasets`: corpus.jsonl and queries.tsv of a dataset folder.
- `contracts.trec`: TREC runs and qrels.
- `contracts.encoded`: encoded corpus folders (shards and manifest).
"""
from contracts.atomic import atomic_folder, atomic_path, save_npy, write_json, write_text
from contracts.datasets import read_corpus, read_queries
from contracts.manifest import read_json, read_manifest
from contracts.textfiles import open_text
from contracts.trec import EvaluationWarning, QrelsDict, RunDict, ranked_lists, read_qrels, read_run, write_run

__all__ = [
    "EvaluationWarning",
    "QrelsDict",
    "RunDict",
    "atomic_folder",
    "atomic_path",
    "open_text",
    "ranked_lists",
    "read_corpus",
    "read_json",
    "read_manifest",
    "read_qrels",
    "read_queries",
    "read_run",
    "save_npy",
    "write_json",
    "write_run",
    "write_text",
]
