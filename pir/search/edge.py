"""Embedded vector store: Qdrant Edge (``qdrant-edge-py`` 0.9), the Qdrant engine running in this process.

Layout of a collection directory::

    <store_dir>/<collection>/
        shard/                 # the Qdrant Edge shard (segments, WAL, edge_config.json)
        pir_collection.json    # pir's record: layout, vector sizes, distance, encoder names

A collection holds the named vectors ``image`` and ``text`` (cosine) and the sparse ``words`` (IDF modifier); a
shard with one unnamed vector is the legacy layout (see :class:`pir.search.store.LegacyLayoutError`).

Only one process (and one :class:`EdgeStore`) may open a directory at a time; use a Qdrant server for several
processes. pir's own lock (:class:`pir.core.storewait.StoreLock`, ``.<collection>.lock`` beside the directory) is taken
before the store is loaded or created, and a new shard is built in a temporary folder and renamed into place, so
two first ingests into a new data dir wait for each other instead of racing on a half-created directory.

A store on a read-only file system or a full disk (the engine cannot even load it in place: it maps new pages at
load) is opened from a private copy in the temporary folder, for reading only: writes are refused with one line.
Writes keep a :class:`pir.core.diskspace.Reserve` (a ballast file beside the directory), released right before each
update, so another process filling the disk makes pir stop with one line instead of a SIGBUS.

The HNSW index is built only by :meth:`EdgeStore.optimize` (blocking); until then searches are exact brute force.
Every call into ``qdrant_edge`` lives in this module (the package is beta and its API drifts).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qdrant_edge import (
    AcornSearchParams,
    BinaryQuantizationConfig,
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    Expression,
    FieldCondition,
    Filter,
    Formula,
    Fusion,
    HasIdCondition,
    HnswIndexConfig,
    MatchAny,
    Modifier,
    PayloadSchemaType,
    Point,
    Prefetch,
    QuantizationSearchParams,
    Query,
    QueryBatchRequest,
    QueryRequest,
    RangeDateTime,
    RangeFloat,
    RecommendQuery,
    ScalarQuantizationConfig,
    ScalarType,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)
from qdrant_edge import SparseVector as EdgeSparseVector

from pir.core.diskspace import (
    MB,
    RESERVE_MB,
    STORE_OPEN_MB,
    Reserve,
    batch_bytes,
    check_store_open,
    copy_tree_sparse,
    dir_bytes,
    ensure_space,
    free_bytes,
)
from pir.core.errors import DiskSpaceError, StoreBusyError
from pir.core.storewait import StoreLock, held_message, wait_for_store
from pir.search import store as st
from pir.search.points import to_hits, to_stored_point
from pir.search.query import (
    IMAGE,
    LEGACY,
    NAMED,
    TEXT,
    WORDS,
    WORDS_SCALE,
    Ask,
    Batch,
    Hit,
    HybridQuery,
    Leg,
    Recommend,
    SearchFilter,
    StoredPoint,
    StoreError,
)
from pir.search.store import index_settings, validate_collection_name
from pir.search.words import WORDS_MODEL, SparseVector

if TYPE_CHECKING:
    from pir.core.config import Settings
    from pir.encoder.text import TextEncoder
    from pir.search.migrate import ReindexSummary

log = logging.getLogger(__name__)

META_FILE = "pir_collection.json"
SHARD_DIR = "shard"
_SCHEMA_TYPES = {
    "keyword": PayloadSchemaType.Keyword,
    "integer": PayloadSchemaType.Integer,
    "datetime": PayloadSchemaType.Datetime,
}
_LOCK_MARKERS = ("WouldBlock", "Can't init WAL", "failed to open WAL")


class EdgeStore(st.VectorStore):
    """A collection stored on disk with Qdrant Edge.

    Args:
        path: Collection directory (created by :meth:`ensure_collection` when missing).
        collection: Collection name (reported in errors and :meth:`info`).
        full_scan_threshold_kb: Below this many KB of vectors a search scans instead of walking the graph.
        indexing_threshold_kb: Segments with fewer KB of vectors get no HNSW index from :meth:`optimize`
            (None = the engine default, about 10 MB); at creation.
        upsert_batch: Points per update operation.
        warmup: Run a few queries after opening an existing store (the first queries on cold pages are slow).
        wait_s: Seconds :meth:`ensure_collection` waits for another process that is creating (or holds) the store.
        index: ``hnsw_ef``, ``exact_filter_threshold``, ``hnsw_m``, ``hnsw_ef_construct`` (see
            :class:`pir.search.store.VectorStore`).

    Raises:
        StoreError: The directory is open elsewhere, or the shard cannot be loaded.
    """

    backend = "edge"

    def __init__(
        self,
        path: Path,
        collection: str,
        *,
        full_scan_threshold_kb: int = 10_000,
        indexing_threshold_kb: int | None = None,
        upsert_batch: int = 1000,
        warmup: bool = True,
        wait_s: float = 0.0,
        **index: Any,
    ) -> None:
        super().__init__(collection, **index)
        self.path = Path(path)
        self.full_scan_threshold_kb = full_scan_threshold_kb
        self.indexing_threshold_kb = indexing_threshold_kb
        self.upsert_batch = upsert_batch
        self.wait_s = wait_s
        self._shard: EdgeShard | None = None
        self._meta: dict[str, Any] | None = None
        self._config: dict[str, Any] = {}  # the shard's own edge_config.json (the effective settings)
        self._closed = False
        self._root = self.path  # where the shard is read from: the store itself, or a private read-only copy
        self._read_only: str | None = None  # why the store is open read-only (None: writable)
        self._copy_dir: Path | None = None
        self._lock = StoreLock(self.path)
        self._reserve = Reserve(self.path.parent / f".{self.path.name}.reserve", self.path.parent.parent)
        try:
            if self.path.parent.exists():  # an existing store dir: lock before looking (else at creation)
                self._acquire()
            if self.shard_path.exists():
                self._load()
                if warmup:
                    self._warmup()
        except BaseException:
            self._release()
            raise

    @property
    def shard_path(self) -> Path:
        """Directory of the Qdrant Edge shard."""
        return self._root / SHARD_DIR

    @property
    def meta_path(self) -> Path:
        """pir's record of the collection (vector size, encoder)."""
        return self._root / META_FILE

    @property
    def read_only(self) -> str | None:
        """Why the store is open read-only from a private copy (read-only file system, full disk), or None."""
        return self._read_only

    # ----------------------------------------------------------------- lifecycle
    def _load(self) -> None:
        reason = self._read_only_reason()
        if reason is not None:
            self._open_copy(reason)
        else:
            check_store_open(self.path)  # a full disk would make the engine die of SIGBUS, with no message
        try:
            self._shard = EdgeShard.load(str(self.shard_path))
        except Exception as exc:
            raise self._open_error(exc) from exc
        self._meta = self._read_meta()
        self._ensure_indexes()

    def _acquire(self) -> None:
        """Take pir's lock on the store directory (a :class:`StoreError` saying who can hold it when held)."""
        try:
            self._lock.acquire()
        except StoreBusyError as exc:
            raise StoreError(str(exc)) from None

    def _read_only_reason(self) -> str | None:
        """Why the store cannot be loaded in place (the engine writes at load), or None when it can."""
        try:
            fd, probe = tempfile.mkstemp(prefix=".pir-write-check-", dir=self.path)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            if e.errno == errno.EROFS:
                return "on a read-only file system"
            if e.errno in (errno.EACCES, errno.EPERM):
                return "not writable (permission denied)"
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                return "on a full disk"
            raise
        free = free_bytes(self.path)
        if free < STORE_OPEN_MB * MB:
            return f"on a full disk ({free / MB:.1f} MB free, {STORE_OPEN_MB} MB needed to open it in place)"
        return None

    def _open_copy(self, reason: str) -> None:
        """Copy the store into the temporary folder and read it from there (writes refused)."""
        need = dir_bytes(self.path) + STORE_OPEN_MB * MB
        tmp_root = Path(tempfile.gettempdir())
        free = free_bytes(tmp_root)
        if free < need:
            raise DiskSpaceError(
                f"the Qdrant Edge store at {self.path} is {reason}: pir reads such a store from a private copy, "
                f"which needs {need / MB:.0f} MB in the temporary folder {tmp_root} ({free / MB:.0f} MB free); free "
                "space there or set TMPDIR to a folder with room"
            )
        self._copy_dir = Path(tempfile.mkdtemp(prefix="pir-readonly-store-"))
        dst = self._copy_dir / self.path.name
        copy_tree_sparse(self.path, dst, skip=(f".{SHARD_DIR}.creating",))
        self._root, self._read_only = dst, reason
        log.warning(
            "the store at %s is %s: reading a private copy (%.0f MB in %s); writes are refused",
            self.path,
            reason,
            need / MB - STORE_OPEN_MB,
            self._copy_dir,
        )

    def _writable(self, what: str) -> None:
        """Refuse ``what`` on a store open read-only (it would change only the private copy)."""
        if self._read_only is not None:
            raise StoreError(
                f"cannot {what}: the Qdrant Edge store at {self.path} is {self._read_only}, so it is open read-only "
                "(searching works); make its folder writable with free space, then run the command again"
            )

    def _open_error(self, exc: Exception) -> StoreError:
        msg = str(exc)
        if any(m in msg for m in _LOCK_MARKERS):
            return StoreError(held_message(self.path))
        return StoreError(f"cannot open the Qdrant Edge store at {self.shard_path}: {msg}")

    def _read_meta(self) -> dict[str, Any]:
        """Read ``pir_collection.json``; rebuild it from the shard's own config when it is missing.

        The layout always comes from the shard's config (the truth), so an old record without it is read right.
        """
        cfg_path = self.shard_path / "edge_config.json"
        shard_layout: dict[str, Any] = {}
        try:
            self._config = json.loads(cfg_path.read_text())
            vectors = self._config["vectors"]
            if IMAGE in vectors:
                shard_layout = {"layout": NAMED, "dim": int(vectors[IMAGE]["size"])}
                if TEXT in vectors:
                    shard_layout["text_dim"] = int(vectors[TEXT]["size"])
            else:
                params = vectors[""] if "" in vectors else next(iter(vectors.values()))
                shard_layout = {"layout": LEGACY, "dim": int(params["size"]), "text_dim": None}
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
            log.warning("cannot read the vector layout from %s (%s)", cfg_path, exc)
        if self.meta_path.exists():
            try:
                meta = json.loads(self.meta_path.read_text())
                int(meta["dim"])
                return {**meta, **shard_layout}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("%s is unreadable (%s); reading the vector size from the shard config", self.meta_path, exc)
        try:
            meta = {"collection": self.collection, "distance": "Cosine", **shard_layout}
            int(meta["dim"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"cannot tell the vector size of the Qdrant Edge store at {self.path}: {self.meta_path.name} is "
                f"missing and {cfg_path} is unreadable ({exc})"
            ) from exc
        meta.setdefault("encoder", None)
        self._write_meta(meta)
        return meta

    def _write_meta(self, meta: dict[str, Any]) -> None:
        if self._read_only is not None and self._root == self.path:
            return  # never write into a read-only store's own folder
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, self.meta_path)

    def _ensure_indexes(self) -> None:
        existing = set(self._sh.info().payload_schema)
        for name, kind in st.PAYLOAD_INDEXES.items():
            if name not in existing:
                self._sh.update(UpdateOperation.create_field_index(name, _SCHEMA_TYPES[kind]))

    def _warmup(self, n: int = 4) -> None:
        """A few queries so the first real one does not pay for cold mmap pages."""
        if self._meta is None or self._sh.info().points_count == 0:
            return
        rng = np.random.default_rng(0)
        for q in rng.standard_normal((n, int(self._meta["dim"]))).astype(np.float32):
            self._sh.query(
                QueryRequest(limit=10, query=Query.Nearest(q, using=self._image_using()), with_payload=False)
            )

    @property
    def _sh(self) -> EdgeShard:
        if self._closed:
            raise StoreError(f"the Qdrant Edge store at {self.path} is closed")
        if self._shard is None:
            raise StoreError(
                f"collection '{self.collection}' does not exist yet at {self.path}; call ensure_collection(dim) first"
            )
        return self._shard

    def _ensure(
        self, dim: int, encoder: str | None, text_dim: int, text_encoder: str | None, plan: st.VectorPlan
    ) -> None:
        """Create the shard (named vectors stored as ``plan`` says, payload indexes before any point) or check the
        existing one's layout, sizes and encoder."""
        if self._closed:
            raise StoreError(f"the Qdrant Edge store at {self.path} is closed")
        if self._shard is not None and self._meta is not None:
            if self._check_existing(dim, text_dim, encoder):
                self._writable("record the encoder of the collection")
                self._meta = {**self._meta, "encoder": encoder}
                self._write_meta(self._meta)
            return
        self._writable("create the collection")
        if not self._lock.held:  # a new store dir: lock it first; another first ingest may be creating it
            if self.wait_s > 0:
                wait_for_store(self._acquire, timeout_s=self.wait_s, what=f"the store at {self.path}")
            else:
                self._acquire()
        if self.shard_path.exists():  # created by another process while this one waited
            self._load()
            self._ensure(dim, encoder, text_dim, text_encoder, plan)
            return
        self.path.mkdir(parents=True, exist_ok=True)
        config = EdgeConfig(
            vectors={IMAGE: _vector_params(int(dim), plan), TEXT: _vector_params(int(text_dim), plan)},
            sparse_vectors={WORDS: EdgeSparseVectorParams(modifier=Modifier.Idf)},
            hnsw_config=HnswIndexConfig(
                m=self.hnsw_m, ef_construct=self.hnsw_ef_construct, full_scan_threshold=self.full_scan_threshold_kb
            ),
            optimizers=EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb),
        )
        check_store_open(self.path)
        # built aside and renamed into place: a crash (or a racing reader) never sees a half-created shard
        creating = self.path / f".{SHARD_DIR}.creating"
        shutil.rmtree(creating, ignore_errors=True)
        try:
            self._shard = EdgeShard.create(str(creating), config)
            self._ensure_indexes()
            shard, self._shard = self._shard, None
            shard.flush()
            shard.close()
            os.rename(creating, self.shard_path)
            self._shard = EdgeShard.load(str(self.shard_path))
        except Exception as exc:
            raise self._open_error(exc) from exc
        self._meta = {
            "collection": self.collection,
            "layout": NAMED,
            "dim": int(dim),
            "text_dim": int(text_dim),
            "distance": "Cosine",
            "encoder": encoder,
            "text_encoder": text_encoder,
            "words": WORDS_MODEL,
            "storage_plan": plan.reason,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._config = json.loads((self.shard_path / "edge_config.json").read_text())
        self._write_meta(self._meta)
        self._sh.flush()
        log.info(
            "created Qdrant Edge collection '%s' (%d-d image, %d-d text, words; quantization %s, %s) at %s",
            self.collection,
            dim,
            text_dim,
            plan.quantization,
            plan.reason,
            self.path,
        )

    def dim(self) -> int | None:
        if self._closed:
            raise StoreError(f"the Qdrant Edge store at {self.path} is closed")
        return None if self._meta is None else int(self._meta["dim"])

    def layout(self) -> str | None:
        return None if self._meta is None else self._meta.get("layout", LEGACY)

    def text_dim(self) -> int | None:
        if self._meta is None or self._meta.get("text_dim") is None:
            return None
        return int(self._meta["text_dim"])

    def text_encoder(self) -> str | None:
        return None if self._meta is None else self._meta.get("text_encoder")

    def encoder(self) -> str | None:
        return None if self._meta is None else self._meta.get("encoder")

    def optimize(self) -> None:
        """Build the HNSW index and merge segments (blocking; minutes per 100k points on 2 cores)."""
        if self._shard is None:
            return
        self._writable("optimize the store")
        self._reserve.release()  # optimize needs the space (pir.core.diskspace.check_optimize checked it)
        t0 = time.perf_counter()
        changed = self._sh.optimize()
        self._sh.flush()
        log.info("optimized '%s' in %.1f s (changed=%s)", self.collection, time.perf_counter() - t0, changed)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shard, self._shard = self._shard, None
        self._reserve.close()  # first: the flush may need the space
        try:
            if shard is not None:
                try:
                    shard.flush()
                except Exception as exc:
                    if _disk_full(exc):
                        raise self._disk_full_error("flush its files") from None
                    raise
                finally:
                    shard.close()
        finally:
            self._release()

    def _disk_full_error(self, what: str) -> DiskSpaceError:
        return DiskSpaceError(
            f"the disk holding the store {self.path} is full: it could not {what}; everything already written is "
            "in its write-ahead log and is there when the store opens again: free some space and run the same "
            "command again to resume"
        )

    # ------------------------------------------------------------------- backups
    def copy_to(self, dst: str | Path) -> int:
        """A consistent copy of the collection in the new folder ``dst`` (flushed first; this store holds the lock,
        so nothing else writes meanwhile). Returns the bytes copied.

        Raises:
            StoreError: The collection does not exist yet.
        """
        self._sh.flush()
        return copy_tree_sparse(self._root, dst, skip=(f".{SHARD_DIR}.creating",))

    def replace_from(self, src: str | Path) -> None:
        """Replace this collection with the copy in ``src`` (see :meth:`copy_to`), under this store's lock.

        The copy is staged beside the store first (a failure leaves the store as it was), then swapped in.

        Raises:
            StoreError: Read-only store, or the restored copy does not load.
            DiskSpaceError: Not enough free space for the staged copy.
        """
        self._writable("restore into the store")
        if not self._lock.held:
            self._acquire()
        src = Path(src)
        ensure_space(self.path.parent, dir_bytes(src), margin_mb=STORE_OPEN_MB, what="restoring the snapshot")
        staging = self.path.parent / f".{self.path.name}.restoring"
        old = self.path.parent / f".{self.path.name}.replaced"
        for p in (staging, old):
            shutil.rmtree(p, ignore_errors=True)
        copy_tree_sparse(src, staging)
        shard, self._shard, self._meta = self._shard, None, None
        if shard is not None:
            shard.flush()
            shard.close()
        if self.path.exists():
            os.rename(self.path, old)
        os.rename(staging, self.path)
        shutil.rmtree(old, ignore_errors=True)
        self._load()

    def _release(self) -> None:
        """Give back the reserve, the private copy and the lock (after the shard is closed)."""
        self._reserve.close()
        if self._copy_dir is not None:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            self._copy_dir = None
        self._lock.release()

    # --------------------------------------------------------------------- writes
    def _upsert(self, batch: Batch) -> None:
        self._writable("write to the store")
        for part in batch.chunks(self.upsert_batch):
            points = [Point(batch.ids[i], batch.vectors(i, _dense, _sparse), batch.payloads[i]) for i in part]
            need = self._need(len(points))
            self._reserve.hold(need)  # still there? (else one line, nothing of this chunk written)
            self._reserve.release()  # the pages this update maps come from the space just released
            try:
                self._sh.update(UpdateOperation.upsert_points(points))
            except Exception as exc:
                if _disk_full(exc):
                    raise self._disk_full_error("write the batch") from None
                raise StoreError(f"upsert into '{self.collection}' at {self.path} failed: {exc}") from exc
            self._reserve.hold(need)  # kept until the next write: a process filling the disk meanwhile gets ENOSPC

    def _need(self, n_points: int) -> int:
        """Bytes to keep in reserve for an update of ``n_points`` (their estimated size plus :data:`RESERVE_MB`)."""
        dims = int((self._meta or {}).get("dim") or 512) + int((self._meta or {}).get("text_dim") or 0)
        return batch_bytes(n_points, dims // 2 + 1) + RESERVE_MB * MB

    def _delete(self, ids: list[str]) -> None:
        self._writable("delete from the store")
        need = self._need(len(ids))
        self._reserve.hold(need)
        self._reserve.release()
        self._sh.update(UpdateOperation.delete_points(ids))  # type: ignore[arg-type]  # str ids
        self._reserve.hold(need)

    # ---------------------------------------------------------------------- reads
    def _count(self, flt: SearchFilter | None, *, exact: bool) -> int:
        return int(self._sh.count(CountRequest(exact=exact, filter=to_edge_filter(flt))))

    def _search_params(self, ask: Ask) -> SearchParams:
        quant = None
        if self.quantized():
            quant = QuantizationSearchParams(
                rescore=self.quantization_rescore, oversampling=float(self.quantization_oversampling)
            )
        return search_params(ask, self.hnsw_ef, quant)

    def _query(self, vectors: np.ndarray, ask: Ask) -> list[list[Hit]]:
        edge_filter = to_edge_filter(ask.flt)
        params = self._search_params(ask)
        using = self._image_using()
        requests = [
            QueryRequest(query=Query.Nearest(v, using=using), params=params, **_common(ask, edge_filter))
            for v in vectors
        ]
        if len(requests) == 1:
            results = [self._sh.query(requests[0])]
        else:
            results = self._sh.query_batch(QueryBatchRequest(queries=requests))
        return to_hits(results, ask.with_vectors)

    def _hybrid(self, legs: list[Leg], query: HybridQuery, ask: Ask) -> list[Hit]:
        request = hybrid_request(
            legs, query, ask, self.hnsw_ef, using_image=self._image_using(), params=self._search_params(ask)
        )
        return to_hits([self._sh.query(request)], ask.with_vectors)[0]

    def _retrieve(self, ids: list[str], with_vectors: bool) -> list[StoredPoint]:
        records = self._sh.retrieve(ids, with_payload=True, with_vector=with_vectors)  # type: ignore[arg-type]  # str ids
        return [to_stored_point(r, with_vectors) for r in records]

    def _scroll_page(
        self, offset: Any, limit: int, flt: SearchFilter | None, with_vectors: bool
    ) -> tuple[list[Any], Any]:
        request = ScrollRequest(
            offset=offset, limit=limit, filter=to_edge_filter(flt), with_payload=True, with_vector=with_vectors
        )
        return self._sh.scroll(request)

    def quantized(self) -> bool:
        v = self._vector_config(IMAGE)
        return (
            self._meta is not None and _quantization_name(v if v.get("quantization_config") else self._config) != "none"
        )

    def _vector_config(self, name: str) -> dict[str, Any]:
        """The shard's stored config of one dense vector (the unnamed one for ``image`` in a legacy layout)."""
        vectors = self._config.get("vectors") or {}
        if name == IMAGE and IMAGE not in vectors:
            return vectors.get("", next(iter(vectors.values()), {})) if vectors else {}
        return vectors.get(name) or {}

    def _creation_options(self) -> dict[str, Any]:
        return {"full_scan_threshold_kb": self.full_scan_threshold_kb, "on_disk_payload": True}

    def _stored_settings(self) -> dict[str, Any]:
        cfg = self._config
        hnsw = cfg.get("hnsw_config") or {}
        vectors: dict[str, Any] = {}
        for name in (IMAGE, TEXT):
            v = self._vector_config(name)
            if v:
                q = _quantization_name(v) if v.get("quantization_config") else _quantization_name(cfg)
                vectors[name] = {"size": v.get("size"), "quantization": q, "on_disk": bool(v.get("on_disk"))}
        image = vectors.get(IMAGE, {})
        schema = self._sh.info().payload_schema
        return {
            "quantization": image.get("quantization", "none"),
            "vectors_on_disk": image.get("on_disk", False),
            "storage_plan": (self._meta or {}).get("storage_plan"),
            "vectors": vectors,
            "hnsw_m": hnsw.get("m"),
            "hnsw_ef_construct": hnsw.get("ef_construct"),
            "full_scan_threshold_kb": hnsw.get("full_scan_threshold"),
            "on_disk_payload": cfg.get("on_disk_payload") is not False,  # the engine's default is on disk
            "payload_indexes": {k: _schema_name(v.data_type) for k, v in sorted(schema.items())},
        }

    def _index_info(self) -> dict[str, Any]:
        si = self._sh.info()
        return {
            "segments": si.segments_count,
            "indexed_vectors": si.indexed_vectors_count,
            "payload_indexes": sorted(si.payload_schema),
        }

    def _location(self) -> str:
        return str(self.path)


def _vector_params(size: int, plan: st.VectorPlan) -> EdgeVectorParams:
    """One dense vector of a new shard: cosine, stored and quantized as ``plan`` says."""
    quant: Any = None
    if plan.quantization == "int8":
        quant = ScalarQuantizationConfig(type=ScalarType.Int8, quantile=st.INT8_QUANTILE, always_ram=True)
    elif plan.quantization == "binary":
        quant = BinaryQuantizationConfig(always_ram=True)
    return EdgeVectorParams(
        size=size, distance=Distance.Cosine, on_disk=True if plan.on_disk else None, quantization_config=quant
    )


def _quantization_name(config: dict[str, Any]) -> str:
    """``none``, ``int8``, ``binary`` (or another engine kind) of a stored ``quantization_config``."""
    q = config.get("quantization_config")
    if not q:
        return "none"
    kind = next(iter(q))
    if kind == "scalar":
        return str(q[kind].get("type", "int8"))
    return str(kind)


def _schema_name(data_type: Any) -> str:
    """The payload index type as pir names it (``keyword``, ``integer``, ``datetime``, ...)."""
    for name, t in _SCHEMA_TYPES.items():
        if t == data_type:
            return name
    return str(data_type).rsplit(".", 1)[-1].lower()


def search_params(ask: Ask, hnsw_ef: int, quantization: QuantizationSearchParams | None = None) -> SearchParams:
    """The Qdrant Edge search params of ``ask``'s plan: ``exact``, or HNSW at ``hnsw_ef`` (with ACORN for the
    ``acorn`` plan: pir already decided, so ACORN is used whatever the engine's own selectivity estimate), with the
    quantized collection's rescoring options."""
    acorn = AcornSearchParams(enable=True, max_selectivity=1.0) if ask.plan == "acorn" else None
    return SearchParams(hnsw_ef=hnsw_ef, exact=ask.exact, quantization=quantization, acorn=acorn)


def _disk_full(exc: BaseException) -> bool:
    """Whether the engine's error is ENOSPC (it reports I/O errors as text)."""
    text = str(exc)
    return "No space left on device" in text or "os error 28" in text


def _dense(v: np.ndarray) -> np.ndarray:
    return v


def _sparse(v: SparseVector) -> EdgeSparseVector:
    return EdgeSparseVector(list(v.indices), list(v.values))


def _common(ask: Ask, edge_filter: Filter | None, *, with_vector: Any = None) -> dict[str, Any]:
    """The options every (top-level) request of ``ask`` shares."""
    return {
        "limit": ask.limit,
        "filter": edge_filter,
        "score_threshold": ask.min_score,
        "with_payload": True,
        "with_vector": ask.with_vectors if with_vector is None else with_vector,
    }


def leg_query(leg: Leg, using: str | None) -> Query:
    """The Qdrant Edge query of one leg: nearest neighbours, or a recommend query (``average_vector`` = nearest
    neighbours of :meth:`~pir.search.store.Recommend.average`, as Qdrant computes it)."""
    v = leg.vector
    if isinstance(v, Recommend):
        if v.strategy == "average_vector":
            return Query.Nearest(v.average(), using=using)  # type: ignore[arg-type]  # numpy arrays are accepted
        examples = RecommendQuery(list(v.positives), list(v.negatives))  # type: ignore[arg-type]  # numpy arrays are accepted
        if v.strategy == "best_score":
            return Query.RecommendBestScore(examples, using=using)
        return Query.RecommendSumScores(examples, using=using)
    return Query.Nearest(_sparse(v) if isinstance(v, SparseVector) else v, using=using)  # type: ignore[arg-type]  # numpy arrays are accepted


def hybrid_request(
    legs: list[Leg],
    query: HybridQuery,
    ask: Ask,
    hnsw_ef: int,
    *,
    using_image: str | None = IMAGE,
    params: SearchParams | None = None,
) -> QueryRequest:
    """The Qdrant Edge request of a hybrid query: the filter (and ``params``, default :func:`search_params`) on every
    prefetch (and the fused query)."""
    params = params if params is not None else search_params(ask, hnsw_ef)
    edge_filter = to_edge_filter(ask.flt)
    common = _common(ask, edge_filter, with_vector=[IMAGE] if ask.with_vectors and using_image else None)
    queries = [leg_query(leg, using_image if leg.using == IMAGE else leg.using) for leg in legs]
    if len(legs) == 1:
        return QueryRequest(query=queries[0], params=params, **common)
    prefetches = [Prefetch(limit=ask.prefetch, query=q, filter=edge_filter, params=params) for q in queries]
    fused: Any
    if query.fusion == "rrf":
        fused = Fusion.Rrf(k=int(query.rrf_k), weights=[float(leg.weight) for leg in legs])
    elif query.fusion == "zscore":
        terms = []
        for i, leg in enumerate(legs):
            scale, offset = leg.standardised()
            score = Expression.Variable(f"$score[{i}]")
            terms += [Expression.Mult([Expression.Constant(scale), score]), Expression.Constant(offset)]
            if (g := leg.gate_terms()) is not None:
                z_over = Expression.Sum(
                    [Expression.Mult([Expression.Constant(g[1]), score]), Expression.Constant(g[2])]
                )
                terms.append(
                    Expression.Mult([Expression.Constant(g[0]), Expression.Max([z_over, Expression.Constant(0.0)])])
                )
        defaults = {f"$score[{i}]": float(leg.floor) for i, leg in enumerate(legs)}
        fused = Formula(Expression.Sum(terms), defaults=defaults)
    else:
        terms = []
        for i, leg in enumerate(legs):
            score = Expression.Variable(f"$score[{i}]")
            if leg.sparse:
                score = Expression.Div(score, Expression.Sum([score, Expression.Constant(WORDS_SCALE)]), 0.0)
            terms.append(Expression.Mult([Expression.Constant(float(leg.weight)), score]))
        fused = Formula(Expression.Sum(terms), defaults={f"$score[{i}]": 0.0 for i in range(len(legs))})
    return QueryRequest(query=fused, prefetches=prefetches, **common)


def to_edge_filter(flt: SearchFilter | None) -> Filter | None:
    """Translate a :class:`SearchFilter` into a Qdrant Edge ``Filter`` (None when empty)."""
    if flt is None or flt.is_empty():
        return None
    must: list[Any] = [FieldCondition(key=key, match=MatchAny(values)) for key, values in flt.keyword_conditions()]
    if flt.year_from is not None or flt.year_to is not None:
        must.append(
            FieldCondition(
                key="year",
                range=RangeFloat(
                    gte=None if flt.year_from is None else float(flt.year_from),
                    lte=None if flt.year_to is None else float(flt.year_to),
                ),
            )
        )
    if flt.published_after is not None or flt.published_before is not None:
        must.append(FieldCondition(key="publication_date", range=RangeDateTime(**flt.date_range())))
    must_not: list[Any] = []
    if flt.exclude_patents:
        must_not.append(FieldCondition(key="patent_id", match=MatchAny([str(p) for p in flt.exclude_patents])))
    if flt.exclude_ids:
        must_not.append(HasIdCondition({str(i) for i in flt.exclude_ids}))
    return Filter(must=must or None, must_not=must_not or None)


def open_store(settings: Settings, collection: str) -> EdgeStore:
    """The registry's ``edge`` backend: ``collection`` under ``settings.store_dir`` (see :mod:`pir.search.factory`)."""
    return EdgeStore(
        settings.store_dir / collection,
        collection,
        wait_s=settings.store_wait_s,
        **st.index_settings(settings),
    )


def reindex(
    settings: Settings, collection: str | None, store: st.VectorStore | None, te: TextEncoder, opts: dict[str, Any]
) -> ReindexSummary:
    """Upgrade an Edge collection to the named layout (see :mod:`pir.search.migrate`): the new shard is built beside
    the old one and swapped in by two renames after the check; an interrupted swap is finished first."""
    import shutil

    from pir.search.migrate import (  # lazy: cycle: pir.search.migrate uses this backend's store class
        DONE_MARKER,
        ReindexSummary,
        check_same,
        copy_points,
    )

    if store is not None:
        raise StoreError("reindex: close the Qdrant Edge store first (its directory is swapped)")

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
            dst.ensure_collection(
                int(src.dim() or 0),
                encoder=src.encoder(),
                text_dim=te.dim,
                text_encoder=te.name,
                expected_points=summary.points,  # sized for what it is about to hold
            )
            copy_points(src, dst, summary=summary, **opts)
            check_same(src, dst)
            dst.optimize()
    (tmp / DONE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    os.replace(live, old)
    os.replace(tmp, live)
    (live / DONE_MARKER).unlink()
    shutil.rmtree(old)
    log.info("reindexed '%s': %d points, now image/text/words", name, summary.points)
    return summary
