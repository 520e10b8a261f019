"""What ``pir info`` shows: the store, collection, point count, encoder and queue, with credentials redacted."""

from __future__ import annotations

from typing import Any

from pir.config import Settings
from pir.errors import redact_url


def describe(settings: Settings, *, collection: str | None = None) -> dict[str, Any]:
    """The store's info plus the settings a user needs to know (no secret is ever included)."""
    from pir.search import open_store  # lazy: start-up (qdrant)

    with open_store(settings, collection=collection) as store:
        d = store.info()
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
