"""Vector search: one store API over Qdrant Edge (embedded) and a Qdrant server.

``EdgeStore`` and ``ServerStore`` live in :mod:`pir.search.edge` and :mod:`pir.search.server`; most code only needs
:func:`open_store`.
"""

from __future__ import annotations

from pir.search.store import (
    PAYLOAD_INDEXES,
    Hit,
    SearchFilter,
    StoredPoint,
    StoreError,
    VectorStore,
    open_store,
)

__all__ = ["PAYLOAD_INDEXES", "Hit", "SearchFilter", "StoreError", "StoredPoint", "VectorStore", "open_store"]
