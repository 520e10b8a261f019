"""Vector store on a Qdrant server or cluster through ``qdrant-client`` (also ``QdrantClient(":memory:")`` in tests).

The client is injected, so tests and workers choose where it points. Several processes (Celery workers, the API)
can share one server collection; writes use ``wait=True`` and deterministic ids, so a repeated task overwrites.
The encoder names are kept in the collection's metadata. A collection holds the named vectors ``image`` and
``text`` (cosine) and the sparse ``words`` (IDF modifier); one unnamed vector is the legacy layout.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.local.qdrant_local import QdrantLocal

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

_SCHEMA_TYPES = {"keyword": qm.PayloadSchemaType.KEYWORD, "integer": qm.PayloadSchemaType.INTEGER}


class ServerStore(VectorStore):
    """A collection on a Qdrant server (or qdrant-client's in-process mode).

    Args:
        client: The client (one per process; see :func:`pir.search.store.open_store`).
        collection: Collection name.
        hnsw_ef: Search-time HNSW beam width.
        exact_filter_threshold: Filtered searches matching fewer points (estimated) are answered exactly.
        hnsw_m: HNSW graph degree (at creation).
        hnsw_ef_construct: HNSW build beam width (at creation).
        shard_number: Shards of the collection (at creation; a cluster spreads them over nodes).
        replication_factor: Copies of each shard (at creation).
        write_consistency_factor: Replicas that must confirm a write (at creation).
        on_disk_payload: Keep payloads on disk (at creation).
        location: Where the client points, for messages and :meth:`info`.
        owns_client: Close the client in :meth:`close`.
        upsert_batch: Points per upsert request.
    """

    backend = "server"

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        *,
        hnsw_ef: int = 256,
        exact_filter_threshold: int = 20_000,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 128,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        on_disk_payload: bool | None = None,
        location: str | None = None,
        owns_client: bool = False,
        upsert_batch: int = 256,
    ) -> None:
        super().__init__(collection, hnsw_ef=hnsw_ef, exact_filter_threshold=exact_filter_threshold)
        self.client = client
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construct = hnsw_ef_construct
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.write_consistency_factor = write_consistency_factor
        self.on_disk_payload = on_disk_payload
        self.location = location or "qdrant-client"
        self.owns_client = owns_client
        self.upsert_batch = upsert_batch
        self._dim: int | None = None
        self._text_dim: int | None = None
        self._layout: str | None = None
        self._encoder: str | None = None
        self._text_encoder: str | None = None
        self._closed = False
        # qdrant-client's local mode (":memory:" / path) is always exact and warns about search params.
        self._local = isinstance(getattr(client, "_client", None), QdrantLocal)

    # ----------------------------------------------------------------- collection
    def _load_config(self) -> bool:
        """Read vector size and encoder of an existing collection; False when there is none."""
        if self._closed:
            raise StoreError(f"the store for collection '{self.collection}' at {self.location} is closed")
        if not self.client.collection_exists(self.collection):
            return False
        cfg = self.client.get_collection(self.collection).config
        vectors = cfg.params.vectors
        self._layout, self._text_dim = LEGACY, None
        if isinstance(vectors, dict):
            if IMAGE in vectors:
                self._layout = NAMED
                text = vectors.get(TEXT)
                self._text_dim = None if text is None else int(text.size)
                vectors = vectors[IMAGE]
            elif "" in vectors:
                vectors = vectors[""]
            else:
                raise StoreError(
                    f"collection '{self.collection}' at {self.location} uses named vectors {sorted(vectors)}; "
                    "it was not made by pir: use another collection"
                )
        if vectors is None:
            raise StoreError(f"collection '{self.collection}' at {self.location} has no dense vectors")
        if vectors.distance != qm.Distance.COSINE:
            raise StoreError(
                f"collection '{self.collection}' at {self.location} uses {vectors.distance} distance, pir needs "
                "cosine: use another collection"
            )
        self._dim = int(vectors.size)
        meta = getattr(cfg, "metadata", None) or {}
        self._encoder = meta.get("encoder")
        self._text_encoder = meta.get("text_encoder")
        return True

    def ensure_collection(
        self, dim: int, *, encoder: str | None = None, text_dim: int = DEFAULT_TEXT_DIM, text_encoder: str | None = None
    ) -> None:
        """Create the collection (named vectors, payload indexes, distribution from settings) or validate it."""
        if int(dim) <= 0 or int(text_dim) <= 0:
            raise StoreError(f"collection '{self.collection}': vector sizes must be positive, got {dim}, {text_dim}")
        if not self._load_config():
            try:
                self.client.create_collection(
                    self.collection,
                    vectors_config={
                        IMAGE: qm.VectorParams(size=int(dim), distance=qm.Distance.COSINE),
                        TEXT: qm.VectorParams(size=int(text_dim), distance=qm.Distance.COSINE),
                    },
                    sparse_vectors_config={WORDS: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                    shard_number=self.shard_number,
                    replication_factor=self.replication_factor,
                    write_consistency_factor=self.write_consistency_factor,
                    on_disk_payload=self.on_disk_payload,
                    hnsw_config=qm.HnswConfigDiff(m=self.hnsw_m, ef_construct=self.hnsw_ef_construct),
                    metadata={
                        "encoder": encoder,
                        "dim": int(dim),
                        "text_dim": int(text_dim),
                        "text_encoder": text_encoder,
                        "words": WORDS_MODEL,
                        "layout": NAMED,
                        "created_by": "pir",
                    },
                )
                log.info("created collection '%s' (%d-d, cosine) at %s", self.collection, dim, self.location)
            except Exception:
                if not self._load_config():  # lost a creation race: validate what the other process made
                    raise
            self._load_config()
        assert self._dim is not None
        self._require_named("ingest")
        if self._text_dim is not None and self._text_dim != int(text_dim):
            raise StoreError(
                f"collection '{self.collection}' at {self.location} stores {self._text_dim}-d text vectors, but "
                f"{text_dim}-d were requested (another text encoder?). Nothing was changed."
            )
        if self._dim != dim:
            raise self._dim_mismatch(self._dim, dim)
        if encoder and self._encoder and self._encoder != encoder:
            raise self._encoder_mismatch(self._encoder, encoder)
        if encoder and not self._encoder:
            try:
                self.client.update_collection(self.collection, metadata={"encoder": encoder})
                self._encoder = encoder
            except Exception as exc:  # older servers have no collection metadata
                log.warning("could not record encoder '%s' on collection '%s': %s", encoder, self.collection, exc)
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        existing = set(self.client.get_collection(self.collection).payload_schema or {})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for name, kind in PAYLOAD_INDEXES.items():
                if name not in existing:
                    self.client.create_payload_index(self.collection, name, field_schema=_SCHEMA_TYPES[kind], wait=True)

    def dim(self) -> int | None:
        if self._dim is None:
            self._load_config()
        return self._dim

    def encoder(self) -> str | None:
        if self._dim is None:
            self._load_config()
        return self._encoder

    def layout(self) -> str | None:
        if self._dim is None:
            self._load_config()
        return self._layout

    def text_dim(self) -> int | None:
        if self._dim is None:
            self._load_config()
        return self._text_dim

    def text_encoder(self) -> str | None:
        if self._dim is None:
            self._load_config()
        return self._text_encoder

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.owns_client:
            self.client.close()

    # --------------------------------------------------------------------- writes
    def _upsert(
        self,
        ids: list[str],
        vectors: np.ndarray,
        payloads: list[dict[str, Any]],
        text: list[np.ndarray | None],
        words: list[SparseVector | None],
    ) -> None:
        def named(i: int) -> dict[str, Any]:
            v: dict[str, Any] = {IMAGE: vectors[i].tolist()}
            if text[i] is not None:
                v[TEXT] = text[i].tolist()
            if words[i] is not None:
                v[WORDS] = qm.SparseVector(indices=list(words[i].indices), values=list(words[i].values))
            return v

        for s in range(0, len(ids), self.upsert_batch):
            e = min(s + self.upsert_batch, len(ids))
            points = [qm.PointStruct(id=ids[i], vector=named(i), payload=payloads[i]) for i in range(s, e)]
            self.client.upsert(self.collection, points=points, wait=True)

    def _delete(self, ids: list[str]) -> None:
        self.client.delete(self.collection, points_selector=qm.PointIdsList(points=ids), wait=True)

    # ---------------------------------------------------------------------- reads
    def _estimate(self, flt: SearchFilter) -> int:
        if self._local:  # always exact: no need to plan
            return 0
        return int(self.client.count(self.collection, count_filter=to_qdrant_filter(flt), exact=False).count)

    def _query(
        self,
        vectors: np.ndarray,
        limit: int,
        flt: SearchFilter | None,
        min_score: float | None,
        exact: bool,
        with_vectors: bool,
    ) -> list[list[Hit]]:
        qfilter = to_qdrant_filter(flt)
        params = None if self._local else qm.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        using = self._image_using()
        if len(vectors) == 1:
            rows = [
                self.client.query_points(
                    self.collection,
                    query=vectors[0].tolist(),
                    using=using,
                    query_filter=qfilter,
                    search_params=params,
                    limit=limit,
                    score_threshold=min_score,
                    with_payload=True,
                    with_vectors=with_vectors,
                ).points
            ]
        else:
            requests = [
                qm.QueryRequest(
                    query=v.tolist(),
                    using=using,
                    filter=qfilter,
                    params=params,
                    limit=limit,
                    score_threshold=min_score,
                    with_payload=True,
                    with_vector=with_vectors,
                )
                for v in vectors
            ]
            rows = [r.points for r in self.client.query_batch_points(self.collection, requests=requests)]
        return to_hits(rows, with_vectors)

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
        qfilter = to_qdrant_filter(flt)
        params = None if self._local else qm.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        using_image = self._image_using()

        def using(leg: Leg) -> str | None:
            return using_image if leg.using == IMAGE else leg.using

        common: dict[str, Any] = {
            "query_filter": qfilter,
            "limit": limit,
            "score_threshold": min_score,
            "with_payload": True,
            "with_vectors": [IMAGE] if with_vectors and using_image else with_vectors,
        }
        if len(legs) == 1:
            leg = legs[0]
            res = self.client.query_points(
                self.collection, query=_qdrant_vector(leg), using=using(leg), search_params=params, **common
            )
            return to_hits([res.points], with_vectors)[0]
        prefetches = [
            qm.Prefetch(query=_qdrant_vector(leg), using=using(leg), filter=qfilter, params=params, limit=prefetch)
            for leg in legs
        ]
        fused: Any
        if query.fusion == "rrf":
            fused = qm.RrfQuery(rrf=qm.Rrf(k=int(query.rrf_k), weights=[float(leg.weight) for leg in legs]))
        else:
            terms: list[Any] = []
            for i, leg in enumerate(legs):
                score: Any = f"$score[{i}]"
                if leg.sparse:
                    score = qm.DivExpression(
                        div=qm.DivParams(
                            left=score, right=qm.SumExpression(sum=[score, WORDS_SCALE]), by_zero_default=0.0
                        )
                    )
                terms.append(qm.MultExpression(mult=[float(leg.weight), score]))
            fused = qm.FormulaQuery(
                formula=qm.SumExpression(sum=terms), defaults={f"$score[{i}]": 0.0 for i in range(len(legs))}
            )
        res = self.client.query_points(self.collection, prefetch=prefetches, query=fused, **common)
        return to_hits([res.points], with_vectors)[0]

    def _retrieve(self, ids: list[str], with_vectors: bool) -> list[StoredPoint]:
        records = self.client.retrieve(self.collection, ids, with_payload=True, with_vectors=with_vectors)
        return [to_stored_point(r, with_vectors) for r in records]

    def count(self, filter: SearchFilter | None = None) -> int:
        if self.dim() is None:
            return 0
        flt = None if filter is None or filter.is_empty() else filter
        return int(self.client.count(self.collection, count_filter=to_qdrant_filter(flt), exact=True).count)

    def scroll(
        self, *, batch_size: int = 256, with_vectors: bool = False, filter: SearchFilter | None = None
    ) -> Iterator[StoredPoint]:
        if self.dim() is None:
            return
        flt = None if filter is None or filter.is_empty() else filter
        qfilter = to_qdrant_filter(flt)
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=qfilter,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            for r in records:
                yield to_stored_point(r, with_vectors)
            if offset is None or not records:
                return

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "collection": self.collection,
            "location": self.location,
            "dim": self.dim(),
            "count": self.count(),
            "encoder": self.encoder(),
            "distance": "cosine",
            "layout": self.layout(),
            "text_dim": self.text_dim(),
            "text_encoder": self.text_encoder(),
        }
        if out["dim"] is not None:
            ci = self.client.get_collection(self.collection)
            out.update(
                status=str(getattr(ci.status, "value", ci.status)),
                segments=ci.segments_count,
                indexed_vectors=ci.indexed_vectors_count,
                payload_indexes=sorted(ci.payload_schema or {}),
                hnsw_ef=self.hnsw_ef,
                exact_filter_threshold=self.exact_filter_threshold,
            )
        return out

    def _location(self) -> str:
        return self.location


def _qdrant_vector(leg: Leg) -> Any:
    if isinstance(leg.vector, SparseVector):
        return qm.SparseVector(indices=list(leg.vector.indices), values=list(leg.vector.values))
    return np.asarray(leg.vector, dtype=np.float32).tolist()


def to_qdrant_filter(flt: SearchFilter | None) -> qm.Filter | None:
    """Translate a :class:`SearchFilter` into a qdrant-client ``Filter`` (None when empty)."""
    if flt is None or flt.is_empty():
        return None
    must: list[Any] = [
        qm.FieldCondition(key=key, match=qm.MatchAny(any=values)) for key, values in flt.keyword_conditions()
    ]
    if flt.year_from is not None or flt.year_to is not None:
        must.append(qm.FieldCondition(key="year", range=qm.Range(gte=flt.year_from, lte=flt.year_to)))
    must_not: list[Any] = []
    if flt.exclude_patents:
        must_not.append(
            qm.FieldCondition(key="patent_id", match=qm.MatchAny(any=[str(p) for p in flt.exclude_patents]))
        )
    if flt.exclude_ids:
        must_not.append(qm.HasIdCondition(has_id=[str(i) for i in flt.exclude_ids]))
    return qm.Filter(must=must or None, must_not=must_not or None)
