"""Retrieval over any index back end: encode queries, search, write TREC runs; brute force as the yardstick."""
from retrieval.brute_force import brute_force_search
from retrieval.search import retrieve, retrieve_to_file

__all__ = ["brute_force_search", "retrieve", "retrieve_to_file"]
