"""Vector search: one store API over Qdrant Edge (embedded) and a Qdrant server, and the query side.

A lazy package face: ``from pir.search import open_store`` imports the store modules only then, so the light parts
(:mod:`pir.search.request`, which the CLI's options are generated from) cost no numpy or Qdrant at start-up.

- :class:`~pir.search.request.SearchRequest`: one search, for every front end;
- :class:`~pir.search.runtime.SearchRuntime`: executes requests (store, encoders, feedback, like);
- :func:`open_store` (:mod:`pir.search.factory`), :class:`~pir.search.store.VectorStore` and its value objects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pir.search.factory import open_store
    from pir.search.query import Hit, HybridQuery, LegacyLayoutError, SearchFilter, StoredPoint, StoreError
    from pir.search.request import SearchRequest
    from pir.search.runtime import SearchRuntime
    from pir.search.service import SearchResponse, SearchResult, search_hybrid
    from pir.search.store import PAYLOAD_INDEXES, VectorStore
    from pir.search.words import SparseVector

#: Public name -> the module that defines it (imported on first use).
_FACE = {
    "open_store": "pir.search.factory",
    "SearchRequest": "pir.search.request",
    "SearchRuntime": "pir.search.runtime",
    "SearchResponse": "pir.search.service",
    "SearchResult": "pir.search.service",
    "search_hybrid": "pir.search.service",
    "PAYLOAD_INDEXES": "pir.search.store",
    "Hit": "pir.search.query",
    "HybridQuery": "pir.search.query",
    "LegacyLayoutError": "pir.search.query",
    "SearchFilter": "pir.search.query",
    "StoredPoint": "pir.search.query",
    "StoreError": "pir.search.query",
    "VectorStore": "pir.search.store",
    "SparseVector": "pir.search.words",
}

__all__ = [
    "PAYLOAD_INDEXES",
    "Hit",
    "HybridQuery",
    "LegacyLayoutError",
    "SearchFilter",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "SearchRuntime",
    "SparseVector",
    "StoreError",
    "StoredPoint",
    "VectorStore",
    "open_store",
    "search_hybrid",
]
assert sorted(__all__) == sorted(_FACE)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (start-up: see the module docstring)."""
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
