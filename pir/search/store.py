"""Vector store interface of pir: one API over Qdrant Edge (embedded) and a Qdrant server (qdrant-client).

Points are patent figures: a uuid string id (:func:`pir.ingest.schema.point_id`), an L2-normalised float32 vector
(cosine distance) and the flat payload of :meth:`pir.ingest.schema.PatentFigure.payload`. Pick the backend with
:func:`open_store`; both give the same results for the same data (see ``tests/test_store.py``).

Example:
    >>> with open_store(settings) as store:
    ...     store.ensure_collection(vectors.shape[1], encoder="tf_efficientnet_lite0")
    ...     store.upsert(ids, vectors, payloads)
    ...     hits = store.search(vectors[0], k=10, filter=SearchFilter(classes=["D14"]), group_by_patent=True)
"""

from __future__ import annotations

import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from types import TracebackType

    from pir.config import Settings

#: Payload fields indexed at collection creation, with their index type.
PAYLOAD_INDEXES: dict[str, str] = {
    "patent_id": "keyword",
    "classes": "keyword",
    "class_label": "keyword",
    "object_name": "keyword",
    "viewpoint": "keyword",
    "year": "integer",
}

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_GROUP_OVERFETCH = 4


class StoreError(RuntimeError):
    """A vector-store problem the user can act on (wrong dimension, store in use, missing collection, bad input)."""


@dataclass
class SearchFilter:
    """Payload filter of a search; every set field must hold (AND), each list matches any of its values (OR).

    Empty lists count as "not set".
    """

    classes: list[str] | None = None
    year_from: int | None = None
    year_to: int | None = None
    viewpoints: list[str] | None = None
    object_names: list[str] | None = None
    patent_ids: list[str] | None = None
    exclude_patents: list[str] | None = None
    exclude_ids: list[str] | None = None  # point ids left out (e.g. the query figure of "more like this")

    def is_empty(self) -> bool:
        """True when the filter constrains nothing."""
        return not (
            self.classes
            or self.viewpoints
            or self.object_names
            or self.patent_ids
            or self.exclude_patents
            or self.exclude_ids
            or self.year_from is not None
            or self.year_to is not None
        )

    def keyword_conditions(self) -> list[tuple[str, list[str]]]:
        """The ``must`` keyword conditions as ``(payload field, values)`` pairs (match any)."""
        out: list[tuple[str, list[str]]] = []
        for key, values in (
            ("classes", self.classes),
            ("viewpoint", self.viewpoints),
            ("object_name", self.object_names),
            ("patent_id", self.patent_ids),
        ):
            if values:
                out.append((key, [str(v) for v in values]))
        return out


