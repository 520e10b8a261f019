"""Vector search: one store API over Qdrant Edge (embedded) and a Qdrant server.

``EdgeStore`` and ``ServerStore`` live in :mod:`pir.search.edge` and :mod:`pir.search.server`; most code only needs
:func:`open_store` (:mod:`pir.search.factory`) and :func:`pir.search.service.search_hybrid`.
"""

from __future__ import annotations

from pir.search.factory import open_store
from pir.search.store import (
    PAYLOAD_INDEXES,
    Hit,
    HybridQuery,
    LegacyLayoutError,
    SearchFilter,
    StoredPoint,
    StoreError,
    VectorStore,
)
from pir.search.words import SparseVector

__all__ = [
    "PAYLOAD_INDEXES",
    "Hit",
    "HybridQuery",
    "LegacyLayoutError",
    "SearchFilter",
    "SparseVector",
    "StoreError",
    "StoredPoint",
    "VectorStore",
    "open_store",
    "search_hybrid",
]


def __getattr__(name: str) -> object:
    """``pir.search.search_hybrid`` without importing the query side (PIL, settings) for store-only users."""
    if name == "search_hybrid":
        from pir.search.service import search_hybrid  # lazy: start-up

        return search_hybrid
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
