"""Indexing: corpora encoded into sparse vectors, and the impact index back ends over one folder contract.

Two back ends share `indexing.base` (the folder files, the checks, the quantisation rule and the
`SearchableIndex` interface that `retrieval.retrieve()` takes): this project's numba index (`numba_index`) and
a Lucene index through Pyserini (`lucene_index`). The encoder is imported from its module,
`from indexing.encoder import SpladeEncoder`, because it loads torch.
"""
from indexing.base import QuantizedIndex, SearchableIndex, default_scale, quantize
from indexing.encode import encode_corpus
from indexing.lucene_index import LuceneImpactIndex, build_lucene_index
from indexing.numba_index import ImpactIndex, build_index, build_index_from_matrix

__all__ = [
    "ImpactIndex",
    "LuceneImpactIndex",
    "QuantizedIndex",
    "SearchableIndex",
    "build_index",
    "build_index_from_matrix",
    "build_lucene_index",
    "default_scale",
    "encode_corpus",
    "quantize",
]
