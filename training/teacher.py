"""Teachers score (query, passage) pairs: the labels of DistilSPLADE and the false-negative filter of SPLADE-max.

On MS MARCO the scores come precomputed from the hub (a MiniLM cross-encoder). For any other dataset the teacher is
a model folder: a sentence-transformers CrossEncoder (a sequence-classification checkpoint) or a SPLADE model,
whose score is the dot product q.d of its sparse vectors. Which one is decided by the checkpoint itself.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def is_cross_encoder(model_dir: str | Path) -> bool:
    """Whether the checkpoint is a sequence-classification model (a cross-encoder) rather than a SPLADE one.

    Raises:
        FileNotFoundError: the folder has no config.json.
    """
    config = Path(model_dir) / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"{config}: a teacher model folder needs a config.json")
    architectures = json.loads(config.read_text()).get("architectures") or []
    return any("SequenceClassification" in a for a in architectures)


class SpladeTeacher:
    """s(q, d) = q.d with a SPLADE model; document vectors already encoded (by mining) can be handed in.

    Args:
        encoder: an `indexing.encoder.SpladeEncoder`.
        encoded_docs: (doc ids, CSR matrix) already encoded with that encoder, or None.
    """

    def __init__(self, encoder, encoded_docs: tuple[list[str], sp.csr_matrix] | None = None):
        self.encoder = encoder
        self.name = f"splade:{encoder.model_path}"
        self._doc_rows: dict[str, int] = {}
        self._doc_matrix = None
        if encoded_docs is not None:
            ids, matrix = encoded_docs
            self._doc_rows = {d: i for i, d in enumerate(ids)}
            self._doc_matrix = matrix

    def score(self, queries: Mapping[str, str], passages: Mapping[str, str],
              pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The teacher score of each (qid, pid) pair, in order (float64)."""
        qids = sorted({q for q, _ in pairs})
        q_rows = {q: i for i, q in enumerate(qids)}
        q_matrix = self.encoder.encode_queries([queries[q] for q in qids], progress=True)
        pids = sorted({p for _, p in pairs if p not in self._doc_rows})
        doc_rows = dict(self._doc_rows)
        parts = [self._doc_matrix] if self._doc_matrix is not None else []
        if pids:
            offset = self._doc_matrix.shape[0] if self._doc_matrix is not None else 0
            doc_rows.update({p: offset + i for i, p in enumerate(pids)})
            parts.append(self.encoder.encode_documents([passages[p] for p in pids], progress=True))
        docs = sp.vstack(parts, format="csr")
        q_index = np.fromiter((q_rows[q] for q, _ in pairs), dtype=np.int64, count=len(pairs))
        d_index = np.fromiter((doc_rows[p] for _, p in pairs), dtype=np.int64, count=len(pairs))
        products = q_matrix[q_index].multiply(docs[d_index])
        return np.asarray(products.sum(axis=1), dtype=np.float64).ravel()

class CrossEncoderTeacher:
    """s(q, d) = the cross-encoder's logit (sentence-transformers CrossEncoder.predict).

    Args:
        model_dir: a CrossEncoder folder or hub id.
        batch_size: pairs per forward pass.
        max_length: tokens per (query, passage) pair.
    """

    def __init__(self, model_dir: str | Path, batch_size: int = 64, max_length: int = 512):
        from sentence_transformers import CrossEncoder

        self.name = f"cross-encoder:{model_dir}"
        self.model = CrossEncoder(str(model_dir), max_length=max_length)
        self.batch_size = batch_size

    def score(self, queries: Mapping[str, str], passages: Mapping[str, str],
              pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The teacher score of each (qid, pid) pair, in order (float64)."""
        texts = [(queries[q], passages[p]) for q, p in pairs]
        scores = self.model.predict(texts, batch_size=self.batch_size, show_progress_bar=True)
        return np.asarray(scores, dtype=np.float64)
