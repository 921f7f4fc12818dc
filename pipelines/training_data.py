"""Which training data a dataset name means: MS MARCO's published files (hub or local paths) or a dataset folder.

MS MARCO (`msmarco-passage/train`): queries and passages through ir_datasets, hard negatives and cross-encoder
scores from the sentence-transformers `msmarco-hard-negatives` dataset on the Hugging Face hub. Each of the four
can be a local file instead (--train-queries, --collection, --hard-negatives, --teacher-scores), which is the
only way offline.

A dataset folder with train-queries.tsv and train-qrels.txt (and corpus.jsonl): positives from the qrels, hard
negatives mined with this project's index (config.miner), teacher scores from config.teacher.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contracts.datasets import read_corpus, read_queries
from contracts.encoded import read_encoded
from contracts.trec import read_qrels
from indexing.encoder import SpladeEncoder, document_text
from pipelines.datasets import resolve_dataset
from pipelines.layout import mining_dir as mining_folder
from pipelines.models import resolve_model
from pipelines.workflows import mine_with_bm25, mine_with_splade
from training.config import TrainingConfig
from training.data import prepare_hard_negative_rows, prepare_mined_rows
from training.msmarco_files import TsvTexts, read_hard_negatives, read_teacher_scores
from training.teacher import CrossEncoderTeacher, SpladeTeacher, is_cross_encoder

MSMARCO_NAMES = ("msmarco-passage/train", "msmarco-passage", "msmarco")
HUB_DATASET = "sentence-transformers/msmarco-hard-negatives"
HARD_NEGATIVES_FILE = "msmarco-hard-negatives.jsonl.gz"
CE_SCORES_FILE = "cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz"
TRAIN_QUERIES, TRAIN_QRELS, CORPUS = "train-queries.tsv", "train-qrels.txt", "corpus.jsonl"


@dataclass
class MsMarcoFiles:
    """Local replacements for the downloaded MS MARCO inputs (None: fetch it)."""

    hard_negatives: str | None = None
    teacher_scores: str | None = None
    collection: str | None = None  # collection.tsv: pid<TAB>text
    queries: str | None = None  # queries.train.tsv: qid<TAB>text


def is_msmarco(name: str) -> bool:
    return name in MSMARCO_NAMES


def rows_builder(config: TrainingConfig, work_dir: str | Path, files: MsMarcoFiles | None = None) -> Callable[[], Path]:
    """A function that writes (or reuses) the training rows for `config.dataset` and returns their path."""
    work_dir = Path(work_dir)
    if is_msmarco(config.dataset):
        return lambda: _msmarco_rows(config, work_dir, files or MsMarcoFiles())
    folder = Path(config.dataset).expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"training dataset {config.dataset!r}: expected {MSMARCO_NAMES[0]} or a folder with {TRAIN_QUERIES}, "
            f"{TRAIN_QRELS} and {CORPUS}"
        )
    missing = [f for f in (TRAIN_QUERIES, TRAIN_QRELS, CORPUS) if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: no {', '.join(missing)} here (a training folder needs "
                                f"{TRAIN_QUERIES}, {TRAIN_QRELS} and {CORPUS})")
    return lambda: _folder_rows(config, folder, work_dir)


# ---- MS MARCO ---------------------------------------------------------------------------------------------------

def hub_file(filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(HUB_DATASET, filename, repo_type="dataset"))
    except Exception as e:  # offline, missing, rate-limited: the hub raises several types
        raise RuntimeError(
            f"{HUB_DATASET}/{filename}: could not be downloaded ({type(e).__name__}: {str(e)[:200]}). Offline, "
            f"download it elsewhere and pass it with --hard-negatives / --teacher-scores."
        ) from None


def _msmarco_rows(config: TrainingConfig, work_dir: Path, files: MsMarcoFiles) -> Path:
    negatives_path = Path(files.hard_negatives) if files.hard_negatives else hub_file(HARD_NEGATIVES_FILE)
    queries = _read_tsv_dict(Path(files.queries)) if files.queries else _ir_datasets_queries()
    passages = TsvTexts(files.collection) if files.collection else _ir_datasets_passages()
    return prepare_hard_negative_rows(
        config, work_dir, read_hard_negatives(negatives_path),
        load_scores=lambda: read_teacher_scores(files.teacher_scores or hub_file(CE_SCORES_FILE)),
        queries=queries, passage_text=passages,
    )


def _read_tsv_dict(path: Path) -> dict[str, str]:
    return dict(read_queries(path))


def _ir_datasets_train():
    import ir_datasets

    return ir_datasets.load("msmarco-passage/train")


def _ir_datasets_queries() -> dict[str, str]:
    try:
        return {q.query_id: q.text for q in _ir_datasets_train().queries_iter()}
    except Exception as e:
        raise RuntimeError(f"msmarco-passage/train queries: ir_datasets could not fetch them ({type(e).__name__}: "
                           f"{str(e)[:200]}); offline, pass --train-queries queries.train.tsv") from None


def _ir_datasets_passages() -> Callable[[str], str]:
    """Passage text by id from ir_datasets' docstore: random access on disk, not the 8.8M texts in memory."""
    try:
        store = _ir_datasets_train().docs_store()
        store.get("0")  # builds (downloads) the store now rather than in the middle of writing rows
    except Exception as e:
        raise RuntimeError(f"msmarco-passage collection: ir_datasets could not fetch it ({type(e).__name__}: "
                           f"{str(e)[:200]}); offline, pass --collection collection.tsv") from None
    return lambda pid: store.get(pid).text


# ---- dataset folders ----------------------------------------------------------------------------------------------

def _folder_rows(config: TrainingConfig, folder: Path, work_dir: Path) -> Path:

    queries = read_queries(folder / TRAIN_QUERIES)
    qrels = read_qrels(folder / TRAIN_QRELS)
    corpus = {d["id"]: document_text(d.get("title"), d["text"]) for d in read_corpus(folder / CORPUS)}
    mining_dir = mining_folder(work_dir, config.miner)
    encoders: dict[str, object] = {}

    def miner_encoder():
        if "miner" not in encoders:
            encoders["miner"] = _splade_encoder(config.miner, config.effective_max_length)
        return encoders["miner"]

    def mine(selected):
        if config.miner == "bm25":
            return mine_with_bm25(corpus.items(), selected, mining_dir, depth=config.mining_depth)
        return mine_with_splade(miner_encoder(), resolve_dataset(folder), selected, mining_dir,
                                depth=config.mining_depth)

    def make_teacher():

        path = resolve_model(config.teacher)
        if is_cross_encoder(path):
            return CrossEncoderTeacher(path)
        if config.teacher == config.miner and (mining_dir / "encoded" / "manifest.json").exists():
            # Reuse the mined vectors, read whole: fine here, as a dataset folder's corpus is already held in
            # memory as text above; MS MARCO (_msmarco_rows) never reads its encoded corpus whole.
            return SpladeTeacher(miner_encoder(), read_encoded(mining_dir / "encoded"))
        return SpladeTeacher(_splade_encoder(config.teacher, config.effective_max_length))

    return prepare_mined_rows(config, work_dir, queries, corpus, qrels, mine, make_teacher)


def _splade_encoder(name: str, doc_max_length: int):
    """Documents are cut where training cuts them: mining and teacher see what the student will see."""

    return SpladeEncoder(resolve_model(name), doc_max_length=doc_max_length)
