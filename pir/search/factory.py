"""Open the store the settings describe: Qdrant Edge (embedded), qdrant-client in memory, or a Qdrant server.

Kept apart from :mod:`pir.search.store` (the base class) so that the backends import the base and this module
imports the backends, with no import loop.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pir.search.store import VectorStore, validate_collection_name

if TYPE_CHECKING:
    from pir.config import Settings


def open_store(settings: Settings, *, collection: str | None = None) -> VectorStore:
    """Open the vector store the settings describe.

    ``settings.qdrant.url`` unset: an embedded Qdrant Edge store in ``settings.store_dir / <collection>`` (one process
    at a time). ``":memory:"``: an in-process qdrant-client store (tests, demos; not persisted). Otherwise a Qdrant
    server or cluster at that url.

    Args:
        settings: The settings tree.
        collection: Collection name; defaults to ``settings.qdrant.collection``.
    """
    q = settings.qdrant
    name = validate_collection_name(collection or q.collection)
    if q.url is None:
        from pir.search.edge import EdgeStore  # lazy: start-up (only the chosen backend's client is imported)

        return EdgeStore(
            settings.store_dir / name,
            name,
            hnsw_ef=q.hnsw_ef,
            exact_filter_threshold=q.exact_filter_threshold,
            hnsw_m=q.hnsw_m,
            hnsw_ef_construct=q.hnsw_ef_construct,
        )
    from qdrant_client import QdrantClient  # lazy: start-up (qdrant-client is slow to import)

    from pir.search.server import ServerStore  # lazy: start-up

    if q.url == ":memory:":
        client = QdrantClient(":memory:")
    else:
        client = QdrantClient(
            url=q.url,
            api_key=q.api_key.get_secret_value() if q.api_key else None,
            prefer_grpc=q.prefer_grpc,
            timeout=math.ceil(q.timeout),
        )
    return ServerStore(
        client,
        name,
        hnsw_ef=q.hnsw_ef,
        exact_filter_threshold=q.exact_filter_threshold,
        hnsw_m=q.hnsw_m,
        hnsw_ef_construct=q.hnsw_ef_construct,
        shard_number=q.shard_number,
        replication_factor=q.replication_factor,
        write_consistency_factor=q.write_consistency_factor,
        on_disk_payload=q.on_disk_payload,
        location=q.url,
        owns_client=True,
    )
