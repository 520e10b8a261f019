"""What ``pir info`` shows: the store, collection, point count, encoder, queue and the collection's effective
settings (quantization, on-disk vectors, HNSW, payload indexes, distribution, filter planner), credentials redacted."""

from __future__ import annotations

from typing import Any

from pir.core.config import Settings
from pir.core.errors import DataDirError, redact_url


def describe(settings: Settings, *, collection: str | None = None) -> dict[str, Any]:
    """The store's info plus the settings a user needs to know (no secret is ever included).

    Raises:
        DataDirError: The data dir is a file (an embedded store could never be there).
    """
    from pir.search import open_store  # lazy: start-up (qdrant)

    if settings.qdrant.url is None and settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise DataDirError(f"data dir {settings.data_dir} is a file, not a folder: point --data-dir at a folder")

    with open_store(settings, collection=collection) as store:
        d = store.info()
        d["collection_settings"] = store.collection_settings()
    d.update(
        data_dir=str(settings.data_dir),
        default_encoder=settings.encoder.name,
        device=settings.encoder.device,
        broker=redact_url(settings.worker.broker_url) if settings.worker.broker_url else "in-process",
    )
    for key in ("url", "location"):
        if isinstance(d.get(key), str):
            d[key] = redact_url(d[key])
    return d
