"""Vector store interface of pir: one API over Qdrant Edge (embedded) and a Qdrant server (qdrant-client).

Points are patent figures: a uuid string id (:func:`pir.ingest.schema.point_id`), three named vectors and the flat
payload of :meth:`pir.ingest.schema.PatentFigure.payload`:

- ``image``: the visual encoder's L2-normalised float32 embedding (cosine);
- ``text``: the frozen text encoder over the figure's own words (cosine; see :mod:`pir.search.words`);
- ``words``: a sparse BM25 vector over the same words (Qdrant applies the IDF at query time).

``text`` and ``words`` are optional per point. Collections made before named vectors (one unnamed vector, the
"legacy" layout) can still be searched by image; writing to them or querying their words raises
:class:`LegacyLayoutError`, which says to run ``pir reindex`` (:func:`pir.search.migrate.reindex`).

This module holds the backend-neutral base class; the backends (:mod:`pir.search.edge`, :mod:`pir.search.server`)
import it, and :func:`pir.search.factory.open_store` picks one. Both give the same results for the same data (see
``tests/test_store.py`` and ``tests/test_hybrid.py``).

Example:
    >>> with open_store(settings) as store:
    ...     store.ensure_collection(vectors.shape[1], encoder="tf_efficientnet_lite0", text_dim=384)
    ...     store.upsert(ids, vectors, payloads, text=text_matrix, words=sparse_list)
    ...     hits = store.search(vectors[0], k=10, filter=SearchFilter(classes=["D14"]), group_by_patent=True)
    ...     hits = store.hybrid_search(HybridQuery(image=vectors[0], words=words_query_vector("lamp")), k=10)
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np

from pir.search.points import normalize_id, to_stored_point
from pir.search.query import (
    DEFAULT_TEXT_DIM,
    IMAGE,
    LEGACY,
    TIE_EPS,
    TIE_POOL_MAX,
    ZSCORE_POOL,
    Ask,
    Batch,
    Hit,
    HybridQuery,
    Leg,
    LegacyLayoutError,
    Recommend,
    SearchFilter,
    SearchOptions,
    StoredPoint,
    StoreError,
)
from pir.search.request import DEFAULT_FUSION, RECOMMEND_STRATEGIES
from pir.search.words import SparseVector

if TYPE_CHECKING:
    from types import TracebackType

#: Payload fields indexed at collection creation (before any point is stored), with their index type: every field
#: :class:`SearchFilter` filters on (``classes``, ``year``, ``publication_date``, ``viewpoint``, ``object_name``,
#: ``patent_id`` also for ``exclude_patents``) plus ``class_label``. ``exclude_ids`` filters on point ids (no index).
PAYLOAD_INDEXES: dict[str, str] = {
    "patent_id": "keyword",
    "classes": "keyword",
    "class_label": "keyword",
    "object_name": "keyword",
    "viewpoint": "keyword",
    "year": "integer",
    "publication_date": "datetime",
}

#: Index keywords every backend takes (:class:`VectorStore`), named as in the settings' ``qdrant`` section.
INDEX_OPTIONS = (
    "hnsw_ef",
    "exact_filter_threshold",
    "hnsw_m",
    "hnsw_ef_construct",
    "quantization",
    "vectors_on_disk",
    "expected_points",
    "quantization_rescore",
    "quantization_oversampling",
    "acorn_max_selectivity",
)

#: Quantization settings (``qdrant.quantization``); ``auto`` resolves to ``none`` or ``int8`` (:func:`vector_plan`).
QUANTIZATIONS = ("auto", "none", "int8", "binary")
#: ``auto`` quantizes (int8, quantized copy in RAM, originals on disk, rescored) from this many expected figures up.
#: Where it comes from (../shared/qdrant-edge-and-celery.md, 2 cores / 24 GB): float32 in RAM fits comfortably up to
#: about 300k figures; at 1M (512-d) the benchmark process peaked at 15.7 GB. pir's figures carry 1280-d image and
#: 384-d text vectors (6.5 KB float32 each; 2 GB at 300k): int8 keeps 1.6 KB of them in RAM, rescoring the best
#: ``oversampling * k`` candidates from the originals keeps the ranking. Below it, float32 in RAM (no quantization
#: error, nothing read from disk).
AUTO_QUANTIZE_POINTS = 300_000
#: Int8 scalar quantization clips each dimension to this quantile of its values (Qdrant's usual setting).
INT8_QUANTILE = 0.99
#: The filter planner's choices (:meth:`VectorStore.plan_for`).
PLANS = ("hnsw", "exact", "acorn")


@dataclasses.dataclass(frozen=True)
class VectorPlan:
    """How the ``image`` and ``text`` vectors of a new collection are stored (:func:`vector_plan`).

    Attributes:
        quantization: ``none``, ``int8`` or ``binary`` (the quantized copy is kept in RAM).
        on_disk: The original float32 vectors live on disk (mmap) instead of RAM.
        reason: Why, in words (shown by ``pir info``).
    """

    quantization: str
    on_disk: bool
    reason: str


def vector_plan(quantization: str, vectors_on_disk: bool | None, expected_points: int | None) -> VectorPlan:
    """The vector storage of a new collection from the settings and the size it is planned for.

    ``auto``: ``int8`` from :data:`AUTO_QUANTIZE_POINTS` expected points up, else ``none`` (an unknown size counts as
    small). ``vectors_on_disk`` None: originals on disk exactly when quantized (the searches read the quantized copy
    in RAM; only the rescored candidates read the originals).

    Raises:
        StoreError: An unknown quantization.
    """
    if quantization not in QUANTIZATIONS:
        raise StoreError(f"unknown quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)}")
    if quantization == "auto":
        n = expected_points
        if n is not None and n >= AUTO_QUANTIZE_POINTS:
            quantization, why = "int8", f"auto: {n} expected points >= {AUTO_QUANTIZE_POINTS}"
        else:
            size = "unknown size" if n is None else f"{n} expected points < {AUTO_QUANTIZE_POINTS}"
            quantization, why = "none", f"auto: {size}"
    else:
        why = "set"
    on_disk = quantization != "none" if vectors_on_disk is None else bool(vectors_on_disk)
    return VectorPlan(quantization, on_disk, f"{why}; originals {'on disk' if on_disk else 'in RAM'}")


_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_GROUP_OVERFETCH = 4


class VectorStore(ABC):
    """A collection of figure vectors with payloads; cosine similarity (higher score = more similar).

    Subclasses implement the backend primitives; validation, filtered-recall planning and grouping by patent live
    here so that both backends behave the same.
    """

    backend: str
    collection: str

    def __init__(
        self,
        collection: str,
        *,
        hnsw_ef: int = 256,
        exact_filter_threshold: int = 20_000,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 128,
        quantization: str = "auto",
        vectors_on_disk: bool | None = None,
        expected_points: int | None = None,
        quantization_rescore: bool = True,
        quantization_oversampling: float = 2.0,
        acorn_max_selectivity: float = 0.4,
    ) -> None:
        """Index settings shared by the backends (as in :class:`pir.core.config.QdrantSettings`).

        At creation: ``hnsw_m``, ``hnsw_ef_construct``, ``quantization``, ``vectors_on_disk``, ``expected_points``
        (:func:`vector_plan`). At search: ``hnsw_ef``, ``quantization_rescore`` / ``quantization_oversampling`` (when
        the collection is quantized), and the filter planner's ``exact_filter_threshold`` /
        ``acorn_max_selectivity`` (:meth:`plan_for`).
        """
        self.collection = validate_collection_name(collection)
        self.hnsw_ef = hnsw_ef
        self.exact_filter_threshold = exact_filter_threshold
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construct = hnsw_ef_construct
        vector_plan(quantization, vectors_on_disk, expected_points)  # refuse an unknown quantization now
        self.quantization = quantization
        self.vectors_on_disk = vectors_on_disk
        self.expected_points = expected_points
        self.quantization_rescore = quantization_rescore
        self.quantization_oversampling = quantization_oversampling
        self.acorn_max_selectivity = acorn_max_selectivity
        #: The filter planner's last choice (``hnsw``, ``exact`` or ``acorn``; None before the first search).
        self.last_plan: str | None = None

    @property
    def thread_safe(self) -> bool:
        """Whether threads may call this store at once; when False a server serialises its calls
        (:func:`pir.search.runtime.guarded`). The embedded store is single-owner: False."""
        return False

    def index_options(self) -> dict[str, Any]:
        """This store's index keywords (to open another collection alike)."""
        return {k: getattr(self, k) for k in INDEX_OPTIONS}

    # ----------------------------------------------------------------- collection
    def ensure_collection(
        self,
        dim: int,
        *,
        encoder: str | None = None,
        text_dim: int = DEFAULT_TEXT_DIM,
        text_encoder: str | None = None,
        expected_points: int | None = None,
    ) -> None:
        """Create the collection (``image``/``text``/``words`` vectors, payload indexes) or check the existing one.

        A new collection gets the payload indexes of :data:`PAYLOAD_INDEXES` before any point is stored, HNSW
        ``hnsw_m`` / ``hnsw_ef_construct``, and the vector storage of :func:`vector_plan` (quantization, originals on
        disk) for ``expected_points`` (else the store's ``expected_points``). An existing one keeps its settings.

        Args:
            dim: Size of the ``image`` vectors.
            encoder: Image encoder id recorded with the collection (``name@version``).
            text_dim: Size of the ``text`` vectors (the text encoder's dimension).
            text_encoder: Text encoder name recorded with the collection.
            expected_points: Figures the new collection is planned for (e.g. the number about to be ingested).

        Raises:
            LegacyLayoutError: The collection has the old single-vector layout (``pir reindex`` upgrades it).
            StoreError: The collection exists with another vector size (or another encoder); nothing is changed.
        """
        if int(dim) <= 0 or int(text_dim) <= 0:
            raise StoreError(f"collection '{self.collection}': vector sizes must be positive, got {dim}, {text_dim}")
        self._ensure(int(dim), encoder, int(text_dim), text_encoder, self.vector_plan(expected_points))

    def vector_plan(self, expected_points: int | None = None) -> VectorPlan:
        """The vector storage a new collection gets (:func:`vector_plan` of this store's settings)."""
        n = expected_points if expected_points is not None else self.expected_points
        return vector_plan(self.quantization, self.vectors_on_disk, n)

    @abstractmethod
    def _ensure(self, dim: int, encoder: str | None, text_dim: int, text_encoder: str | None, plan: VectorPlan) -> None:
        """Backend: create the collection with ``plan``, or check the existing one with :meth:`_check_existing`."""

    def collection_settings(self) -> dict[str, Any]:
        """The collection's effective settings, read back from the backend (what ``pir info`` shows).

        Keys: ``backend``, ``exists``; ``quantization`` / ``vectors_on_disk`` (of the ``image`` vectors; ``vectors``
        has each named vector's ``size``, ``quantization``, ``on_disk``) and ``storage_plan`` (why, as recorded at
        creation; :func:`vector_plan`); ``hnsw_m``, ``hnsw_ef_construct``; the search-time
        ``hnsw_ef``, ``quantization_rescore``, ``quantization_oversampling``; ``payload_indexes`` (field -> type);
        the planner's ``exact_filter_threshold`` / ``acorn_max_selectivity``; and the backend's own (server:
        ``shard_number``, ``replication_factor``, ``write_consistency_factor``, ``on_disk_payload``; Edge:
        ``full_scan_threshold_kb``, ``on_disk_payload``). Without a collection: what one created now would get.
        """
        exists = self.dim() is not None
        out: dict[str, Any] = {"backend": self.backend, "exists": exists}
        if exists:
            out.update(self._stored_settings())
        else:
            plan = self.vector_plan()
            out.update(
                quantization=plan.quantization,
                vectors_on_disk=plan.on_disk,
                storage_plan=plan.reason,
                hnsw_m=self.hnsw_m,
                hnsw_ef_construct=self.hnsw_ef_construct,
                payload_indexes=dict(PAYLOAD_INDEXES),
                **self._creation_options(),
            )
        out.update(
            hnsw_ef=self.hnsw_ef,
            quantization_rescore=self.quantization_rescore,
            quantization_oversampling=self.quantization_oversampling,
            exact_filter_threshold=self.exact_filter_threshold,
            acorn_max_selectivity=self.acorn_max_selectivity,
        )
        return out

    def _creation_options(self) -> dict[str, Any]:
        """Backend options a collection created now would get (for :meth:`collection_settings` without one)."""
        return {}

    @abstractmethod
    def _stored_settings(self) -> dict[str, Any]:
        """Backend part of :meth:`collection_settings`, read from the existing collection's own config."""

    @abstractmethod
    def quantized(self) -> bool:
        """Whether the collection's vectors are quantized (searches then pass the rescoring options); False without
        a collection. Backends read it with the collection's config, not per search."""

    @abstractmethod
    def layout(self) -> str | None:
        """``named`` (image/text/words), ``legacy`` (one unnamed vector) or None (no collection yet)."""

    @abstractmethod
    def text_dim(self) -> int | None:
        """Size of the ``text`` vectors (None for a legacy layout or no collection)."""

    def text_encoder(self) -> str | None:
        """Text encoder name recorded at creation (None when unknown)."""
        return None

    def _image_using(self) -> str | None:
        """Vector name of the image vectors in queries (None for the legacy unnamed vector)."""
        return None if self.layout() == LEGACY else IMAGE

    def _require_named(self, what: str) -> None:
        if self.layout() == LEGACY:
            raise self._legacy_error(what)

    def _legacy_error(self, what: str) -> LegacyLayoutError:
        return LegacyLayoutError(
            f"{what}: collection '{self.collection}' at {self._location()} has the old single-vector layout (no text "
            f"or words vectors); run `pir reindex --collection {self.collection}` to upgrade it (keeps every stored "
            "vector and payload), or `pir ingest --force` into a new collection"
        )

    @abstractmethod
    def dim(self) -> int | None:
        """Vector size of the collection, None when it does not exist yet."""

    @abstractmethod
    def encoder(self) -> str | None:
        """Encoder name recorded at creation (None when unknown or no collection)."""

    # --------------------------------------------------------------------- writes
    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]],
        *,
        text: Sequence[np.ndarray | None] | np.ndarray | None = None,
        words: Sequence[SparseVector | None] | None = None,
    ) -> None:
        """Insert or overwrite points (same id = same point), returning once the write is applied.

        Args:
            ids: Point ids (uuids).
            vectors: ``image`` vectors, ``(n, dim)``.
            payloads: One payload per point.
            text: ``text`` vector per point (a row, or None for none), or None for no text vectors.
            words: ``words`` sparse vector per point (or None), or None for no words vectors.

        Raises:
            LegacyLayoutError: The collection has the old single-vector layout.
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
        self._require_named("upsert")
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
            raise StoreError(f"upsert into '{self.collection}': vector of id {ids_list[bad]} has NaN/inf values")
        texts = self._check_text(ids_list, text)
        words_list: list[SparseVector | None] = [None] * len(ids_list) if words is None else list(words)
        if len(words_list) != len(ids_list):
            raise StoreError(
                f"upsert into '{self.collection}': {len(ids_list)} ids but {len(words_list)} words vectors"
            )
        self._upsert(Batch(ids_list, np.ascontiguousarray(arr), [dict(p) for p in payloads], texts, words_list))

    def _check_text(
        self, ids: list[str], text: Sequence[np.ndarray | None] | np.ndarray | None
    ) -> list[np.ndarray | None]:
        if text is None:
            return [None] * len(ids)
        rows = list(text)
        if len(rows) != len(ids):
            raise StoreError(f"upsert into '{self.collection}': {len(ids)} ids but {len(rows)} text vectors")
        tdim = self.text_dim()
        out: list[np.ndarray | None] = []
        for i, r in zip(ids, rows, strict=True):
            v = None if r is None else self._checked(r, tdim, f"upsert into '{self.collection}': text vector of id {i}")
            out.append(v if v is not None and float(np.abs(v).sum()) > 0 else None)  # zero: no direction, no vector
        return out

    def _checked(self, vector: Any, want: int | None, what: str) -> np.ndarray:
        """``vector`` as a contiguous float32 row, refused unless it has ``want`` finite values."""
        arr = np.asarray(vector, dtype=np.float32).reshape(-1)
        if arr.shape[0] != want:
            raise StoreError(f"{what} is {arr.shape[0]}-d but the collection's vectors of that kind are {want}-d")
        if not np.isfinite(arr).all():
            raise StoreError(f"{what} has NaN/inf values")
        return np.ascontiguousarray(arr)

    @abstractmethod
    def _upsert(self, batch: Batch) -> None: ...

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
    def search(self, vector: np.ndarray, k: int = 10, **options: Unpack[SearchOptions]) -> list[Hit]:
        """Nearest neighbours of one query vector (of the collection's size, normalised or not; cosine), best first.

        ``options`` as in :meth:`search_batch`.

        Raises:
            StoreError: The collection does not exist or the vector has the wrong size.
        """
        arr = np.asarray(vector, dtype=np.float32)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1:
            raise StoreError(f"search in '{self.collection}': one query vector expected, got shape {arr.shape}")
        return self.search_batch(arr[None, :], k, **options)[0]

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
        """Nearest neighbours of each row of ``vectors`` (same options for all); one result list per row.

        Args:
            vectors: Query vectors ``(n, dim)``.
            k: Number of results.
            filter: Payload filter.
            min_score: Drop results scoring below this.
            group_by_patent: Keep only the best figure of each patent (still ``k`` patents when enough exist).
            exact: Exact (brute-force) search. Small filtered sets are searched exactly anyway.
            with_vectors: Return the stored ``image`` vectors in :attr:`Hit.vector`.

        Raises:
            StoreError: The collection does not exist or the vectors have the wrong size.
        """
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
        ask = self._plan(Ask(k, filter, min_score, exact, with_vectors))
        arr = np.ascontiguousarray(arr)
        if not group_by_patent:
            return self._query(arr, ask)
        return [self._grouped_by(lambda a, q=q: self._query(q[None, :], a)[0], ask) for q in arr]  # type: ignore[misc]  # q bound per row

    def hybrid_search(self, query: HybridQuery, k: int = 10, **options: Unpack[SearchOptions]) -> list[Hit]:
        """One Qdrant query over the ``image``, ``text`` and ``words`` vectors, fused inside Qdrant, best first.

        One vector alone is a plain nearest-neighbour query (scores: cosine, or BM25). Several are prefetches (each
        with the filter and ``query.prefetch`` candidates) fused by weighted RRF (``rrf``) or by a formula
        ``sum(weight * score)`` where a words score s counts as ``s / (s + WORDS_SCALE)`` (``weighted``); a point a
        prefetch did not return scores 0 there. ``options`` as in :meth:`search_batch`; ``min_score`` applies to the
        fused score.

        Raises:
            LegacyLayoutError: Words or text were asked of a collection with the old single-vector layout.
            StoreError: No query vector, a vector of the wrong size, a text weight outside [0, 1], or no collection.
        """
        legs = query.legs()
        dim = self.dim()
        if dim is None:
            raise StoreError(
                f"hybrid search: collection '{self.collection}' does not exist yet at {self._location()}; "
                "ingest creates it"
            )
        for leg in legs:
            self._check_leg(leg, dim)
        if k <= 0:
            return []
        o = options
        ask = self._plan(
            Ask(k, o.get("filter"), o.get("min_score"), o.get("exact", False), o.get("with_vectors", False))
        )

        def fetch(a: Ask) -> list[Hit]:
            prefetch = max(query.prefetch or max(4 * a.limit, 50), a.limit)
            use = legs
            if query.fusion == "zscore" and len(legs) > 1:
                use, prefetch = self._standardise(legs, query, dataclasses.replace(a, prefetch=prefetch))
            return self._hybrid(use, query, dataclasses.replace(a, prefetch=prefetch))

        return self._grouped_by(fetch, ask) if o.get("group_by_patent") else fetch(ask)

    def _standardise(self, legs: list[Leg], query: HybridQuery, ask: Ask) -> tuple[list[Leg], int]:
        """``zscore`` fusion: each leg's candidate scores (one plain query per leg, same filter, ``max(prefetch,
        ZSCORE_POOL)`` deep) give its mean, spread and floor, passed to the fused query as constants. A leg without
        candidates (no word matched) is left out; one leg left is then a plain query.

        Returns the legs and the prefetch depth for the fused query: ``ask.prefetch``, deepened (up to
        :data:`TIE_POOL_MAX`) when a leg's scores tie across that depth. BM25 gives dozens of figures the same score,
        and which of them a cut-off keeps depends on the store's internal order, so the same search on two builds of
        one corpus gave different hits; with the whole tie inside, it gives the same ones."""
        pool = dataclasses.replace(ask, limit=max(ask.prefetch, ZSCORE_POOL), min_score=None, with_vectors=False)
        out: list[Leg] = []
        depth = ask.prefetch
        for leg in legs:
            scores = np.asarray([h.score for h in self._hybrid([leg], query, pool)], dtype=np.float64)
            if not len(scores):
                continue
            depth = max(depth, self._tie_depth(leg, query, pool, scores, ask.prefetch))
            spread = float(scores.std()) if len(scores) > 1 else 0.0
            if spread <= 1e-6:  # one candidate (or all tied): it stands one unit above every other point
                below = float(scores.min()) - 1.0
                out.append(dataclasses.replace(leg, mean=below, spread=1.0, floor=below))
                continue
            out.append(dataclasses.replace(leg, mean=float(scores.mean()), spread=spread, floor=float(scores.min())))
        return (out or legs[:1]), depth

    def _tie_depth(self, leg: Leg, query: HybridQuery, pool: Ask, scores: np.ndarray, prefetch: int) -> int:
        """How deep ``leg`` must be fetched so that no tie straddles ``prefetch`` (``scores``: its best ``pool.limit``
        candidates, best first); looks deeper, up to :data:`TIE_POOL_MAX`, when the tie runs past the pool."""
        if len(scores) <= prefetch or scores[prefetch - 1] - scores[prefetch] > TIE_EPS:
            return prefetch
        cut = scores[prefetch - 1] - TIE_EPS
        need = int(np.sum(scores >= cut))
        if need == len(scores) == pool.limit and pool.limit < TIE_POOL_MAX:
            deeper = self._hybrid([leg], query, dataclasses.replace(pool, limit=TIE_POOL_MAX))
            need = sum(1 for h in deeper if h.score >= cut)
        return min(need, TIE_POOL_MAX)

    def _check_leg(self, leg: Leg, dim: int) -> None:
        """Validate one leg's query vector(s) against the collection (size, finite values, layout) in place."""
        if leg.sparse:
            self._require_named("words search")
            return
        if leg.using != IMAGE:
            self._require_named("text search")
        want = dim if leg.using == IMAGE else self.text_dim()

        def check(vector: np.ndarray) -> np.ndarray:
            return self._checked(vector, want, f"hybrid search in '{self.collection}': the {leg.using} query")

        v = leg.vector
        if isinstance(v, Recommend):
            if v.strategy not in RECOMMEND_STRATEGIES:
                raise StoreError(
                    f"unknown recommend strategy {v.strategy!r}: use one of {', '.join(RECOMMEND_STRATEGIES)}"
                )
            if not v.positives and (v.strategy == "average_vector" or not v.negatives):
                raise StoreError(f"recommend ({v.strategy}) needs at least one positive example")
            leg.vector = Recommend([check(x) for x in v.positives], [check(x) for x in v.negatives], v.strategy)
        else:
            leg.vector = check(v)  # type: ignore[arg-type]

    def recommend(
        self,
        positive: Sequence[str | np.ndarray],
        negative: Sequence[str | np.ndarray] = (),
        k: int = 10,
        *,
        strategy: str = "average_vector",
        text_weight: float = 0.0,
        fusion: str = DEFAULT_FUSION,
        filter: SearchFilter | None = None,
        min_score: float | None = None,
        group_by_patent: bool = False,
        prefetch: int | None = None,
        words: tuple[np.ndarray | None, SparseVector | None] | None = None,
    ) -> list[Hit]:
        """Relevance feedback: figures like the positive examples and unlike the negative ones, best first.

        A Qdrant recommend query (:class:`Recommend`) on the ``image`` vectors. An example is a stored point id (its
        stored vectors are used, and the point is left out of the results) or an image-space query vector. With
        ``text_weight > 0`` a second recommend query on the ``text`` vectors of the id examples (those that have one)
        is fused with it, as in :meth:`hybrid_search` (``fusion``, ``prefetch``); the filter applies to both.
        ``words``: the query words' ``(text, words)`` vectors (see :func:`pir.search.service.text_query`); they are
        the words side then, instead of the examples' text vectors.

        Raises:
            KeyError: An id is not in the collection.
            StoreError: No positive example (``average_vector``) or no example at all, a bad vector, or no collection.
        """
        pos_img, pos_text, pos_ids = self._examples(positive)
        neg_img, neg_text, neg_ids = self._examples(negative)
        image = Recommend(pos_img, neg_img, strategy)
        query = HybridQuery(image=image, fusion=fusion, text_weight=text_weight, prefetch=prefetch)
        if words is not None:
            query.text, query.words = words
        elif text_weight > 0 and (pos_text or (neg_text and strategy != "average_vector")):
            query.text = Recommend(pos_text, neg_text, strategy)
        flt = dataclasses.replace(filter) if filter is not None else SearchFilter()
        flt.exclude_ids = [*(flt.exclude_ids or []), *pos_ids, *neg_ids]  # the examples themselves are not results
        return self.hybrid_search(query, k, filter=flt, min_score=min_score, group_by_patent=group_by_patent)

    def _examples(self, items: Sequence[str | np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
        """Image vectors, text vectors (of the stored examples that have one) and ids of recommend examples."""
        ids = [normalize_id(x) for x in items if isinstance(x, str | uuid.UUID)]
        image = [np.asarray(x, dtype=np.float32) for x in items if not isinstance(x, str | uuid.UUID)]
        found = {p.id: p for p in self.retrieve(ids, with_vectors=True)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"point {missing[0]} is not in collection {self.collection!r}")
        points = [found[i] for i in dict.fromkeys(ids)]
        image += [p.vector for p in points if p.vector is not None]
        return image, [p.text for p in points if p.text is not None], list(found)

    @abstractmethod
    def _hybrid(self, legs: list[Leg], query: HybridQuery, ask: Ask) -> list[Hit]:
        """Backend query: one leg = nearest neighbours on it; several = prefetches (each filtered) + fusion."""

    @staticmethod
    def _grouped_by(fetch: Callable[[Ask], list[Hit]], ask: Ask) -> list[Hit]:
        """Best hit per patent: over-fetch, de-duplicate, and fetch more until ``k`` patents or no more points."""
        k = ask.limit
        limit = k * _GROUP_OVERFETCH
        while True:
            hits = fetch(dataclasses.replace(ask, limit=limit))
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

    def plan_for(self, filter: SearchFilter | None = None, *, exact: bool = False) -> str:
        """How a search with ``filter`` runs: ``exact``, ``acorn`` or ``hnsw`` (the filter planner of both backends).

        From a cheap estimate of the filter's match count (the payload indexes' cardinality, ``count(exact=False)``):

        - ``exact`` when asked, or when the filter matches fewer than ``exact_filter_threshold`` points: an exact scan
          of the matching points only (through the payload index) is cheap and has recall 1.0;
        - ``acorn`` when it matches more but keeps less than ``acorn_max_selectivity`` of the points: HNSW with such
          a filter loses recall (0.47-0.83 recall@10 for 3-24% filters at 1M in ../shared/qdrant-edge-and-celery.md)
          because the graph's links between matching points are too few; ACORN also follows two-hop links;
        - ``hnsw`` without a filter, or when the filter keeps most points (the graph stays connected).

        Setting ``exact_filter_threshold = 0`` and ``acorn_max_selectivity = 0`` turns the planner off (always
        ``hnsw`` unless asked ``exact``). Measured at 100k points (``tests/test_collection_settings.py``, slow tier):
        recall@10 at ef 256 of 0.83 (14% filter) and 0.88 (8% two-field filter) with HNSW, 1.0 with exact and ACORN.
        An exact scan scores the original vectors (a quantized collection's originals may be on disk); ACORN scores
        the quantized copy and rescores. The shared notes found an exact scan cheaper than ACORN in RAM at every
        measured size (1.7 vs 10 ms at 100k, 39 vs 60 ms for 143k matches at 1M).
        """
        flt = None if filter is None or filter.is_empty() else filter
        if exact:
            return "exact"
        if flt is None or self.dim() is None:
            return "hnsw"
        matches = self._count(flt, exact=False)
        if matches < self.exact_filter_threshold:
            return "exact"
        total = self._count(None, exact=False)
        if total > 0 and matches / total < self.acorn_max_selectivity:
            return "acorn"
        return "hnsw"

    def _plan(self, ask: Ask) -> Ask:
        """``ask`` with its plan (:meth:`plan_for`, recorded in :attr:`last_plan`); an empty filter is none."""
        flt = None if ask.flt is None or ask.flt.is_empty() else ask.flt
        plan = self.plan_for(flt, exact=ask.exact)
        self.last_plan = plan
        return dataclasses.replace(ask, flt=flt, exact=plan == "exact", plan=plan)

    @abstractmethod
    def _count(self, flt: SearchFilter | None, *, exact: bool) -> int:
        """Number of points matching a filter (approximate unless ``exact``); the collection exists."""

    @abstractmethod
    def _query(self, vectors: np.ndarray, ask: Ask) -> list[list[Hit]]:
        """Backend kNN on the image vectors for each row, best first."""

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[StoredPoint]:
        """Stored points by id, in the order asked; unknown ids are left out."""
        ids_list = [normalize_id(i) for i in ids]
        if not ids_list or self.dim() is None:
            return []
        found = {p.id: p for p in self._retrieve(ids_list, with_vectors)}
        return [found[i] for i in dict.fromkeys(ids_list) if i in found]

    @abstractmethod
    def _retrieve(self, ids: list[str], with_vectors: bool) -> list[StoredPoint]: ...

    def count(self, filter: SearchFilter | None = None) -> int:
        """Exact number of points (matching ``filter``); 0 when the collection does not exist."""
        if self.dim() is None:
            return 0
        return self._count(None if filter is None or filter.is_empty() else filter, exact=True)

    def scroll(
        self, *, batch_size: int = 256, with_vectors: bool = False, filter: SearchFilter | None = None
    ) -> Iterator[StoredPoint]:
        """Iterate over all points (matching ``filter``), fetched ``batch_size`` at a time, in id order."""
        if self.dim() is None:
            return
        flt = None if filter is None or filter.is_empty() else filter
        offset: Any = None
        while True:
            records, offset = self._scroll_page(offset, batch_size, flt, with_vectors)
            for r in records:
                yield to_stored_point(r, with_vectors)
            if offset is None or not records:
                return

    @abstractmethod
    def _scroll_page(
        self, offset: Any, limit: int, flt: SearchFilter | None, with_vectors: bool
    ) -> tuple[list[Any], Any]:
        """One page of backend records from ``offset`` (None = the start) and the next offset (None = the end)."""

    def info(self) -> dict[str, Any]:
        """``backend``, ``collection``, ``location`` (path or url), ``dim``, ``count``, ``encoder`` and extras."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "collection": self.collection,
            "location": self._location(),
            "dim": self.dim(),
            "count": self.count(),
            "encoder": self.encoder(),
            "distance": "cosine",
            "layout": self.layout(),
            "text_dim": self.text_dim(),
            "text_encoder": self.text_encoder(),
        }
        if out["dim"] is not None:
            out.update(self._index_info(), hnsw_ef=self.hnsw_ef, exact_filter_threshold=self.exact_filter_threshold)
        return out

    @abstractmethod
    def _index_info(self) -> dict[str, Any]:
        """Backend extras of :meth:`info` (segments, indexed vectors, payload indexes); the collection exists."""

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

    def _check_existing(self, dim: int, text_dim: int, encoder: str | None) -> bool:
        """Check an existing collection against what :meth:`ensure_collection` asks; True: record ``encoder``.

        Raises:
            LegacyLayoutError: The old single-vector layout.
            StoreError: Another image or text vector size, or another encoder (nothing is changed).
        """
        self._require_named("ingest")
        where = f"collection '{self.collection}' at {self._location()}"
        stored_text = self.text_dim()
        if stored_text is not None and stored_text != int(text_dim):
            raise StoreError(
                f"{where} stores {stored_text}-d text vectors, but {text_dim}-d were requested (another text "
                "encoder?). Nothing was changed."
            )
        stored = self.dim()
        if stored != int(dim):
            raise StoreError(
                f"{where} stores {stored}-d vectors, but {dim}-d were requested (another encoder?). Nothing was "
                "changed. Use another collection (--collection / PIR_QDRANT__COLLECTION) or another data dir, or "
                "delete the old collection yourself."
            )
        known = self.encoder()
        if encoder and known and known != encoder:
            raise StoreError(
                f"{where} was built with encoder '{known}', not '{encoder}'; vectors of different encoders cannot be "
                "compared. Nothing was changed. Use another collection (--collection / PIR_QDRANT__COLLECTION) or "
                "another data dir."
            )
        return bool(encoder and not known)

    @abstractmethod
    def _location(self) -> str: ...


def index_settings(settings: Any) -> dict[str, Any]:
    """The index keywords of a backend (:data:`INDEX_OPTIONS`) from the settings' ``qdrant`` section."""
    return {k: getattr(settings.qdrant, k) for k in INDEX_OPTIONS}


def validate_collection_name(name: str) -> str:
    """Collection names are also directory names: letters, digits, ``_ . -``; no path separators."""
    if not isinstance(name, str) or not _COLLECTION_RE.match(name) or name in {".", ".."}:
        raise StoreError(f"invalid collection name {name!r}: use letters, digits, '_', '.', '-' (max 128 chars)")
    return name
