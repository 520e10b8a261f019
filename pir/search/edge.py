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
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    RecommendQuery,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)
from qdrant_edge import SparseVector as EdgeSparseVector

from pir.diskspace import check_store_open
from pir.search import store as st
from pir.search.store import IMAGE, LEGACY, NAMED, TEXT, WORDS, Ask, Batch, Hit, Leg, StoreError
from pir.search.words import WORDS_MODEL, SparseVector

if TYPE_CHECKING:
    from pir.config import Settings

log = logging.getLogger(__name__)

META_FILE = "pir_collection.json"
SHARD_DIR = "shard"
_SCHEMA_TYPES = {"keyword": PayloadSchemaType.Keyword, "integer": PayloadSchemaType.Integer}
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
        **index: int,
    ) -> None:
        super().__init__(collection, **index)
        self.path = Path(path)
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
        check_store_open(self.path)  # a full disk would make the engine die of SIGBUS, with no message
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

    def _ensure(self, dim: int, encoder: str | None, text_dim: int, text_encoder: str | None) -> None:
        """Create the shard (named vectors, payload indexes) or check the existing one's layout, sizes and encoder."""
        if self._closed:
            raise StoreError(f"the Qdrant Edge store at {self.path} is closed")
        if self._shard is not None and self._meta is not None:
            if self._check_existing(dim, text_dim, encoder):
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
        check_store_open(self.path)
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
    def _upsert(self, batch: Batch) -> None:
        for part in batch.chunks(self.upsert_batch):
            points = [Point(batch.ids[i], batch.vectors(i, _dense, _sparse), batch.payloads[i]) for i in part]
            try:
                self._sh.update(UpdateOperation.upsert_points(points))
            except Exception as exc:
                raise StoreError(f"upsert into '{self.collection}' at {self.path} failed: {exc}") from exc

    def _delete(self, ids: list[str]) -> None:
        self._sh.update(UpdateOperation.delete_points(ids))

    # ---------------------------------------------------------------------- reads
    def _count(self, flt: st.SearchFilter | None, *, exact: bool) -> int:
        return int(self._sh.count(CountRequest(exact=exact, filter=to_edge_filter(flt))))

    def _query(self, vectors: np.ndarray, ask: Ask) -> list[list[Hit]]:
        edge_filter = to_edge_filter(ask.flt)
        params = SearchParams(hnsw_ef=self.hnsw_ef, exact=ask.exact)
        using = self._image_using()
        requests = [
            QueryRequest(query=Query.Nearest(v, using=using), params=params, **_common(ask, edge_filter))
            for v in vectors
        ]
        if len(requests) == 1:
            results = [self._sh.query(requests[0])]
        else:
            results = self._sh.query_batch(QueryBatchRequest(queries=requests))
        return st.to_hits(results, ask.with_vectors)

    def _hybrid(self, legs: list[Leg], query: st.HybridQuery, ask: Ask) -> list[Hit]:
        request = hybrid_request(legs, query, ask, self.hnsw_ef, using_image=self._image_using())
        return st.to_hits([self._sh.query(request)], ask.with_vectors)[0]

    def _retrieve(self, ids: list[str], with_vectors: bool) -> list[st.StoredPoint]:
        records = self._sh.retrieve(ids, with_payload=True, with_vector=with_vectors)
        return [st.to_stored_point(r, with_vectors) for r in records]

    def _scroll_page(
        self, offset: Any, limit: int, flt: st.SearchFilter | None, with_vectors: bool
    ) -> tuple[list[Any], Any]:
        request = ScrollRequest(
            offset=offset, limit=limit, filter=to_edge_filter(flt), with_payload=True, with_vector=with_vectors
        )
        return self._sh.scroll(request)

    def _index_info(self) -> dict[str, Any]:
        si = self._sh.info()
        return {
            "segments": si.segments_count,
            "indexed_vectors": si.indexed_vectors_count,
            "payload_indexes": sorted(si.payload_schema),
        }

    def _location(self) -> str:
        return str(self.path)


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
    if isinstance(v, st.Recommend):
        if v.strategy == "average_vector":
            return Query.Nearest(v.average(), using=using)
        examples = RecommendQuery(list(v.positives), list(v.negatives))
        if v.strategy == "best_score":
            return Query.RecommendBestScore(examples, using=using)
        return Query.RecommendSumScores(examples, using=using)
    return Query.Nearest(_sparse(v) if isinstance(v, SparseVector) else v, using=using)


def hybrid_request(
    legs: list[Leg], query: st.HybridQuery, ask: Ask, hnsw_ef: int, *, using_image: str | None = IMAGE
) -> QueryRequest:
    """The Qdrant Edge request of a hybrid query: the filter on every prefetch (and the fused query)."""
    params = SearchParams(hnsw_ef=hnsw_ef, exact=ask.exact)
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
        defaults = {f"$score[{i}]": float(leg.floor) for i, leg in enumerate(legs)}
        fused = Formula(Expression.Sum(terms), defaults=defaults)
    else:
        terms = []
        for i, leg in enumerate(legs):
            score = Expression.Variable(f"$score[{i}]")
            if leg.sparse:
                score = Expression.Div(score, Expression.Sum([score, Expression.Constant(st.WORDS_SCALE)]), 0.0)
            terms.append(Expression.Mult([Expression.Constant(float(leg.weight)), score]))
        fused = Formula(Expression.Sum(terms), defaults={f"$score[{i}]": 0.0 for i in range(len(legs))})
    return QueryRequest(query=fused, prefetches=prefetches, **common)


def to_edge_filter(flt: st.SearchFilter | None) -> Filter | None:
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


def open_store(settings: Settings, collection: str) -> EdgeStore:
    """The registry's ``edge`` backend: ``collection`` under ``settings.store_dir`` (see :mod:`pir.search.factory`)."""
    return EdgeStore(settings.store_dir / collection, collection, **st.index_settings(settings))
