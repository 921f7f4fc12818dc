"""Dataset folders and names: the folder readers, the embedded demo, ir_datasets exported to the folder layout
(on local files), and malformed lines named by file and line."""
import json

import pytest

from contracts.datasets import read_corpus, read_queries
from pipelines.datasets import resolve_dataset


def test_local_folder(cranfield):
    queries = cranfield.queries()
    assert len(queries) == 225
    docs = list(cranfield.corpus())
    assert len(docs) == cranfield.count_documents() == 1400


def test_demo_is_embedded():
    ds = resolve_dataset("demo")
    assert ds.corpus_path.exists() and ds.queries() and ds.qrels_path.exists()


def test_malformed_corpus_line_names_file_and_line(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"id": "1", "text": "fine"}\n{"id": "2", "text": oops}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl, line 2: not valid JSON"):
        list(read_corpus(path))
    path.write_text('{"id": "1", "text": "fine"}\n\n{"title": "no id"}\n')
    with pytest.raises(ValueError, match=r"line 3: expected a JSON object with \"id\""):
        list(read_corpus(path))
    path.write_text(json.dumps({"id": "a b", "text": "x"}) + "\n")
    with pytest.raises(ValueError, match="line 1: document id 'a b'"):
        list(read_corpus(path))


def test_malformed_queries_name_file_and_line(tmp_path):
    path = tmp_path / "queries.tsv"
    path.write_text("1\tgood\n2 no tab\n")
    with pytest.raises(ValueError, match=r"queries.tsv, line 2: expected qid<TAB>text"):
        read_queries(path)
    path.write_text("1\tgood\n2\t  \n")
    with pytest.raises(ValueError, match="line 2: query '2' is empty"):
        read_queries(path)
    path.write_text("1\tgood\n1\tagain\n")
    with pytest.raises(ValueError, match="line 2: query id '1' appears twice"):
        read_queries(path)


def test_unknown_dataset_lists_what_works():
    with pytest.raises(ValueError, match="unknown dataset 'no/such/thing'.*msmarco-passage/dev/small"):
        resolve_dataset("no/such/thing")


@pytest.fixture
def local_ir_dataset(tmp_path, monkeypatch, cranfield):
    """A real ir_datasets Dataset over local files, registered under a test name."""
    import ir_datasets
    from ir_datasets.formats import TrecQrels, TsvQueries
    from ir_datasets.util import LocalDownload

    monkeypatch.setenv("SPLADE_CACHE", str(tmp_path / "cache"))
    name = f"splade-test/cranfield-{tmp_path.name}"
    queries = TsvQueries(LocalDownload(cranfield.queries_path))
    qrels = TrecQrels(LocalDownload(cranfield.qrels_path), {0: "not", 1: "rel"})
    ir_datasets.registry.register(name, ir_datasets.Dataset(queries, qrels))
    return name


def test_ir_datasets_ids_are_exported_to_the_folder_layout(local_ir_dataset, cranfield):
    ds = resolve_dataset(local_ir_dataset)
    assert ds.queries() == cranfield.queries()
    assert ds.qrels_path.read_text().split() == cranfield.qrels_path.read_text().split()


def test_ir_datasets_offline_says_what_to_do(tmp_path, monkeypatch):
    import ir_datasets
    from ir_datasets.formats import TsvQueries

    class Offline:
        def stream(self):
            raise ConnectionError("no network")

    monkeypatch.setenv("SPLADE_CACHE", str(tmp_path / "cache"))
    ir_datasets.registry.register("splade-test/offline", ir_datasets.Dataset(TsvQueries(Offline())))
    dataset = resolve_dataset("splade-test/offline")  # nothing is fetched until a file is needed
    with pytest.raises(RuntimeError, match="'splade-test/offline'.*queries.*needs the network.*local folder"):
        dataset.queries()
    assert not (tmp_path / "cache" / "datasets" / "splade-test-offline" / "queries.tsv").exists()
