"""One resolver for dataset names: a local dataset folder, the embedded demo collection, or an ir_datasets id.

Everything downstream reads the dataset-folder layout of DESIGN.md (corpus.jsonl, queries.tsv, qrels.txt), so an
ir_datasets id is exported once into that layout under the cache folder and then read like any local folder.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from contracts.atomic import atomic_path
from contracts.datasets import read_corpus, read_queries
from indexing.encoder import document_text
from pipelines.layout import slugify
from pipelines.models import cache_dir

__all__ = ["DEMO", "Dataset", "KNOWN_IR_DATASETS", "resolve_dataset"]

DEMO = Path(__file__).parent / "demo_collection"

# ir_datasets ids the project knows how to use; any other valid ir_datasets id also works.
KNOWN_IR_DATASETS = {
    "msmarco-passage/dev/small": "MS MARCO passage dev (small): 6,980 queries, MRR@10 and R@1k",
    "msmarco-passage/trec-dl-2019/judged": "TREC DL 2019 passage, judged queries: NDCG@10 and R@1k (rel >= 2)",
    "msmarco-passage/trec-dl-2020/judged": "TREC DL 2020 passage, judged queries: NDCG@10 and R@1k (rel >= 2)",
    "beir/<name>": "a BEIR collection's test split (beir/scifact, beir/nfcorpus, ...): NDCG@10",
}


@dataclass(frozen=True)
class Dataset:
    """A dataset folder: the files are the contract; `name` is what the user typed.

    For an ir_datasets id, each file is exported on first use only, so evaluating MS MARCO dev needs its queries
    and qrels, not the 8.8M-passage corpus.
    """

    name: str
    folder: Path
    ir_dataset: object | None = None

    def _file(self, name: str) -> Path:
        path = self.folder / name
        if self.ir_dataset is not None and not path.exists():
            _export(self.name, self.ir_dataset, self.folder, name)
        return path

    @property
    def corpus_path(self) -> Path:
        """corpus.jsonl (exported from ir_datasets on first use)."""
        return self._file("corpus.jsonl")

    @property
    def queries_path(self) -> Path:
        """queries.tsv (exported from ir_datasets on first use)."""
        return self._file("queries.tsv")

    @property
    def qrels_path(self) -> Path:
        """qrels.txt (exported from ir_datasets on first use)."""
        return self._file("qrels.txt")

    def corpus(self) -> Iterator[tuple[str, str]]:
        """(doc id, text shown to the model) in file order; titles are joined to the text.

        Returns:
            An iterator over the corpus, read as it goes (the corpus is never held in memory).
        """
        for doc in read_corpus(self.corpus_path):
            yield doc["id"], document_text(doc.get("title"), doc["text"])

    def queries(self) -> list[tuple[str, str]]:
        """(qid, text) pairs in file order.

        Returns:
            The queries of queries.tsv.
        """
        return read_queries(self.queries_path)

    def count_documents(self) -> int:
        """Non-blank lines of corpus.jsonl: the total of the encoding's progress bar, without parsing JSON.

        Returns:
            The number of documents.
        """
        with open(self.corpus_path, "rb") as f:
            return sum(1 for line in f if line.strip())

    def source(self) -> str:
        """What identifies the corpus in an encoded folder's manifest: the resolved corpus file.

        Returns:
            The absolute path of corpus.jsonl, as text.
        """
        return str(self.folder.resolve() / "corpus.jsonl")


def resolve_dataset(name: str | Path) -> Dataset:
    """The dataset a name means: "demo", a local dataset folder, or an ir_datasets id (exported on first use).

    Args:
        name: what the user typed (--dataset).

    Returns:
        The dataset, whose files are exported from ir_datasets only when first read.

    Raises:
        ValueError: a path that is not a dataset folder, or an unknown name (the message lists what works).
    """
    text = str(name)
    if text == "demo":
        return Dataset("demo", DEMO)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{path}: a dataset is a folder with corpus.jsonl, queries.tsv and qrels.txt")
        if not any((path / f).exists() for f in ("corpus.jsonl", "queries.tsv", "qrels.txt")):
            raise ValueError(f"{path}: no corpus.jsonl, queries.tsv or qrels.txt in this folder")
        return Dataset(text, path)
    return _from_ir_datasets(text)


def _from_ir_datasets(name: str) -> Dataset:
    import ir_datasets  # heavy (its registry of every dataset), and only for names that are not folders

    try:
        ds = ir_datasets.load(name)
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}: expected a local folder (corpus.jsonl, queries.tsv, qrels.txt), 'demo', "
            f"or an ir_datasets id such as {', '.join(k for k in KNOWN_IR_DATASETS)}"
        ) from None
    return Dataset(name, cache_dir() / "datasets" / slugify(name), ds)


def _export(name: str, ds, folder: Path, file: str) -> None:
    """Write one file of the dataset-folder layout, atomically (an interrupted export starts that file again)."""
    folder.mkdir(parents=True, exist_ok=True)
    has = {"queries.tsv": ds.has_queries, "qrels.txt": ds.has_qrels, "corpus.jsonl": ds.has_docs}[file]
    if not has():
        raise ValueError(f"dataset {name!r} has no {file.split('.')[0]} in ir_datasets")
    try:
        with atomic_path(folder / file) as tmp, open(tmp, "w", encoding="utf-8") as f:
            if file == "queries.tsv":
                for q in ds.queries_iter():
                    f.write(f"{q.query_id}\t{' '.join(_query_text(q).split())}\n")
            elif file == "qrels.txt":
                for r in ds.qrels_iter():
                    f.write(f"{r.query_id} 0 {r.doc_id} {r.relevance}\n")
            else:
                for d in tqdm(ds.docs_iter(), total=ds.docs_count(), desc=f"exporting {name} corpus", unit="doc"):
                    doc = {"id": d.doc_id, "title": getattr(d, "title", "") or "", "text": d.text}
                    f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    except (ValueError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise RuntimeError(
            f"dataset {name!r}: ir_datasets could not fetch its {file.split('.')[0]} ({type(e).__name__}: "
            f"{str(e)[:200]}). It needs the network. Offline, point --dataset at a local folder with corpus.jsonl, "
            f"queries.tsv and qrels.txt (for example ../shared/data/trec-dl-2019 or ../shared/data/beir-scifact)."
        ) from None


def _query_text(query) -> str:
    """BEIR queries are `text`; TREC-style ones may only have `title`."""
    return getattr(query, "text", None) or getattr(query, "title", "")
