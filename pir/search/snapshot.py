"""Backups: ``pir snapshot PATH`` and ``pir restore PATH`` for the embedded store and a Qdrant server.

A snapshot is a folder::

    PATH/
        pir_snapshot.json      # what it holds: backend, collection, point count, vector sizes, encoders, when
        collection/            # embedded store: a consistent copy of the collection folder (shard + pir's record)
        <name>.snapshot        # Qdrant server: the collection snapshot the server made, downloaded

Embedded store (Qdrant Edge): the copy is taken while pir holds the store (its lock and the engine's), right after a
flush, so no write can interleave; sparse files stay sparse. Restoring stages the copy beside the store and swaps it
in under the same lock, then checks the point count against the manifest.

Qdrant server: ``create_snapshot`` on the server, downloaded over its REST API (``GET
/collections/{name}/snapshots/{snapshot}``); restoring uploads it (``POST /collections/{name}/snapshots/upload``).
qdrant-client's local mode (``:memory:``, ``path=``) has no snapshots: it says so in one line.

Restoring over a collection that holds points is refused unless ``force``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pir.core.errors import PirUserError, redact_url
from pir.core.storewait import wait_for_store
from pir.search.factory import get_store_backend, open_store
from pir.search.store import validate_collection_name

if TYPE_CHECKING:
    from pir.core.config import Settings

__all__ = ["MANIFEST", "SnapshotError", "SnapshotSummary", "restore", "snapshot"]

log = logging.getLogger(__name__)

MANIFEST = "pir_snapshot.json"
FORMAT = "pir-snapshot/1"
EDGE_DIR = "collection"


class SnapshotError(PirUserError):
    """A snapshot cannot be written or restored (one line naming the path or collection and what to do)."""


@dataclass
class SnapshotSummary:
    """What a snapshot or a restore did."""

    path: str
    backend: str
    collection: str
    count: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(settings: Settings, dest: str | Path, *, collection: str | None = None) -> SnapshotSummary:
    """Write a snapshot of the collection into the new (or empty) folder ``dest``.

    Raises:
        SnapshotError: ``dest`` is not empty, the collection does not exist, or the backend has no snapshots.
    """
    t0 = time.perf_counter()
    name = validate_collection_name(collection or settings.qdrant.collection)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise SnapshotError(f"snapshot folder {dest} already exists and is not empty: choose a new folder")
    backend = get_store_backend(settings).name
    partial = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with wait_for_store(lambda: open_store(settings, collection=name), timeout_s=settings.store_wait_s) as store:
            if store.dim() is None:
                raise SnapshotError(
                    f"collection '{name}' does not exist in {store.info()['location']}: nothing to save"
                )
            manifest = {
                "format": FORMAT,
                "backend": backend,
                "collection": name,
                "count": store.count(),
                "dim": store.dim(),
                "text_dim": store.text_dim(),
                "encoder": store.encoder(),
                "text_encoder": store.text_encoder(),
                "layout": store.layout(),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            if backend == "edge":
                size = store.copy_to(partial / EDGE_DIR)  # type: ignore[attr-defined]
            else:
                manifest["snapshot_file"], size = _server_snapshot(store, settings, partial)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if dest.exists():
            dest.rmdir()
        partial.rename(dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return SnapshotSummary(str(dest), backend, name, int(manifest["count"]), size, time.perf_counter() - t0)  # type: ignore[call-overload]  # a JSON number


def read_manifest(src: str | Path) -> dict[str, Any]:
    """The manifest of the snapshot folder ``src``.

    Raises:
        SnapshotError: ``src`` is not a pir snapshot (or an unreadable one).
    """
    path = Path(src) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        int(manifest["count"])
        validate_collection_name(manifest["collection"])
        return manifest
    except FileNotFoundError:
        raise SnapshotError(f"{src} is not a pir snapshot (no {MANIFEST} in it)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SnapshotError(f"{path} is not a readable pir snapshot manifest ({e})") from None


def restore(
    settings: Settings, src: str | Path, *, collection: str | None = None, force: bool = False
) -> SnapshotSummary:
    """Restore the snapshot folder ``src`` into the collection (the snapshot's own name unless ``collection``).

    Raises:
        SnapshotError: Not a snapshot, a snapshot of another backend, the target holds points and not ``force``,
            or the restored collection does not hold the snapshot's point count.
    """
    t0 = time.perf_counter()
    src = Path(src)
    manifest = read_manifest(src)
    name = validate_collection_name(collection or manifest["collection"])
    backend = get_store_backend(settings).name
    if (backend == "edge") != (manifest["backend"] == "edge"):
        where = "the embedded store" if manifest["backend"] == "edge" else "a Qdrant server"
        raise SnapshotError(
            f"{src} is a snapshot of {where} and the settings point at "
            f"{'the embedded store' if backend == 'edge' else 'a Qdrant server'}: restore it where it came from"
        )
    if backend == "edge":
        settings.store_dir.mkdir(parents=True, exist_ok=True)  # so the store's lock is taken before anything else
    with wait_for_store(lambda: open_store(settings, collection=name), timeout_s=settings.store_wait_s) as store:
        present = store.count() if store.dim() is not None else 0
        if present and not force:
            raise SnapshotError(
                f"collection '{name}' in {store.info()['location']} already holds {present} points: restoring would "
                "replace them; use --force to replace them, or restore into an empty data dir or another collection"
            )
        if backend == "edge":
            source = src / EDGE_DIR
            if not (source / "shard").is_dir():
                raise SnapshotError(f"{src} has no embedded-store copy ({EDGE_DIR}/shard is missing)")
            store.replace_from(source)  # type: ignore[attr-defined]
            size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
        else:
            size = _server_restore(store, settings, src / str(manifest.get("snapshot_file", "")), name)
        count = store.count()
    if count != int(manifest["count"]):
        raise SnapshotError(
            f"restored collection '{name}' holds {count} points, the snapshot {src} says {manifest['count']}: "
            "the snapshot is incomplete or damaged"
        )
    return SnapshotSummary(str(src), backend, name, count, size, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------ Qdrant server
def _server(store: Any, settings: Settings) -> tuple[str, dict[str, str]]:
    """The REST base url and headers of the server behind ``store``.

    Raises:
        SnapshotError: qdrant-client's local mode, which has no snapshots.
    """
    url = settings.qdrant.url
    if not url or url == ":memory:" or not url.startswith(("http://", "https://")):
        raise SnapshotError(
            f"the store at {url or 'qdrant-client local mode'} has no snapshots (qdrant-client's local mode does "
            "not support them): use the embedded store (PIR_QDRANT__URL unset) or a Qdrant server"
        )
    key = settings.qdrant.api_key.get_secret_value() if settings.qdrant.api_key else None
    return url.rstrip("/"), ({"api-key": key} if key else {})


def _server_snapshot(store: Any, settings: Settings, folder: Path) -> tuple[str, int]:
    """Make a snapshot on the server and download it into ``folder``; returns (file name, bytes)."""
    import httpx  # lazy: start-up

    base, headers = _server(store, settings)
    desc = store.client.create_snapshot(store.collection, wait=True)
    if desc is None:
        raise SnapshotError(f"the Qdrant server at {redact_url(base)} made no snapshot of '{store.collection}'")
    target = folder / desc.name
    url = f"{base}/collections/{store.collection}/snapshots/{desc.name}"
    with httpx.stream("GET", url, headers=headers, timeout=settings.qdrant.timeout) as r:
        if r.status_code != 200:
            raise SnapshotError(
                f"downloading snapshot {desc.name} from {redact_url(base)} failed: HTTP {r.status_code}"
            )
        with open(target, "wb") as f:
            for chunk in r.iter_bytes(1 << 20):
                f.write(chunk)
    try:
        store.client.delete_snapshot(store.collection, desc.name, wait=True)  # the copy now lives in ``folder``
    except Exception as e:  # noqa: BLE001  (a leftover snapshot on the server is harmless)
        log.warning("could not delete snapshot %s on the server: %s", desc.name, e)
    return desc.name, target.stat().st_size


def _server_restore(store: Any, settings: Settings, file: Path, name: str) -> int:
    """Upload the snapshot ``file`` into collection ``name`` on the server (replacing it); returns its bytes."""
    import httpx  # lazy: start-up

    base, headers = _server(store, settings)
    if not file.is_file():
        raise SnapshotError(f"the snapshot file {file} is missing")
    url = f"{base}/collections/{name}/snapshots/upload?priority=snapshot&wait=true"
    with open(file, "rb") as f:
        r = httpx.post(url, headers=headers, files={"snapshot": (file.name, f)}, timeout=None)
    if r.status_code != 200:
        raise SnapshotError(f"uploading {file} to {redact_url(base)} failed: HTTP {r.status_code} {r.text[:200]}")
    store._load_config()  # the collection changed under the client
    return file.stat().st_size