@dataclass
class Hit:
    """One search result. ``vector`` is set only when the search asked for vectors."""

    id: str
    score: float
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass
class StoredPoint:
    """One stored point, as returned by :meth:`VectorStore.retrieve` and :meth:`VectorStore.scroll`."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None


class VectorStore(ABC):
    """A collection of figure vectors with payloads; cosine similarity (higher score = more similar).

    Subclasses implement the backend primitives; validation, filtered-recall planning and grouping by patent live
    here so that both backends behave the same.
    """

    backend: str
    collection: str

    def __init__(self, collection: str, *, hnsw_ef: int = 256, exact_filter_threshold: int = 20_000) -> None:
        self.collection = validate_collection_name(collection)
        self.hnsw_ef = hnsw_ef
        self.exact_filter_threshold = exact_filter_threshold

    # ----------------------------------------------------------------- collection
    @abstractmethod
    def ensure_collection(self, dim: int, *, encoder: str | None = None) -> None:
        """Create the collection (cosine, payload indexes) or check that the existing one fits.

        Raises:
            StoreError: The collection exists with another vector size (or another encoder); nothing is changed.
        """

    @abstractmethod
    def dim(self) -> int | None:
        """Vector size of the collection, None when it does not exist yet."""

    @abstractmethod
    def encoder(self) -> str | None:
        """Encoder name recorded at creation (None when unknown or no collection)."""

    # --------------------------------------------------------------------- writes
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        """Insert or overwrite points (same id = same point), returning once the write is applied.

        Raises:
            StoreError: Lengths differ, a vector has the wrong size or non-finite values, an id is not a uuid,
                or the collection does not exist.
        """
        ids_list = [normalize_id(i) for i in ids]
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2:
            raise StoreError(f"upsert into '{self.collection}': vectors must be 2-D (n, dim), got shape {arr.shape}")
        if not (len(ids_list) == arr.shape[0] == len(payloads)):
            raise StoreError(
                f"upsert into '{self.collection}': {len(ids_list)} ids, {arr.shape[0]} vectors and "
                f"{len(payloads)} payloads; they must be the same length"
            )
        if not ids_list:
            return
        self._require_dim(arr.shape[1], "upsert")
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
            raise StoreError(f"upsert into '{self.collection}': vector of id {ids_list[bad]} has NaN/inf values")
        self._upsert(ids_list, np.ascontiguousarray(arr), [dict(p) for p in payloads])

    @abstractmethod
    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id (unknown ids are ignored)."""
        ids_list = [normalize_id(i) for i in ids]
        if ids_list and self.dim() is not None:
            self._delete(ids_list)

    @abstractmethod
    def _delete(self, ids: list[str]) -> None: ...

    def optimize(self) -> None:  # noqa: B027 - a no-op by default (the server optimizes in the background)
        """Build the search index now (blocking) where the backend needs it; a no-op otherwise."""

    # ---------------------------------------------------------------------- reads
    def search(
        self,
        vector: np.ndarray,
        k: int = 10,
        *,
        filter: SearchFilter | None = None,
        min_score: float | None = None,
        group_by_patent: bool = False,
        exact: bool = False,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """Nearest neighbours of one query vector, best first.

        Args:
            vector: Query vector of the collection's size (normalised or not; cosine).
            k: Number of results.
            filter: Payload filter.
            min_score: Drop results scoring below this.
            group_by_patent: Keep only the best figure of each patent (still ``k`` patents when enough exist).
            exact: Exact (brute-force) search. Small filtered sets are searched exactly anyway.
            with_vectors: Return the stored vectors in :attr:`Hit.vector`.

        Raises:
            StoreError: The collection does not exist or the vector has the wrong size.
        """
        arr = np.asarray(vector, dtype=np.float32)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1:
            raise StoreError(f"search in '{self.collection}': one query vector expected, got shape {arr.shape}")
        return self.search_batch(
            arr[None, :],
            k,
            filter=filter,
            min_score=min_score,
            group_by_patent=group_by_patent,
            exact=exact,
            with_vectors=with_vectors,
        )[0]

    def search_batch(
        self,
        vectors: np.ndarray,
        k: int = 10,
        *,
        filter: SearchFilter | None = None,
        min_score: float | None = None,
        group_by_patent: bool = False,
        exact: bool = False,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """:meth:`search` for each row of ``vectors`` (same options for all); one result list per row."""
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2:
            raise StoreError(f"search in '{self.collection}': vectors must be 2-D (n, dim), got shape {arr.shape}")
        if arr.shape[0] == 0:
            return []
        self._require_dim(arr.shape[1], "search")
        if not np.isfinite(arr).all():
            raise StoreError(f"search in '{self.collection}': query vector has NaN/inf values")
        if k <= 0:
            return [[] for _ in range(arr.shape[0])]
        flt = None if filter is None or filter.is_empty() else filter
        use_exact = self._plan_exact(flt, exact)
        arr = np.ascontiguousarray(arr)
        if not group_by_patent:
            return self._query(arr, k, flt, min_score, use_exact, with_vectors)
        return [self._grouped(arr[i : i + 1], k, flt, min_score, use_exact, with_vectors) for i in range(len(arr))]

    def _grouped(
        self,
        q: np.ndarray,
        k: int,
        flt: SearchFilter | None,
        min_score: float | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[Hit]:
        """Best hit per patent: over-fetch, de-duplicate, and fetch more until ``k`` patents or no more points."""
        limit = k * _GROUP_OVERFETCH
        while True:
            hits = self._query(q, limit, flt, min_score, exact, with_vectors)[0]
            best: list[Hit] = []
            seen: set[str] = set()
            for h in hits:
                key = str(h.payload.get("patent_id") or f"id:{h.id}")
                if key not in seen:
                    seen.add(key)
                    best.append(h)
            if len(best) >= k or len(hits) < limit:
                return best[:k]
            limit *= _GROUP_OVERFETCH

    def _plan_exact(self, flt: SearchFilter | None, exact: bool) -> bool:
        """Search exactly when asked, or when the filter keeps fewer points than ``exact_filter_threshold``.

        Graph search with a filter of medium selectivity loses recall; an exact scan of a small set is cheap.
        """
        if exact:
            return True
        if flt is None:
            return False
        return self._estimate(flt) < self.exact_filter_threshold

    @abstractmethod
    def _estimate(self, flt: SearchFilter) -> int:
        """Cheap (approximate) number of points matching a filter."""

    @abstractmethod
    def _query(
        self,
        vectors: np.ndarray,
        limit: int,
        flt: SearchFilter | None,
        min_score: float | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[list[Hit]]:
        """Backend kNN for each row, best first."""

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[StoredPoint]:
        """Stored points by id, in the order asked; unknown ids are left out."""
        ids_list = [normalize_id(i) for i in ids]
        if not ids_list or self.dim() is None:
            return []
        found = {p.id: p for p in self._retrieve(ids_list, with_vectors)}
        out: list[StoredPoint] = []
        for i in dict.fromkeys(ids_list):
            if i in found:
                out.append(found[i])
        return out

    @abstractmethod
    def _retrieve(self, ids: list[str], with_vectors: bool) -> list[StoredPoint]: ...

    @abstractmethod
    def count(self, filter: SearchFilter | None = None) -> int:
        """Exact number of points (matching ``filter``); 0 when the collection does not exist."""

    @abstractmethod
    def scroll(
        self, *, batch_size: int = 256, with_vectors: bool = False, filter: SearchFilter | None = None
    ) -> Iterator[StoredPoint]:
        """Iterate over all points (matching ``filter``), fetched ``batch_size`` at a time, in id order."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """``backend``, ``collection``, ``location`` (path or url), ``dim``, ``count``, ``encoder`` and extras."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the store (idempotent)."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -------------------------------------------------------------------- helpers
    def _require_dim(self, got: int, what: str) -> int:
        dim = self.dim()
        if dim is None:
            raise StoreError(
                f"{what}: collection '{self.collection}' does not exist yet at {self._location()}; "
                "call ensure_collection(dim) first (ingest creates it)"
            )
        if got != dim:
            raise StoreError(
                f"{what}: collection '{self.collection}' holds {dim}-d vectors but got {got}-d vectors; "
                "use the encoder the collection was built with, or another collection"
            )
        return dim

    def _dim_mismatch(self, stored: int, requested: int) -> StoreError:
        return StoreError(
            f"collection '{self.collection}' at {self._location()} stores {stored}-d vectors, but {requested}-d "
            f"were requested (another encoder?). Nothing was changed. Use another collection "
            f"(--collection / PIR_QDRANT__COLLECTION) or another data dir, or delete the old collection yourself."
        )

    def _encoder_mismatch(self, stored: str, requested: str) -> StoreError:
        return StoreError(
            f"collection '{self.collection}' at {self._location()} was built with encoder '{stored}', not "
            f"'{requested}'; vectors of different encoders cannot be compared. Nothing was changed. Use another "
            f"collection (--collection / PIR_QDRANT__COLLECTION) or another data dir."
        )

    @abstractmethod
    def _location(self) -> str: ...


def validate_collection_name(name: str) -> str:
    """Collection names are also directory names: letters, digits, ``_ . -``; no path separators."""
    if not isinstance(name, str) or not _COLLECTION_RE.match(name) or name in {".", ".."}:
        raise StoreError(f"invalid collection name {name!r}: use letters, digits, '_', '.', '-' (max 128 chars)")
    return name


def normalize_id(point_id: Any) -> str:
    """Canonical uuid string of a point id.

    Raises:
        StoreError: The id is not a uuid.
    """
    try:
        return str(point_id if isinstance(point_id, uuid.UUID) else uuid.UUID(str(point_id)))
    except (ValueError, TypeError, AttributeError) as exc:
        raise StoreError(f"point id {point_id!r} is not a uuid (use pir.ingest.schema.point_id)") from exc


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
        from pir.search.edge import EdgeStore

        return EdgeStore(
            settings.store_dir / name,
            name,
            hnsw_ef=q.hnsw_ef,
            exact_filter_threshold=q.exact_filter_threshold,
            hnsw_m=q.hnsw_m,
            hnsw_ef_construct=q.hnsw_ef_construct,
        )
    from qdrant_client import QdrantClient

    from pir.search.server import ServerStore

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


def as_vector(vector: Any) -> np.ndarray | None:
    """A point's vector as float32 (the default one of named vectors); None when absent."""
    if vector is None:
        return None
    if isinstance(vector, dict):  # named vectors: the default one is ""
        vector = vector.get("", next(iter(vector.values()), None))
    return None if vector is None else np.asarray(vector, dtype=np.float32)


def to_stored_point(r: Any, with_vectors: bool) -> StoredPoint:
    """A backend record (Edge or qdrant-client, same field names) as a :class:`StoredPoint`."""
    vector = as_vector(r.vector) if with_vectors else None
    return StoredPoint(id=str(r.id), payload=dict(r.payload or {}), vector=vector)


def to_hits(rows: Any, with_vectors: bool) -> list[list[Hit]]:
    """Backend scored points, one list per query, as :class:`Hit` lists."""
    return [
        [
            Hit(
                id=str(p.id),
                score=float(p.score),
                payload=dict(p.payload or {}),
                vector=as_vector(p.vector) if with_vectors else None,
            )
            for p in row
        ]
        for row in rows
    ]
