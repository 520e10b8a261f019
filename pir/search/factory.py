"""The store registry: which vector-store backend the settings ask for, and how to open it, in one place.

A backend is a module that defines a :class:`~pir.search.store.VectorStore` subclass and an opener::

    def open_store(settings: Settings, collection: str) -> VectorStore

Adding a backend is that module plus one :func:`register_store` line (a :class:`StoreSpec`). :func:`open_store` opens
the first registered backend (by ``priority``, lowest first) whose ``matches(settings)`` is true; no backend module
is imported before it is chosen (qdrant-client is slow to import).

Kept apart from :mod:`pir.search.store` (the base class) so that the backends import the base and this module
names the backends, with no import loop.

Example:
    >>> from pir.search import open_store
    >>> with open_store(settings) as store:   # qdrant.url unset: Qdrant Edge under settings.store_dir
    ...     store.info()["backend"]
    'edge'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pir.search.query import StoreError
from pir.search.store import VectorStore, validate_collection_name

if TYPE_CHECKING:
    from pir.core.config import Settings

__all__ = ["REGISTRY", "StoreSpec", "get_store_backend", "open_store", "register_store"]


@dataclass(frozen=True)
class StoreSpec:
    """A registered store backend: its name, when it applies, where its opener lives, its matching priority."""

    name: str
    matches: Callable[[Settings], bool]
    module: str
    opener: str = "open_store"
    priority: int = 50
    #: The backend module's function that upgrades an old collection layout (``pir reindex``).
    reindexer: str = "reindex"

    def open(self, settings: Settings, collection: str) -> VectorStore:
        """Import the backend module (only now) and open ``collection`` with it."""
        return getattr(importlib.import_module(self.module), self.opener)(settings, collection)

    def reindex(self, settings: Settings, collection: str | None, store: VectorStore | None, *args: Any) -> Any:
        """Upgrade ``collection`` (or the open ``store``) the backend's own way (:mod:`pir.search.migrate`)."""
        return getattr(importlib.import_module(self.module), self.reindexer)(settings, collection, store, *args)


#: Backend name -> spec; :func:`open_store` asks them in ``priority`` order.
REGISTRY: dict[str, StoreSpec] = {}


def register_store(spec: StoreSpec) -> None:
    """Register a store backend under ``spec.name`` (replacing one of the same name)."""
    REGISTRY[spec.name] = spec


register_store(StoreSpec("edge", lambda s: s.qdrant.url is None, "pir.search.edge", priority=10))
register_store(
    StoreSpec("memory", lambda s: s.qdrant.url == ":memory:", "pir.search.server", "open_memory", priority=20)
)
register_store(StoreSpec("server", lambda s: s.qdrant.url is not None, "pir.search.server", priority=90))


def get_store_backend(settings: Settings) -> StoreSpec:
    """The first registered backend (by priority) that matches the settings.

    Raises:
        StoreError: None matches.
    """
    for spec in sorted(REGISTRY.values(), key=lambda s: s.priority):
        if spec.matches(settings):
            return spec
    raise StoreError(f"no store backend for qdrant.url={settings.qdrant.url!r}; registered: {', '.join(REGISTRY)}")


def open_store(settings: Settings, *, collection: str | None = None) -> VectorStore:
    """Open the vector store the settings describe.

    ``settings.qdrant.url`` unset: an embedded Qdrant Edge store in ``settings.store_dir / <collection>`` (one process
    at a time). ``":memory:"``: an in-process qdrant-client store (tests, demos; not persisted). Otherwise a Qdrant
    server or cluster at that url. Other backends: :func:`register_store`.

    Args:
        settings: The settings tree.
        collection: Collection name; defaults to ``settings.qdrant.collection``.
    """
    name = validate_collection_name(collection or settings.qdrant.collection)
    return get_store_backend(settings).open(settings, name)
