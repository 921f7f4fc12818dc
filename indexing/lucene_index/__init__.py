"""The Lucene impact index through Pyserini/Anserini (JVM start, export, build, loading, search)."""
from indexing.lucene_index.build import build_lucene_index
from indexing.lucene_index.index import LuceneImpactIndex

__all__ = ["LuceneImpactIndex", "build_lucene_index"]
