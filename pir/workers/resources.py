"""What a worker process holds between tasks: the encoder, the vector store and a Redis client.

One :class:`WorkerResources` lives on each Celery app (``app.pir_resources``); it loads nothing until a worker process
asks, so the prefork parent never touches torch or CUDA. The embedded Qdrant Edge store may be open in one process
only: the ``embed`` worker that owns it closes (flushes) it on shutdown so another process can open it afterwards.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from pir.core.config import Settings
from pir.workers.state import state_client

if TYPE_CHECKING:
    import redis

    from pir.encoder.model import ImageEncoder
    from pir.search.store import VectorStore
    from pir.workers.manifest import Manifest

log = logging.getLogger(__name__)


class WorkerResources:
    """Per-process cache of encoders (by name), stores (by collection) and the job-state Redis client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._encoders: dict[str, ImageEncoder] = {}
        self._stores: dict[str, VectorStore] = {}
        self._ensured: set[tuple[str, str]] = set()
        self._redis: redis.Redis | None = None
        self._manifests: dict[str, Manifest | None] = {}

    def preload(self) -> None:
        """Load the default encoder now (called in each worker process at start-up)."""
        enc = self.encoder(self.settings.encoder.name)
        log.info("encoder %s (version %s, dim %d) loaded on %s", enc.name, enc.version, enc.dim, enc.device)

    def encoder(self, name: str | None = None) -> ImageEncoder:
        """The encoder ``name`` (default: the settings'), loaded once per process."""
        name = name or self.settings.encoder.name
        with self._lock:
            if name not in self._encoders:
                import torch  # lazy: start-up (torch)

                from pir.encoder.model import encoder_for  # lazy: start-up (torch, timm, PIL)

                s = self.settings
                if s.encoder.num_threads:
                    torch.set_num_threads(s.encoder.num_threads)
                enc = encoder_for(s, name)
                enc.version  # noqa: B018  (hash the weights once, not inside the first batch)
                self._encoders[name] = enc
            return self._encoders[name]

    def store(self, collection: str, encoder: ImageEncoder) -> VectorStore:
        """The store of ``collection``, opened once per process, its collection created for ``encoder``."""
        with self._lock:
            st = self._stores.get(collection)
            if st is None:
                from pir.search import open_store  # lazy: start-up (numpy)

                st = self._stores[collection] = open_store(self.settings, collection=collection)
            from pir.pipeline import encoder_id  # lazy: start-up (PIL, numpy, tqdm)

            eid = encoder_id(encoder)
            if (collection, eid) not in self._ensured:
                st.ensure_collection(encoder.dim, encoder=eid)
                self._ensured.add((collection, eid))
            return st

    def redis(self) -> redis.Redis:
        """Redis client of the job state (one connection pool per process)."""
        with self._lock:
            if self._redis is None:
                self._redis = state_client(self.settings)
            return self._redis

    def manifest(self, path: str | None) -> Manifest | None:
        """The job manifest at ``path`` when this host sees that file (same data dir or shared folder), else None."""
        if not path:
            return None
        with self._lock:
            if self._manifests.get(path) is None:
                from pir.workers.manifest import open_manifest  # lazy: only workers that record batches need it

                try:
                    self._manifests[path] = open_manifest(path)
                except Exception as e:  # noqa: BLE001  (the job goes on with Redis alone)
                    log.warning("job manifest %s cannot be opened (%s): counting relies on Redis alone", path, e)
                    self._manifests[path] = None
            return self._manifests[path]

    def close(self) -> None:
        """Flush and close every store (idempotent); encoders are simply dropped."""
        with self._lock:
            manifests, self._manifests = self._manifests, {}
            for m in manifests.values():
                if m is not None:
                    m.close()
            stores, self._stores = self._stores, {}
            self._ensured.clear()
            for name, st in stores.items():
                try:
                    st.close()
                    log.info("closed store %r", name)
                except Exception:  # noqa: BLE001  (close the others anyway)
                    log.exception("closing store %r failed", name)
            self._encoders.clear()
            if self._redis is not None:
                self._redis.close()
                self._redis = None

    def __repr__(self) -> str:
        info: dict[str, Any] = {"encoders": list(self._encoders), "stores": list(self._stores)}
        return f"WorkerResources({info})"
