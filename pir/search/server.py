"""Vector store on a Qdrant server or cluster through ``qdrant-client`` (also ``QdrantClient(":memory:")`` in tests).

The client is injected, so tests and workers choose where it points. Several processes (Celery workers, the API)
can share one server collection; writes use ``wait=True`` and deterministic ids, so a repeated task overwrites.
The encoder names are kept in the collection's metadata. A collection holds the named vectors ``image`` and
``text`` (cosine) and the sparse ``words`` (IDF modifier); one unnamed vector is the legacy layout.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.local.qdrant_local import QdrantLocal

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
from pir.search.words import WORDS_MODEL, SparseVector

if TYPE_CHECKING:
    from pir.core.config import Settings
    from pir.encoder.text import TextEncoder
    from pir.search.migrate import ReindexSummary

log = logging.getLogger(__name__)

#: Collection distribution keywords of :class:`ServerStore` (as in the settings' ``qdrant`` section).
DISTRIBUTION = ("shard_number", "replication_factor", "write_consistency_factor", "on_disk_payload")
_SCHEMA_TYPES = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "datetime": qm.PayloadSchemaType.DATETIME,
}


class ServerStore(st.VectorStore):
    """A collection on a Qdrant server (or qdrant-client's in-process mode).

    Args:
        client: The client (one per process; see :func:`pir.search.factory.open_store`).
        collection: Collection name.
        location: Where the client points, for messages and :meth:`info`.
        owns_client: Close the client in :meth:`close`.
        upsert_batch: Points per upsert request.
        options: The index keywords (``hnsw_ef``, ``exact_filter_threshold``, ``hnsw_m``, ``hnsw_ef_construct``, see
            :class:`pir.search.store.VectorStore`) and the distribution at creation (:data:`DISTRIBUTION`):
            ``shard_number`` (a cluster spreads shards over nodes), ``replication_factor`` (copies of each shard),
            ``write_consistency_factor`` (replicas that must confirm a write), ``on_disk_payload``.
    """

    backend = "server"

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        *,
        location: str | None = None,
        owns_client: bool = False,
        upsert_batch: int = 256,
        **options: Any,
    ) -> None:
        self.distribution: dict[str, Any] = {k: options.pop(k, None) for k in DISTRIBUTION}
        super().__init__(collection, **options)
        self.client = client
        self.location = location or "qdrant-client"
        self.owns_client = owns_client
        self.upsert_batch = upsert_batch
        self._dim: int | None = None
        self._text_dim: int | None = None
        self._layout: str | None = None
        self._encoder: str | None = None
        self._text_encoder: str | None = None
        self._quantization: str = "none"  # of the image vectors, read with the collection's config
        self._closed = False
        # qdrant-client's local mode (":memory:" / path) is always exact and warns about search params.
        self._local = isinstance(getattr(client, "_client", None), QdrantLocal)

    def sibling(self, collection: str) -> ServerStore:
        """Another collection on the same client with the same options (the client stays this store's)."""
        options = {**self.distribution, **self.index_options()}
        return ServerStore(self.client, collection, location=self.location, upsert_batch=self.upsert_batch, **options)

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
        self._quantization = _quantization_name(vectors.quantization_config or cfg.quantization_config)
        meta = getattr(cfg, "metadata", None) or {}
        self._encoder = meta.get("encoder")
        self._text_encoder = meta.get("text_encoder")
        return True

    def _ensure(
        self, dim: int, encoder: str | None, text_dim: int, text_encoder: str | None, plan: st.VectorPlan
    ) -> None:
        """Create the collection (named vectors stored as ``plan`` says, distribution from settings, payload indexes
        before any point) or validate it."""
        if not self._load_config():
            try:
                self.client.create_collection(
                    self.collection,
                    vectors_config={IMAGE: _vector_params(int(dim), plan), TEXT: _vector_params(int(text_dim), plan)},
                    sparse_vectors_config={WORDS: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                    **self.distribution,
                    hnsw_config=qm.HnswConfigDiff(m=self.hnsw_m, ef_construct=self.hnsw_ef_construct),
                    metadata={
                        "encoder": encoder,
                        "dim": int(dim),
                        "text_dim": int(text_dim),
                        "text_encoder": text_encoder,
                        "words": WORDS_MODEL,
                        "layout": NAMED,
                        "storage_plan": plan.reason,
                        "created_by": "pir",
                    },
                )
                log.info(
                    "created collection '%s' (%d-d, cosine; quantization %s, %s) at %s",
                    self.collection,
                    dim,
                    plan.quantization,
                    plan.reason,
                    self.location,
                )
            except Exception:
                if not self._load_config():  # lost a creation race: validate what the other process made
                    raise
            self._load_config()
        if self._check_existing(dim, text_dim, encoder):
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
            for name, kind in st.PAYLOAD_INDEXES.items():
                if name not in existing:
                    self.client.create_payload_index(self.collection, name, field_schema=_SCHEMA_TYPES[kind], wait=True)

    def _config(self, attr: str) -> Any:
        """One attribute of the collection's config (read from the server until the collection exists)."""
        if self._dim is None:
            self._load_config()
        return getattr(self, attr)

    def dim(self) -> int | None:
        return self._config("_dim")

    def encoder(self) -> str | None:
        return self._config("_encoder")

    def layout(self) -> str | None:
        return self._config("_layout")

    def text_dim(self) -> int | None:
        return self._config("_text_dim")

    def text_encoder(self) -> str | None:
        return self._config("_text_encoder")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.owns_client:
            self.client.close()

    # --------------------------------------------------------------------- writes
    def _upsert(self, batch: Batch) -> None:
        for part in batch.chunks(self.upsert_batch):
            points = [
                qm.PointStruct(id=batch.ids[i], vector=batch.vectors(i, _dense, _sparse), payload=batch.payloads[i])
                for i in part
            ]
            self.client.upsert(self.collection, points=points, wait=True)

    def _delete(self, ids: list[str]) -> None:
        self.client.delete(self.collection, points_selector=qm.PointIdsList(points=ids), wait=True)

    # ---------------------------------------------------------------------- reads
    def _count(self, flt: SearchFilter | None, *, exact: bool) -> int:
        if self._local and not exact:  # always exact: no need to plan
            return 0
        return int(self.client.count(self.collection, count_filter=to_qdrant_filter(flt), exact=exact).count)

    def _params(self, ask: Ask) -> qm.SearchParams | None:
        if self._local:
            return None
        quant = None
        if self.quantized():
            quant = qm.QuantizationSearchParams(
                rescore=self.quantization_rescore, oversampling=float(self.quantization_oversampling)
            )
        return search_params(ask, self.hnsw_ef, quant)

    def quantized(self) -> bool:
        return self.dim() is not None and self._quantization != "none"

    def _query(self, vectors: np.ndarray, ask: Ask) -> list[list[Hit]]:
        qfilter = to_qdrant_filter(ask.flt)
        requests = [
            qm.QueryRequest(
                query=v.tolist(),
                using=self._image_using(),
                filter=qfilter,
                params=self._params(ask),
                limit=ask.limit,
                score_threshold=ask.min_score,
                with_payload=True,
                with_vector=ask.with_vectors,
            )
            for v in vectors
        ]
        rows = [r.points for r in self.client.query_batch_points(self.collection, requests=requests)]
        return to_hits(rows, ask.with_vectors)

    def _hybrid(self, legs: list[Leg], query: HybridQuery, ask: Ask) -> list[Hit]:
        qfilter = to_qdrant_filter(ask.flt)
        params = self._params(ask)
        using_image = self._image_using()
        queries = [(leg_query(leg), using_image if leg.using == IMAGE else leg.using) for leg in legs]
        common: dict[str, Any] = {
            "query_filter": qfilter,
            "limit": ask.limit,
            "score_threshold": ask.min_score,
            "with_payload": True,
            "with_vectors": [IMAGE] if ask.with_vectors and using_image else ask.with_vectors,
        }
        if len(legs) == 1:
            q, using = queries[0]
            res = self.client.query_points(self.collection, query=q, using=using, search_params=params, **common)
            return to_hits([res.points], ask.with_vectors)[0]
        prefetches = [
            qm.Prefetch(query=q, using=using, filter=qfilter, params=params, limit=ask.prefetch) for q, using in queries
        ]
        res = self.client.query_points(self.collection, prefetch=prefetches, query=fusion_query(legs, query), **common)
        return to_hits([res.points], ask.with_vectors)[0]

    def _retrieve(self, ids: list[str], with_vectors: bool) -> list[StoredPoint]:
        records = self.client.retrieve(self.collection, ids, with_payload=True, with_vectors=with_vectors)
        return [to_stored_point(r, with_vectors) for r in records]

    def _scroll_page(
        self, offset: Any, limit: int, flt: SearchFilter | None, with_vectors: bool
    ) -> tuple[list[Any], Any]:
        return self.client.scroll(
            self.collection,
            scroll_filter=to_qdrant_filter(flt),
            limit=limit,
            offset=offset,
            with_payload=True,
            with_vectors=with_vectors,
        )

    def _creation_options(self) -> dict[str, Any]:
        return dict(self.distribution)

    def _stored_settings(self) -> dict[str, Any]:
        ci = self.client.get_collection(self.collection)
        cfg, params = ci.config, ci.config.params
        named = params.vectors if isinstance(params.vectors, dict) else {IMAGE: params.vectors}
        vectors: dict[str, Any] = {}
        for name in (IMAGE, TEXT):
            v = named.get(name, named.get("") if name == IMAGE else None)
            if v is not None:
                q = _quantization_name(v.quantization_config or cfg.quantization_config)
                vectors[name] = {"size": int(v.size), "quantization": q, "on_disk": bool(v.on_disk)}
        image = vectors.get(IMAGE, {})
        meta = getattr(cfg, "metadata", None) or {}
        hnsw = cfg.hnsw_config
        return {
            "quantization": image.get("quantization", "none"),
            "vectors_on_disk": image.get("on_disk", False),
            "storage_plan": meta.get("storage_plan"),
            "vectors": vectors,
            "hnsw_m": hnsw.m,
            "hnsw_ef_construct": hnsw.ef_construct,
            "full_scan_threshold_kb": hnsw.full_scan_threshold,
            "on_disk_payload": bool(params.on_disk_payload),
            "shard_number": params.shard_number,
            "replication_factor": params.replication_factor,
            "write_consistency_factor": params.write_consistency_factor,
            "payload_indexes": {k: _schema_name(v.data_type) for k, v in sorted((ci.payload_schema or {}).items())},
        }

    def _index_info(self) -> dict[str, Any]:
        ci = self.client.get_collection(self.collection)
        return {
            "status": str(getattr(ci.status, "value", ci.status)),
            "segments": ci.segments_count,
            "indexed_vectors": ci.indexed_vectors_count,
            "payload_indexes": sorted(ci.payload_schema or {}),
        }

    def _location(self) -> str:
        return self.location

    @property
    def thread_safe(self) -> bool:
        """A server over HTTP/gRPC is; qdrant-client's in-process local mode is not."""
        return not self._local


def _vector_params(size: int, plan: st.VectorPlan) -> qm.VectorParams:
    """One dense vector of a new collection: cosine, stored and quantized as ``plan`` says."""
    quant: qm.ScalarQuantization | qm.BinaryQuantization | None = None
    if plan.quantization == "int8":
        quant = qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=st.INT8_QUANTILE, always_ram=True)
        )
    elif plan.quantization == "binary":
        quant = qm.BinaryQuantization(binary=qm.BinaryQuantizationConfig(always_ram=True))
    return qm.VectorParams(
        size=size, distance=qm.Distance.COSINE, on_disk=True if plan.on_disk else None, quantization_config=quant
    )


def _quantization_name(config: Any) -> str:
    """``none``, ``int8``, ``binary`` or ``product`` of a qdrant-client quantization config (None = none)."""
    if config is None:
        return "none"
    if isinstance(config, qm.ScalarQuantization):
        return str(getattr(config.scalar.type, "value", config.scalar.type))
    if isinstance(config, qm.BinaryQuantization):
        return "binary"
    if isinstance(config, qm.ProductQuantization):
        return "product"
    return type(config).__name__.lower()


def _schema_name(data_type: Any) -> str:
    """The payload index type as pir names it (``keyword``, ``integer``, ``datetime``, ...)."""
    return str(getattr(data_type, "value", data_type))


def search_params(ask: Ask, hnsw_ef: int, quantization: qm.QuantizationSearchParams | None = None) -> qm.SearchParams:
    """The server's search params of ``ask``'s plan (as :func:`pir.search.edge.search_params`): ``exact``, or HNSW
    at ``hnsw_ef``, with ACORN for the ``acorn`` plan (``max_selectivity=1``: pir already decided; needs Qdrant
    1.16+, qdrant-client 1.16+), and the quantized collection's rescoring options."""
    acorn = qm.AcornSearchParams(enable=True, max_selectivity=1.0) if ask.plan == "acorn" else None
    return qm.SearchParams(hnsw_ef=hnsw_ef, exact=ask.exact, quantization=quantization, acorn=acorn)


def _dense(v: np.ndarray) -> list[float]:
    return np.asarray(v, dtype=np.float32).tolist()


def _sparse(v: SparseVector) -> qm.SparseVector:
    return qm.SparseVector(indices=list(v.indices), values=list(v.values))


def leg_query(leg: Leg) -> Any:
    """The qdrant-client query of one leg: a vector (nearest neighbours) or a recommend query."""
    v = leg.vector
    if isinstance(v, Recommend):
        examples = qm.RecommendInput(
            positive=[_dense(x) for x in v.positives],
            negative=[_dense(x) for x in v.negatives] or None,
            strategy=qm.RecommendStrategy(v.strategy),
        )
        return qm.RecommendQuery(recommend=examples)
    return _sparse(v) if isinstance(v, SparseVector) else _dense(v)


def fusion_query(legs: list[Leg], query: HybridQuery) -> Any:
    """Weighted RRF, or the formula ``sum(weight_i * score_i)`` with words scores squashed to ``s / (s + scale)``."""
    if query.fusion == "rrf":
        return qm.RrfQuery(rrf=qm.Rrf(k=int(query.rrf_k), weights=[float(leg.weight) for leg in legs]))
    if query.fusion == "zscore":
        zterms: list[Any] = []
        for i, leg in enumerate(legs):
            scale, offset = leg.standardised()
            zterms += [qm.MultExpression(mult=[scale, f"$score[{i}]"]), offset]
            if (g := leg.gate_terms()) is not None:
                z_over = qm.SumExpression(sum=[qm.MultExpression(mult=[g[1], f"$score[{i}]"]), g[2]])
                zterms.append(qm.MultExpression(mult=[g[0], qm.MaxExpression(max=[z_over, 0.0])]))
        return qm.FormulaQuery(
            formula=qm.SumExpression(sum=zterms), defaults={f"$score[{i}]": leg.floor for i, leg in enumerate(legs)}
        )
    terms: list[Any] = []
    for i, leg in enumerate(legs):
        score: Any = f"$score[{i}]"
        if leg.sparse:
            squash = qm.DivParams(left=score, right=qm.SumExpression(sum=[score, WORDS_SCALE]), by_zero_default=0.0)
            score = qm.DivExpression(div=squash)
        terms.append(qm.MultExpression(mult=[float(leg.weight), score]))
    return qm.FormulaQuery(
        formula=qm.SumExpression(sum=terms), defaults={f"$score[{i}]": 0.0 for i in range(len(legs))}
    )


def to_qdrant_filter(flt: SearchFilter | None) -> qm.Filter | None:
    """Translate a :class:`SearchFilter` into a qdrant-client ``Filter`` (None when empty)."""
    if flt is None or flt.is_empty():
        return None
    must: list[Any] = [
        qm.FieldCondition(key=key, match=qm.MatchAny(any=values)) for key, values in flt.keyword_conditions()
    ]
    if flt.year_from is not None or flt.year_to is not None:
        must.append(qm.FieldCondition(key="year", range=qm.Range(gte=flt.year_from, lte=flt.year_to)))
    if flt.published_after is not None or flt.published_before is not None:
        must.append(qm.FieldCondition(key="publication_date", range=qm.DatetimeRange(**flt.date_range())))
    must_not: list[Any] = []
    if flt.exclude_patents:
        must_not.append(
            qm.FieldCondition(key="patent_id", match=qm.MatchAny(any=[str(p) for p in flt.exclude_patents]))
        )
    if flt.exclude_ids:
        must_not.append(qm.HasIdCondition(has_id=[str(i) for i in flt.exclude_ids]))
    return qm.Filter(must=must or None, must_not=must_not or None)


def open_store(settings: Settings, collection: str) -> ServerStore:
    """The registry's ``server`` backend: a Qdrant server or cluster at ``settings.qdrant.url``."""
    q = settings.qdrant
    api_key = q.api_key.get_secret_value() if q.api_key else None
    client = QdrantClient(url=q.url, api_key=api_key, prefer_grpc=q.prefer_grpc, timeout=math.ceil(q.timeout))
    return _from_settings(settings, collection, client)


def open_memory(settings: Settings, collection: str) -> ServerStore:
    """The registry's ``memory`` backend (``qdrant.url = ":memory:"``): qdrant-client in this process, not persisted."""
    return _from_settings(settings, collection, QdrantClient(":memory:"))


def _from_settings(settings: Settings, collection: str, client: QdrantClient) -> ServerStore:
    options = {**{k: getattr(settings.qdrant, k) for k in DISTRIBUTION}, **st.index_settings(settings)}
    return ServerStore(client, collection, location=settings.qdrant.url, owns_client=True, **options)


def reindex(
    settings: Settings, collection: str | None, store: st.VectorStore | None, te: TextEncoder, opts: dict[str, Any]
) -> ReindexSummary:
    """Upgrade a server collection to the named layout (see :mod:`pir.search.migrate`): copy into ``<name>__reindex``,
    check, drop and re-create the original, copy back, check again."""
    if store is None:
        from pir.search.factory import open_store as open_any  # lazy: cycle: the factory imports the backends

        with open_any(settings, collection=collection) as opened:
            return reindex(settings, collection, opened, te, opts)
    return _reindex_server(store, te, opts)


def _reindex_server(store: st.VectorStore, te: TextEncoder, opts: dict[str, Any]) -> ReindexSummary:
    from pir.search.migrate import (  # lazy: cycle: pir.search.migrate uses this backend's store class
        TMP_SUFFIX,
        ReindexSummary,
        check_same,
        copy_points,
    )

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
        tmp.ensure_collection(
            int(store.dim() or 0),
            encoder=store.encoder(),
            text_dim=te.dim,
            text_encoder=te.name,
            expected_points=store.count(),  # sized for what it is about to hold
        )
        summary.points = copy_points(store, tmp, summary=summary, **opts)
        check_same(store, tmp)
        encoder = store.encoder()
        client.delete_collection(name)  # the full, checked copy lives in tmp_name from here on
    else:  # interrupted after the original was dropped: tmp_name holds the checked copy
        encoder = tmp.encoder()
    fresh = server(name)
    fresh.ensure_collection(
        int(tmp.dim() or 0),
        encoder=encoder,
        text_dim=te.dim,
        text_encoder=tmp.text_encoder(),
        expected_points=tmp.count(),
    )
    n = copy_points(tmp, fresh, batch_size=opts["batch_size"], show_progress=opts["show_progress"])
    check_same(tmp, fresh)
    summary.points = n
    client.delete_collection(tmp_name)
    store._dim = None  # reload the layout on next use  # noqa: SLF001
    log.info("reindexed '%s': %d points, now image/text/words", name, n)
    return summary
