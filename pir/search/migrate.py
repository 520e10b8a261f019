"""``pir reindex``: upgrade a collection of the old single-vector layout to image/text/words, losing nothing.

The stored image vectors and payloads are reused as they are (no image is decoded or embedded); the ``text`` and
``words`` vectors are computed from each payload's words (title, description, object name, descriptions, class
words). Everything is written to a new collection first and swapped in only after its count and ids were checked
against the old one, so a crash at any point loses nothing, and running ``reindex`` again finishes or redoes the job:

Each backend says how (its module's ``reindex`` function, named by its :class:`~pir.search.factory.StoreSpec`):

- Qdrant Edge: the new shard is built in ``<store_dir>/.<name>.reindex``; the swap renames the old directory to
  ``.<name>.old``, the new one to ``<name>``, then deletes ``.<name>.old``.
- Qdrant server: the new collection is ``<name>__reindex``; after the check the old collection is dropped,
  re-created with the new layout, filled from ``<name>__reindex`` (checked again), and ``<name>__reindex`` is dropped.
  Points keep their ids, payloads and image vectors bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.search.factory import REGISTRY, get_store_backend
from pir.search.query import StoreError
from pir.search.store import VectorStore
from pir.search.words import get_text_encoder, open_text_cache, text_and_words

if TYPE_CHECKING:
    from pir.core.config import Settings
    from pir.encoder.text import TextEmbeddingCache, TextEncoder

TMP_SUFFIX = "__reindex"
DONE_MARKER = "REINDEX_COMPLETE"


@dataclass
class ReindexSummary:
    """What :func:`reindex` did."""

    collection: str
    backend: str
    points: int = 0
    text_vectors: int = 0
    words_vectors: int = 0
    already: bool = False  # the collection had the named layout already: nothing to do
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reindex(
    settings: Settings,
    *,
    collection: str | None = None,
    store: VectorStore | None = None,
    text_encoder: TextEncoder | None = None,
    include_class: bool = True,
    batch_size: int = 256,
    show_progress: bool = False,
    text_cache: TextEmbeddingCache | None = None,
) -> ReindexSummary:
    """Upgrade ``collection`` (default: the settings') to the named-vector layout, or finish an interrupted upgrade.

    ``store``: an open server store to upgrade (e.g. an in-memory client); by default the settings' store is opened.
    An Edge store is always reopened from ``settings.store_dir`` (its directory is swapped). ``text_cache``: the
    text-embedding cache (default: the settings' one; enrichment descriptions repeat, so most texts are cached).

    Raises:
        StoreError: There is no such collection, or the copy does not match the original (nothing is swapped then).
    """
    t0 = time.perf_counter()
    te = text_encoder or get_text_encoder(settings)
    cache = text_cache or open_text_cache(settings)
    opts: dict[str, Any] = {
        "text_encoder": te,
        "include_class": include_class,
        "batch_size": batch_size,
        "show_progress": show_progress,
        "text_cache": cache,
    }
    spec = REGISTRY[store.backend] if store is not None else get_store_backend(settings)
    try:
        summary = spec.reindex(settings, collection, store, te, opts)
    finally:
        if text_cache is None and cache is not None:
            cache.close()
    summary.seconds = time.perf_counter() - t0
    return summary


# --------------------------------------------------------------------------------------------------------- copying
def copy_points(
    src: VectorStore,
    dst: VectorStore,
    *,
    text_encoder: TextEncoder | None = None,
    include_class: bool = True,
    batch_size: int = 256,
    show_progress: bool = False,
    summary: ReindexSummary | None = None,
    text_cache: TextEmbeddingCache | None = None,
) -> int:
    """Copy every point of ``src`` into ``dst`` (ids, payloads, image vectors as stored).

    With ``text_encoder`` the ``text`` and ``words`` vectors are computed from the payloads; without, the stored ones
    are copied. Returns the number of points copied.
    """
    from tqdm.auto import tqdm  # lazy: start-up (tqdm)

    n = 0
    bar = tqdm(total=src.count(), desc="reindex", unit="pt", disable=not show_progress)
    batch: list[Any] = []

    def flush() -> None:
        nonlocal n
        if not batch:
            return
        payloads = [p.payload for p in batch]
        if text_encoder is not None:
            text, words = text_and_words(payloads, text_encoder, include_class=include_class, cache=text_cache)
        else:
            text, words = [p.text for p in batch], [p.words for p in batch]
        if summary is not None:
            summary.text_vectors += sum(t is not None for t in text)
            summary.words_vectors += sum(w is not None for w in words)
        matrix = np.stack([np.asarray(p.vector, dtype=np.float32) for p in batch])
        dst.upsert([p.id for p in batch], matrix, payloads, text=text, words=words)
        n += len(batch)
        bar.update(len(batch))
        batch.clear()

    for p in src.scroll(batch_size=batch_size, with_vectors=True):
        if p.vector is None:
            raise StoreError(f"point {p.id} of collection '{src.collection}' has no image vector; nothing was changed")
        batch.append(p)
        if len(batch) >= batch_size:
            flush()
    flush()
    bar.close()
    return n


def check_same(src: VectorStore, dst: VectorStore) -> None:
    """Same count and ids in both, or StoreError (nothing is swapped then)."""
    a, b = src.count(), dst.count()
    ids_a = {p.id for p in src.scroll(batch_size=1024)}
    ids_b = {p.id for p in dst.scroll(batch_size=1024)}
    if a != b or ids_a != ids_b:
        raise StoreError(
            f"reindex of '{src.collection}': the copy has {b} points, the original {a} "
            f"({len(ids_a - ids_b)} missing); the original was kept unchanged"
        )
