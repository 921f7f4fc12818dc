"""The Lucene impact index: the encoded corpus exported as Pyserini's JsonVectorCollection, indexed by Anserini.

The export carries the same quantised integers as the numba index (`indexing.base.quantize`, same
scale and bits), so both back ends score every document identically. Terms are spelled with the model's
vocabulary (`lucene_terms`): Anserini turns each vector into a pseudo-document that repeats a term `impact`
times, split on whitespace, so a token that Java calls whitespace (or one longer than Lucene's 255-character
token limit) would not survive the round trip and gets a reserved spelling instead.

Folder layout:
  manifest.json   format and version, vocabulary size and hash, number of docs and postings, scale, bits, model
  lucene/         the Lucene index (Anserini IndexCollection -impact -pretokenized, one segment)
  doc_ids.txt     external document id of each internal number (= position in the encoded corpus)
  vocab.json      token strings in id order
  collection/     the JsonVectorCollection export, only with keep_export=True (what Anserini users index)
"""
from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from contracts.encoded import iter_shards, open_encoded, read_vocab
from indexing.base import default_scale, quantize

EXPORT_DIR = "collection"
MAX_TOKEN_CHARS = 255  # Lucene's WhitespaceTokenizer splits longer tokens
# Characters that java.lang.Character.isWhitespace accepts outside the Unicode separator categories, and the
# no-break spaces it rejects inside them.
_JAVA_EXTRA_WHITESPACE = set("\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f")
_JAVA_NOBREAK_SPACES = set("\u00a0\u2007\u202f")


def _java_whitespace(ch: str) -> bool:
    if ch in _JAVA_EXTRA_WHITESPACE:
        return True
    return unicodedata.category(ch) in ("Zs", "Zl", "Zp") and ch not in _JAVA_NOBREAK_SPACES


def lucene_terms(vocab: Sequence[str]) -> list[str]:
    """The Lucene term of each vocabulary id: the token itself (##ing, [unused0], punctuation stay as they are),
    or `[splade-id-N]` for a token that Anserini's whitespace split would change, or a duplicate.

    Args:
        vocab: the model's tokens in id order.

    Returns:
        One distinct term per id, in id order.
    """
    seen = set(vocab)
    terms, used = [], set()
    for i, token in enumerate(vocab):
        safe = token and len(token) <= MAX_TOKEN_CHARS and not any(_java_whitespace(c) for c in token)
        term = token if safe and token not in used else None
        if term is None:
            term = f"[splade-id-{i}]"
            while term in seen or term in used:
                term = f"[{term}]"
        used.add(term)
        terms.append(term)
    return terms


def corpus_scale(encoded_dir: Path, bits: int) -> float:
    """The numba index's default scale: (2^bits - 1) / the heaviest weight of the corpus (one pass over the shards).

    Raises:
        ValueError: the corpus has no positive weight.
    """
    heaviest = 0.0
    for _, matrix in iter_shards(encoded_dir):
        if matrix.nnz:
            heaviest = max(heaviest, float(matrix.data.max()))
    return default_scale(heaviest, bits)


def export_collection(encoded_dir: str | Path, out_dir: str | Path, scale: float, bits: int, parts: int = 1,
                      progress: bool = True) -> dict:
    """Write the quantised corpus as JsonVectorCollection files (`{"id", "contents", "vector": {term: impact}}`).

    Documents keep corpus order and are cut into `parts` contiguous files (Anserini indexes one file per thread).

    Args:
        encoded_dir: a complete encoded folder. out_dir: where the part-NNNNN.jsonl files go.
        scale, bits: the quantisation (indexing.base.quantize), as in the numba index.
        parts: number of files. progress: a tqdm bar.

    Returns:
        {"doc_ids": [...], "num_postings": n, "empty_docs": n, "files": [paths]}.

    Raises:
        ValueError: vocab.json and the manifest disagree, or a document id occurs twice.
    """
    encoded_dir, out_dir = Path(encoded_dir), Path(out_dir)
    manifest = open_encoded(encoded_dir)
    terms = lucene_terms(read_vocab(encoded_dir))
    if len(terms) != manifest["vocab_size"]:
        raise ValueError(f"{encoded_dir / 'vocab.json'}: {len(terms)} tokens, but the manifest says "
                         f"{manifest['vocab_size']}")
    quoted = [json.dumps(t) for t in terms]  # JSON-escaped once: quotes, backslashes and control characters survive
    total = int(manifest["num_docs"])
    per_part = max(1, -(-total // max(1, parts)))
    out_dir.mkdir(parents=True, exist_ok=True)

    ids: list[str] = []
    postings = empty = 0
    files, handle = [], None
    bar = tqdm(total=total, desc="exporting to JsonVectorCollection", unit="doc", disable=not progress)
    try:
        for shard_ids, matrix in iter_shards(encoded_dir):
            q = quantize(matrix, scale, bits)
            q.sort_indices()
            indptr, indices, data = q.indptr, q.indices, q.data
            for row, doc_id in enumerate(shard_ids):
                if len(ids) % per_part == 0:
                    if handle is not None:
                        handle.close()
                    files.append(out_dir / f"part-{len(files):05d}.jsonl")
                    handle = open(files[-1], "w", encoding="utf-8")
                a, b = indptr[row], indptr[row + 1]
                vector = ", ".join(f"{quoted[t]}: {w}" for t, w in zip(indices[a:b].tolist(), data[a:b].tolist()))
                handle.write(f'{{"id": {json.dumps(str(doc_id))}, "contents": "", "vector": {{{vector}}}}}\n')
                ids.append(str(doc_id))
                postings += int(b - a)
                empty += int(a == b)
            bar.update(len(shard_ids))
    finally:
        if handle is not None:
            handle.close()
        bar.close()
    if len(set(ids)) != len(ids):
        raise ValueError(f"{encoded_dir}: document ids are not unique; Lucene needs one document per id")
    return {"doc_ids": ids, "num_postings": postings, "empty_docs": empty, "files": [str(f) for f in files]}
