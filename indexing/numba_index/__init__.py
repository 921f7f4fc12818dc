"""This project's impact index: numba kernels over flat block-max arrays (build, layout, kernels, loading, search)."""
from indexing.numba_index.build import build_index, build_index_from_matrix
from indexing.numba_index.index import ImpactIndex

__all__ = ["ImpactIndex", "build_index", "build_index_from_matrix"]
