"""Embedded vector store: Qdrant Edge (``qdrant-edge-py`` 0.9), the Qdrant engine running in this process.

Layout of a collection directory::

    <store_dir>/<collection>/
        shard/                 # the Qdrant Edge shard (segments, WAL, edge_config.json)
        pir_collection.json    # pir's record: layout, vector sizes, distance, encoder names

A collection holds the named vectors ``image`` and ``text`` (cosine) and the sparse ``words`` (IDF modifier); a
shard with one unnamed vector is the legacy layout (see :class:`pir.search.store.LegacyLayoutError`).

Only one process (and one :class:`EdgeStore`) may open a directory at a time; use a Qdrant server for several
processes. The HNSW index is built only by :meth:`EdgeStore.optimize` (blocking); until then searches are exact
brute force. Every call into ``qdrant_edge`` lives in this module (the package is beta and its API drifts).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import (
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
    Query,
    QueryBatchRequest,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)
from qdrant_edge import SparseVector as EdgeSparseVector

from pir.search.store import (
    DEFAULT_TEXT_DIM,
    IMAGE,
    LEGACY,
    NAMED,
    PAYLOAD_INDEXES,
    TEXT,
    WORDS,
    WORDS_SCALE,
    Hit,
    HybridQuery,
    Leg,
    SearchFilter,
    StoredPoint,
    StoreError,
    VectorStore,
    to_hits,
    to_stored_point,
)
from pir.search.words import WORDS_MODEL, SparseVector

log = logging.getLogger(__name__)

META_FILE = "pir_collection.json"
SHARD_DIR = "shard"
_SCHEMA_TYPES = {"keyword": PayloadSchemaType.Keyword, "integer": PayloadSchemaType.Integer}
_LOCK_MARKERS = ("WouldBlock", "Can't init WAL", "failed to open WAL")


class EdgeStore(VectorStore):
    """A collection stored on disk with Qdrant Edge.

    Args:
        path: Collection directory (created by :meth:`ensure_collection` when missing).
        collection: Collection name (reported in errors and :meth:`info`).
        hnsw_ef: Search-time HNSW beam width.
        exact_filter_threshold: Filtered searches matching fewer points (estimated) are answered exactly.
        hnsw_m: HNSW graph degree (at creation).
        hnsw_ef_construct: HNSW build beam width (at creation).
        full_scan_threshold_kb: Below this many KB of vectors a search scans instead of walking the graph.
        indexing_threshold_kb: Segments with fewer KB of vectors get no HNSW index from :meth:`optimize`
            (None = the engine default, about 10 MB); at creation.
        upsert_batch: Points per update operation.
        warmup: Run a few queries after opening an existing store (the first queries on cold pages are slow).

    Raises:
        StoreError: The directory is open elsewhere, or the shard cannot be loaded.
    """

    backend = "edge"

    def __init__(
        self,
        path: Path,
        collection: str,
        *,
        hnsw_ef: int = 256,
        exact_filter_threshold: int = 20_000,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 128,
        full_scan_threshold_kb: int = 10_000,
        indexing_threshold_kb: int | None = None,
        upsert_batch: int = 1000,
        warmup: bool = True,
    ) -> None:
        super().__init__(collection, hnsw_ef=hnsw_ef, exact_filter_threshold=exact_filter_threshold)
        self.path = Path(path)
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construct = hnsw_ef_construct
        self.full_scan_threshold_kb = full_scan_threshold_kb
        self.indexing_threshold_kb = indexing_threshold_kb
        self.upsert_batch = upsert_batch
        self._shard: EdgeShard | None = None
        self._meta: dict[str, Any] | None = None
        self._closed = False
        if self.shard_path.exists():
            self._load()
            if warmup:
                self._warmup()

    @property
    def shard_path(self) -> Path:
        """Directory of the Qdrant Edge shard."""
        return self.path / SHARD_DIR

    @property
    def meta_path(self) -> Path:
        """pir's record of the collection (vector size, encoder)."""
        return self.path / META_FILE

    # ----------------------------------------------------------------- lifecycle
    def _load(self) -> None:
        try:
            self._shard = EdgeShard.load(str(self.shard_path))
        except Exception as exc:
            raise self._open_error(exc) from exc
        self._meta = self._read_meta()
        self._ensure_indexes()

    def _open_error(self, exc: Exception) -> StoreError:
        msg = str(exc)
        if any(m in msg for m in _LOCK_MARKERS):
            return StoreError(
                f"the Qdrant Edge store at {self.path} is in use by another process (or another open store in this "
                "process): only one may open a directory at a time. Close the other one, or run a Qdrant server "
                "(settings qdrant.url / PIR_QDRANT__URL) for multi-process use."
            )
        return StoreError(f"cannot open the Qdrant Edge store at {self.shard_path}: {msg}")

    def _read_meta(self) -> dict[str, Any]:
        """Read ``pir_collection.json``; rebuild it from the shard's own config when it is missing.

        The layout always comes from the shard's config (the truth), so an old record without it is read right.
        """
        cfg_path = self.shard_path / "edge_config.json"
        shard_layout: dict[str, Any] = {}
        try:
            vectors = json.loads(cfg_path.read_text())["vectors"]
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
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, self.meta_path)

    def _ensure_indexes(self) -> None:
        existing = set(self._sh.info().payload_schema)
        for name, kind in PAYLOAD_INDEXES.items():
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

    def ensure_collection(
        self, dim: int, *, encoder: str | None = None, text_dim: int = DEFAULT_TEXT_DIM, text_encoder: str | None = None
    ) -> None:
        """Create the shard (named vectors, payload indexes) or check the existing one's layout, sizes and encoder."""
        if int(dim) <= 0 or int(text_dim) <= 0:
            raise StoreError(f"collection '{self.collection}': vector sizes must be positive, got {dim}, {text_dim}")
        if self._closed:
            raise StoreError(f"the Qdrant Edge store at {self.path} is closed")
        if self._shard is not None and self._meta is not None:
            self._require_named("ingest")
            stored_text = self._meta.get("text_dim")
            if stored_text is not None and int(stored_text) != int(text_dim):
                raise StoreError(
                    f"collection '{self.collection}' at {self.path} stores {stored_text}-d text vectors, but "
                    f"{text_dim}-d were requested (another text encoder?). Nothing was changed."
                )
            stored = int(self._meta["dim"])
            if stored != dim:
                raise self._dim_mismatch(stored, dim)
            known = self._meta.get("encoder")
            if encoder and known and known != encoder:
                raise self._encoder_mismatch(known, encoder)
            if encoder and not known:
                self._meta = {**self._meta, "encoder": encoder}
                self._write_meta(self._meta)
            return
        self.path.mkdir(parents=True, exist_ok=True)
        config = EdgeConfig(
            vectors={
                IMAGE: EdgeVectorParams(size=int(dim), distance=Distance.Cosine),
                TEXT: EdgeVectorParams(size=int(text_dim), distance=Distance.Cosine),
            },
            sparse_vectors={WORDS: EdgeSparseVectorParams(modifier=Modifier.Idf)},
            hnsw_config=HnswIndexConfig(
                m=self.hnsw_m, ef_construct=self.hnsw_ef_construct, full_scan_threshold=self.full_scan_threshold_kb
            ),
            optimizers=EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb),
        )
        try:
            self._shard = EdgeShard.create(str(self.shard_path), config)
        except Exception as exc:
            raise self._open_error(exc) from exc
        self._ensure_indexes()
        self._meta = {
            "collection": self.collection,
            "layout": NAMED,
            "dim": int(dim),
            "text_dim": int(text_dim),
            "distance": "Cosine",
            "encoder": encoder,
            "text_encoder": text_encoder,
            "words": WORDS_MODEL,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._write_meta(self._meta)
        self._sh.flush()
        log.info(
            "created Qdrant Edge collection '%s' (%d-d image, %d-d text, words) at %s",
            self.collection,
            dim,
            text_dim,
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
        t0 = time.perf_counter()
        changed = self._sh.optimize()
        self._sh.flush()
        log.info("optimized '%s' in %.1f s (changed=%s)", self.collection, time.perf_counter() - t0, changed)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shard, self._shard = self._shard, None
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()

    # --------------------------------------------------------------------- writes
    def _upsert(
        self,
        ids: list[str],
        vectors: np.ndarray,
        payloads: list[dict[str, Any]],
        text: list[np.ndarray | None],
        words: list[SparseVector | None],
    ) -> None:
        sh = self._sh

        def named(i: int) -> dict[str, Any]:
            v: dict[str, Any] = {IMAGE: vectors[i]}
            if text[i] is not None:
                v[TEXT] = text[i]
            if words[i] is not None:
                v[WORDS] = EdgeSparseVector(list(words[i].indices), list(words[i].values))
            return v

        for s in range(0, len(ids), self.upsert_batch):
            points = [Point(ids[i], named(i), payloads[i]) for i in range(s, min(s + self.upsert_batch, len(ids)))]
            try:
                sh.update(UpdateOperation.upsert_points(points))
            except Exception as exc:
                raise StoreError(f"upsert into '{self.collection}' at {self.path} failed: {exc}") from exc

    def _delete(self, ids: list[str]) -> None:
        self._sh.update(UpdateOperation.delete_points(ids))

    # ---------------------------------------------------------------------- reads
    def _estimate(self, flt: SearchFilter) -> int:
        return int(self._sh.count(CountRequest(exact=False, filter=to_edge_filter(flt))))

    def _query(
        self,
        vectors: np.ndarray,
        limit: int,
        flt: SearchFilter | None,
        min_score: float | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[list[Hit]]:
        edge_filter = to_edge_filter(flt)
        params = SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        using = self._image_using()
        requests = [
            QueryRequest(
                limit=limit,
                query=Query.Nearest(v, using=using),
                filter=edge_filter,
                score_threshold=min_score,
                params=params,
                with_payload=True,
                with_vector=with_vectors,
            )
            for v in vectors
        ]
        if len(requests) == 1:
            results = [self._sh.query(requests[0])]
        else:
            results = self._sh.query_batch(QueryBatchRequest(queries=requests))
        return to_hits(results, with_vectors)

    def _hybrid(
        self,
        legs: list[Leg],
        query: HybridQuery,
        limit: int,
        prefetch: int,
        flt: SearchFilter | None,
        min_score: float | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[Hit]:
        request = hybrid_request(
            legs,
            query,
            limit,
            prefetch,
            to_edge_filter(flt),
            min_score,
            self.hnsw_ef,
            exact,
            with_vectors,
            using_image=self._image_using(),
        )
        return to_hits([self._sh.query(request)], with_vectors)[0]

    def _retrieve(self, ids: list[str], with_vectors: bool) -> list[StoredPoint]:
        records = self._sh.retrieve(ids, with_payload=True, with_vector=with_vectors)
        return [to_stored_point(r, with_vectors) for r in records]

    def count(self, filter: SearchFilter | None = None) -> int:
        if self._closed:
            raise StoreError(f"the Qdrant Edge store at {self.path} is closed")
        if self._shard is None:
            return 0
        flt = None if filter is None or filter.is_empty() else filter
        return int(self._sh.count(CountRequest(exact=True, filter=to_edge_filter(flt))))

    def scroll(
        self, *, batch_size: int = 256, with_vectors: bool = False, filter: SearchFilter | None = None
    ) -> Iterator[StoredPoint]:
        if self._closed:
            raise StoreError(f"the Qdrant Edge store at {self.path} is closed")
        if self._shard is None:
            return
        flt = None if filter is None or filter.is_empty() else filter
        edge_filter = to_edge_filter(flt)
        offset: Any = None
        while True:
            records, offset = self._sh.scroll(
                ScrollRequest(
                    offset=offset, limit=batch_size, filter=edge_filter, with_payload=True, with_vector=with_vectors
                )
            )
            for r in records:
                yield to_stored_point(r, with_vectors)
            if offset is None or not records:
                return

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "collection": self.collection,
            "location": str(self.path),
            "dim": self.dim(),
            "count": self.count(),
            "encoder": self.encoder(),
            "distance": "cosine",
            "layout": self.layout(),
            "text_dim": self.text_dim(),
            "text_encoder": self.text_encoder(),
        }
        if self._shard is not None:
            si = self._sh.info()
            out.update(
                segments=si.segments_count,
                indexed_vectors=si.indexed_vectors_count,
                payload_indexes=sorted(si.payload_schema),
                hnsw_ef=self.hnsw_ef,
                exact_filter_threshold=self.exact_filter_threshold,
            )
        return out

    def _location(self) -> str:
        return str(self.path)


def _edge_vector(leg: Leg) -> Any:
    if isinstance(leg.vector, SparseVector):
        return EdgeSparseVector(list(leg.vector.indices), list(leg.vector.values))
    return leg.vector


def hybrid_request(
    legs: list[Leg],
    query: HybridQuery,
    limit: int,
    prefetch: int,
    edge_filter: Filter | None,
    min_score: float | None,
    hnsw_ef: int,
    exact: bool,
    with_vectors: bool,
    *,
    using_image: str | None = IMAGE,
) -> QueryRequest:
    """The Qdrant Edge request of a hybrid query: the filter on every prefetch (and the fused query)."""
    params = SearchParams(hnsw_ef=hnsw_ef, exact=exact)

    def using(leg: Leg) -> str | None:
        return using_image if leg.using == IMAGE else leg.using

    common: dict[str, Any] = {
        "limit": limit,
        "filter": edge_filter,
        "score_threshold": min_score,
        "with_payload": True,
        "with_vector": [IMAGE] if with_vectors and using_image else with_vectors,
    }
    if len(legs) == 1:
        leg = legs[0]
        return QueryRequest(query=Query.Nearest(_edge_vector(leg), using=using(leg)), params=params, **common)
    prefetches = [
        Prefetch(
            limit=prefetch, query=Query.Nearest(_edge_vector(leg), using=using(leg)), filter=edge_filter, params=params
        )
        for leg in legs
    ]
    fused: Any
    if query.fusion == "rrf":
        fused = Fusion.Rrf(k=int(query.rrf_k), weights=[float(leg.weight) for leg in legs])
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
    must_not: list[Any] = []
    if flt.exclude_patents:
        must_not.append(FieldCondition(key="patent_id", match=MatchAny([str(p) for p in flt.exclude_patents])))
    if flt.exclude_ids:
        must_not.append(HasIdCondition({str(i) for i in flt.exclude_ids}))
    return Filter(must=must or None, must_not=must_not or None)
