"""``pir reindex``: upgrade a collection of the old single-vector layout to image/text/words, losing nothing.

The stored image vectors and payloads are reused as they are (no image is decoded or embedded); the ``text`` and
``words`` vectors are computed from each payload's words (title, description, object name, descriptions, class
words). Everything is written to a new collection first and swapped in only after its count and ids were checked
against the old one, so a crash at any point loses nothing, and running ``reindex`` again finishes or redoes the job:

- Qdrant Edge: the new shard is built in ``<store_dir>/.<name>.reindex``; the swap renames the old directory to
  ``.<name>.old``, the new one to ``<name>``, then deletes ``.<name>.old``.
- Qdrant server: the new collection is ``<name>__reindex``; after the check the old collection is dropped,
  re-created with the new layout, filled from ``<name>__reindex`` (checked again), and ``<name>__reindex`` is dropped.
  Points keep their ids, payloads and image vectors bit for bit.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.search.factory import open_store
from pir.search.store import LEGACY, NAMED, StoreError, VectorStore, index_settings, validate_collection_name
from pir.search.words import get_text_encoder, open_text_cache, text_and_words

if TYPE_CHECKING:
    from pir.config import Settings
    from pir.encoder.text import TextEmbeddingCache, TextEncoder

log = logging.getLogger(__name__)

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
    try:
        if store is not None and store.backend == "server":
            summary = _reindex_server(store, te, opts)
        elif settings.qdrant.url is None:
            if store is not None:
                raise StoreError("reindex: close the Qdrant Edge store first (its directory is swapped)")
            summary = _reindex_edge(settings, collection, te, opts)
        else:
            with open_store(settings, collection=collection) as st:
                summary = _reindex_server(st, te, opts)
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


def _check_same(src: VectorStore, dst: VectorStore) -> None:
    """Same count and ids in both, or StoreError (nothing is swapped then)."""
    a, b = src.count(), dst.count()
    ids_a = {p.id for p in src.scroll(batch_size=1024)}
    ids_b = {p.id for p in dst.scroll(batch_size=1024)}
    if a != b or ids_a != ids_b:
        raise StoreError(
            f"reindex of '{src.collection}': the copy has {b} points, the original {a} "
            f"({len(ids_a - ids_b)} missing); the original was kept unchanged"
        )


# ------------------------------------------------------------------------------------------------------ Qdrant Edge
def _reindex_edge(settings: Settings, collection: str | None, te: TextEncoder, opts: dict[str, Any]) -> ReindexSummary:
    from pir.search.edge import EdgeStore  # lazy: start-up (qdrant_edge)

    name = validate_collection_name(collection or settings.qdrant.collection)
    root = settings.store_dir
    live, tmp, old = root / name, root / f".{name}.reindex", root / f".{name}.old"
    summary = ReindexSummary(collection=name, backend="edge")

    def edge(path: Path) -> EdgeStore:
        return EdgeStore(path, name, warmup=False, **index_settings(settings))

    if not live.exists() and old.exists():  # interrupted between the two renames of the swap
        if (tmp / DONE_MARKER).exists():
            os.replace(tmp, live)
            (live / DONE_MARKER).unlink(missing_ok=True)
            shutil.rmtree(old)
        else:
            os.replace(old, live)
    with edge(live) as src:
        layout = src.layout()
        if layout is None:
            raise StoreError(f"reindex: there is no collection '{name}' at {live}")
        summary.points = src.count()
        if layout == NAMED:
            summary.already = True
            shutil.rmtree(tmp, ignore_errors=True)
            return summary
        if tmp.exists():  # a copy left by an interrupted run: start it again from the intact original
            shutil.rmtree(tmp)
        with edge(tmp) as dst:
            dst.ensure_collection(int(src.dim() or 0), encoder=src.encoder(), text_dim=te.dim, text_encoder=te.name)
            copy_points(src, dst, summary=summary, **opts)
            _check_same(src, dst)
            dst.optimize()
    (tmp / DONE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    os.replace(live, old)
    os.replace(tmp, live)
    (live / DONE_MARKER).unlink()
    shutil.rmtree(old)
    log.info("reindexed '%s': %d points, now image/text/words", name, summary.points)
    return summary


# --------------------------------------------------------------------------------------------------- Qdrant server
def _reindex_server(store: VectorStore, te: TextEncoder, opts: dict[str, Any]) -> ReindexSummary:
    from pir.search.server import ServerStore  # lazy: start-up (qdrant_client, httpx)

    if not isinstance(store, ServerStore):
        raise StoreError(f"reindex: unexpected store backend {store.backend!r}")
    client, name = store.client, store.collection
    tmp_name = name + TMP_SUFFIX
    summary = ReindexSummary(collection=name, backend="server")
    server = store.sibling

    tmp_exists = client.collection_exists(tmp_name)
    layout = store.layout()
    if layout is None and not tmp_exists:
        raise StoreError(f"reindex: there is no collection '{name}' at {store.location}")
    if layout == NAMED and not tmp_exists:
        summary.already = True
        summary.points = store.count()
        return summary
    tmp = server(tmp_name)
    if layout == LEGACY:
        if tmp_exists:  # a copy left by an interrupted run: start it again from the intact original
            client.delete_collection(tmp_name)
        tmp.ensure_collection(int(store.dim() or 0), encoder=store.encoder(), text_dim=te.dim, text_encoder=te.name)
        summary.points = copy_points(store, tmp, summary=summary, **opts)
        _check_same(store, tmp)
        encoder = store.encoder()
        client.delete_collection(name)  # the full, checked copy lives in tmp_name from here on
    else:  # interrupted after the original was dropped: tmp_name holds the checked copy
        encoder = tmp.encoder()
    fresh = server(name)
    fresh.ensure_collection(int(tmp.dim() or 0), encoder=encoder, text_dim=te.dim, text_encoder=tmp.text_encoder())
    n = copy_points(tmp, fresh, batch_size=opts["batch_size"], show_progress=opts["show_progress"])
    _check_same(tmp, fresh)
    summary.points = n
    client.delete_collection(tmp_name)
    store._dim = None  # reload the layout on next use  # noqa: SLF001
    log.info("reindexed '%s': %d points, now image/text/words", name, n)
    return summary
