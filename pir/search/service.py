"""Query side: embed a query (one or several views, words, or both) and run one filtered Qdrant query.

:func:`search_hybrid` is the one entry point (image only, words only, both fused inside Qdrant, "more like this");
:func:`search_images`, :func:`search_text` and :func:`search_like` are thin over it or the plain kNN.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
from PIL import Image

from pir.core.config import Settings, get_settings
from pir.ingest.normalize import normalize_patent_id, normalize_viewpoint
from pir.ingest.schema import point_id
from pir.search.points import normalize_id
from pir.search.query import HybridQuery, SearchFilter, StoreError
from pir.search.request import DEFAULT_FUSION, DEFAULT_TEXT_WEIGHT
from pir.search.words import SparseVector, figure_words, get_text_encoder, normalize, query_words, words_query_vector

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.encoder.text import TextEncoder
    from pir.search.query import Hit, SearchFilter, StoredPoint
    from pir.search.store import VectorStore


class QueryOptions(TypedDict, total=False):
    """The result options every search function takes (as in :meth:`pir.search.store.VectorStore.search_batch`)."""

    k: int
    filter: SearchFilter | None
    min_score: float | None
    group_by_patent: bool


@dataclass
class SearchResult:
    """One ranked prior-art figure."""

    rank: int
    score: float
    patent_id: str
    figure_id: str
    title: str | None
    class_label: str | None
    classes: list[str]
    viewpoint: str | None
    year: int | None
    image_path: str | None
    descriptions: list[str] = field(default_factory=list)
    id: str = ""
    #: The figure's search words (what its ``text`` and ``words`` vectors were built from; see
    #: :func:`pir.search.words.figure_words`): the patent's own words, alias phrases, what the object is.
    words: list[str] = field(default_factory=list)

    @classmethod
    def from_hit(cls, rank: int, hit: Hit) -> SearchResult:
        p = hit.payload
        return cls(
            rank=rank,
            score=float(hit.score),
            patent_id=str(p.get("patent_id", "")),
            figure_id=str(p.get("figure_id", "")),
            title=p.get("title"),
            class_label=p.get("class_label"),
            classes=list(p.get("classes") or []),
            viewpoint=p.get("viewpoint"),
            year=p.get("year"),
            image_path=p.get("image_path"),
            descriptions=list(p.get("descriptions") or []),
            id=hit.id,
            words=figure_words(p),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResponse:
    """Results plus where the time went; with relevance feedback, the marked figures (``marks``: the request's id,
    ``pos`` or ``neg``, the point id and the figure's patent, figure and title), in marking order."""

    results: list[SearchResult]
    encode_ms: float
    search_ms: float
    query: dict[str, Any]
    marks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "encode_ms": self.encode_ms,
            "search_ms": self.search_ms,
            "results": [r.to_dict() for r in self.results],
        }


class EncoderMismatchError(RuntimeError):
    """The query encoder is not the one the collection was built with (their embedding spaces differ)."""


def check_encoder(store: VectorStore, encoder: ImageEncoder) -> None:
    """Refuse to query a collection with another encoder than the one it was built with.

    A collection records ``name@version`` of its encoder (see :func:`pir.pipeline.encoder_id`), so a retrained
    encoder that kept its name is refused too.
    """
    stored = store.encoder()
    mine = encoder.id
    if stored and stored != mine:
        raise EncoderMismatchError(
            f"collection {store.collection!r} was built with encoder {stored!r} but the query uses {mine!r}; pass the "
            "same --encoder as at ingest (or another --collection)"
        )


def build_filter(
    *,
    classes: Sequence[str] = (),
    year_from: int | None = None,
    year_to: int | None = None,
    viewpoints: Sequence[str] = (),
    exclude_patents: Sequence[str] = (),
    patent_ids: Sequence[str] = (),
) -> SearchFilter:
    """A :class:`SearchFilter` from what a user types, normalised like the stored payload.

    ``D28/47`` and ``d28-47`` match the stored ``D28-47``; ``D907,293`` / ``US D907293 S`` match ``USD0907293``;
    ``Perspective`` / ``left side elevational`` match the stored viewpoint vocabulary.
    """

    def variants(values: Sequence[str], norm: Any) -> list[str] | None:
        out: list[str] = []
        for v in values:
            for x in (v.strip(), norm(v)):
                if x and x not in out:
                    out.append(x)
        return out or None

    def norm_class(v: str) -> str:
        v = v.strip()
        if m := re.fullmatch(r"(D?\d+)\s*[/.\- ]\s*(\d+)", v, re.I):  # USPC D28/47, Locarno 26.05 -> D28-47, 26-05
            return f"{m.group(1).upper()}-{m.group(2)}"
        if m := re.fullmatch(r"([A-H]\d{2}[A-Z])\s*(\d+\s*/\s*\d+)", v, re.I):  # CPC a47g19/22 -> A47G 19/22
            return m.group(1).upper() + " " + "".join(m.group(2).split())
        if re.fullmatch(r"D?\d+", v, re.I):  # a main class: d26 -> D26
            return v.upper()
        return v.lower()  # an object class name: Lamp -> lamp

    def norm_patent(v: str) -> str:
        try:
            return normalize_patent_id(v)
        except ValueError:
            return v.strip()

    return SearchFilter(
        classes=variants(classes, norm_class),
        year_from=year_from,
        year_to=year_to,
        viewpoints=variants(viewpoints, lambda v: normalize_viewpoint(v) or v.strip().lower()),
        exclude_patents=variants(exclude_patents, norm_patent),
        patent_ids=variants(patent_ids, norm_patent),
    )


def fuse(vectors: np.ndarray) -> np.ndarray:
    """Fuse several views of one object into one query: the normalised mean of their embeddings."""
    v = np.asarray(vectors, dtype=np.float32).reshape(-1, vectors.shape[-1]).mean(axis=0)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def search_vector(
    vector: np.ndarray,
    store: VectorStore,
    *,
    k: int = 10,
    filter: SearchFilter | None = None,
    min_score: float | None = None,
    group_by_patent: bool = False,
) -> list[SearchResult]:
    """kNN for a ready query vector."""
    hits = store.search(
        np.asarray(vector, dtype=np.float32), k, filter=filter, min_score=min_score, group_by_patent=group_by_patent
    )
    return [SearchResult.from_hit(i + 1, h) for i, h in enumerate(hits)]


def _respond(q: np.ndarray, t0: float, query: dict[str, Any], store: VectorStore, **kw: Any) -> SearchResponse:
    """Run the kNN for an encoded query and time both halves (``t0`` = when encoding started)."""
    t1 = time.perf_counter()
    results = search_vector(q, store, **kw)
    t2 = time.perf_counter()
    return SearchResponse(results, (t1 - t0) * 1e3, (t2 - t1) * 1e3, query)


def search_images(
    images: Sequence[str | Path | Image.Image],
    settings: Settings,
    *,
    encoder: ImageEncoder,
    store: VectorStore,
    **options: Unpack[QueryOptions],
) -> SearchResponse:
    """Search with one drawing, or several views of one object fused into one query (``options``: k, filter, ...).

    Example:
        >>> resp = search_images(["front.png", "side.png"], settings, encoder=enc, store=store, k=10)
        >>> [(r.patent_id, r.figure_id, round(r.score, 3)) for r in resp.results]
    """
    if not images:
        raise ValueError("no query image given")
    check_encoder(store, encoder)
    t0 = time.perf_counter()
    q = fuse(encoder.encode_images(list(images), batch_size=settings.encoder.batch_size))
    query = {"images": [str(i) if not isinstance(i, Image.Image) else "<image>" for i in images]}
    return _respond(q, t0, query, store, **options)


def search_text(
    text: str,
    settings: Settings,
    *,
    encoder: ImageEncoder | None = None,
    store: VectorStore,
    text_encoder: TextEncoder | None = None,
    **options: Unpack[QueryOptions],
) -> SearchResponse:
    """Search drawings by words: the figures' ``text`` and ``words`` vectors (works with any image encoder)."""
    return search_hybrid(store, settings, text=text, encoder=encoder, text_encoder=text_encoder, **options)


def search_like(
    key: str,
    store: VectorStore,
    *,
    text_weight: float = DEFAULT_TEXT_WEIGHT,
    fusion: str = DEFAULT_FUSION,
    **options: Unpack[QueryOptions],
) -> SearchResponse:
    """ "More like this": query with a stored figure (``PATENT/FIGURE``): its stored image, text and words vectors.

    The figure itself is not a result. ``text_weight=0`` is the image vector alone.

    Raises:
        ValueError: ``key`` is not ``PATENT/FIGURE``.
        KeyError: the figure is not in the store.
    """
    return search_hybrid(store, None, like=key, text_weight=text_weight, fusion=fusion, **options)


@dataclass
class TextQuery:
    """The two text-side query vectors of the user's words, and the aliases that were added."""

    text: np.ndarray
    words: SparseVector | None
    aliases: list[str]
    expanded: str


def text_query(text: str, text_encoder: TextEncoder, *, expand: bool = True) -> TextQuery:
    """Query vectors of words: the text encoder's embedding (``text``) and the alias-expanded BM25 query (``words``).

    The dense vector embeds the words as typed (the sentence encoder knows synonyms); the sparse one also carries
    the enrichment aliases ("lamp" -> "luminaire", "lighting fixture") so they match exactly.
    """
    expanded, aliases = query_words(text) if expand else (text, [])
    dense = normalize(text_encoder.encode([text])[0])
    return TextQuery(dense, words_query_vector(expanded), aliases, expanded)


def _store_text_query(
    store: VectorStore, text: str, text_encoder: TextEncoder | None, settings: Settings | None, expand: bool = True
) -> TextQuery:
    """:func:`text_query` with the store's text encoder (checked; loaded once per process when not given)."""
    if text_encoder is None:
        text_encoder = get_text_encoder(settings or _default_settings())
    _check_text_encoder(store, text_encoder)
    return text_query(text, text_encoder, expand=expand)


def _check_text_encoder(store: VectorStore, text_encoder: TextEncoder) -> None:
    stored = store.text_encoder()
    if stored and stored != text_encoder.name:
        raise EncoderMismatchError(
            f"collection {store.collection!r} holds text vectors of {stored!r} but the query uses "
            f"{text_encoder.name!r}; set the same text model as at ingest (settings text.model / PIR_TEXT__MODEL)"
        )


def _cross_modal(encoder: ImageEncoder | None, image: np.ndarray, store: VectorStore) -> np.ndarray | None:
    """The image query in the text space, for a text-aligned encoder whose text model built the store's text vectors."""
    if encoder is None or not encoder.text_aligned:
        return None
    try:
        from pir.encoder.text import _resolve_spec  # lazy: start-up

        name = _resolve_spec(str(encoder.config.text_model))[1]
    except (ValueError, AttributeError):
        return None
    stored = store.text_encoder()
    v = encoder.text_space(np.asarray(image, dtype=np.float32)[None, :])[0]
    if (stored and stored != name) or v.shape[0] != store.text_dim():
        return None
    return v


def _default_settings() -> Settings:
    return get_settings()


def search_hybrid(
    store: VectorStore,
    settings: Settings | None = None,
    *,
    images: Sequence[str | Path | Image.Image] = (),
    image_vector: np.ndarray | None = None,
    text: str | None = None,
    like: str | None = None,
    encoder: ImageEncoder | None = None,
    text_encoder: TextEncoder | None = None,
    text_weight: float = DEFAULT_TEXT_WEIGHT,
    fusion: str = DEFAULT_FUSION,
    expand: bool = True,
    k: int = 10,
    filter: SearchFilter | None = None,
    min_score: float | None = None,
    group_by_patent: bool = False,
    prefetch: int | None = None,
) -> SearchResponse:
    """Search by drawing(s), by words, or both, in ONE Qdrant query fused inside Qdrant.

    - image only (``images`` or ``image_vector``): nearest ``image`` vectors (cosine), as :func:`search_images`;
    - words only (``text``): prefetches on ``text`` (dense) and ``words`` (BM25, alias-expanded), fused;
    - both: prefetches ``image`` and, with a text-aligned encoder, the image on ``text`` (cross-modal), plus the two
      words prefetches, fused by ``fusion`` (``rrf`` or ``weighted``) with ``text_weight`` as the words' share;
    - ``like="PATENT/FIGURE"``: that stored figure's ``image``, ``text`` and ``words`` vectors (itself excluded);
      ``text`` then replaces its words.

    ``filter`` applies in every prefetch. Only an image query needs ``encoder`` (it must be the collection's);
    words need only the frozen text encoder (``text_encoder``, or ``settings.text.model`` loaded once per process).

    Args:
        store: The open store.
        settings: Settings (text model, batch size); defaults to :func:`pir.core.config.get_settings`.
        images: Query drawings (paths or PIL images), several views fused into one query.
        image_vector: A ready image query vector (instead of ``images``).
        text: Query words.
        like: ``PATENT/FIGURE`` of a stored figure.
        encoder: The image encoder (images, cross-modal prefetch).
        text_encoder: A loaded text encoder (reuse it across many queries).
        text_weight: Words' share in [0, 1] when both sides are given (0 = image only, 1 = words only).
        fusion: ``rrf`` (weighted reciprocal rank fusion) or ``weighted`` (weighted sum of scores).
        expand: Add the enrichment aliases to the words.
        k, filter, min_score, group_by_patent: As in :meth:`pir.search.store.VectorStore.search`.
        prefetch: Candidates per prefetch (default ``max(4 * k, 50)``).

    Raises:
        ValueError: No query, or a malformed ``like`` key.
        KeyError: The ``like`` figure is not in the store.
        EncoderMismatchError: The encoder (or text encoder) is not the collection's.
        pir.search.store.LegacyLayoutError: Words asked of an old single-vector collection (``pir reindex``).
    """
    if settings is None and (images or (text and text_encoder is None)):
        settings = _default_settings()
    t0 = time.perf_counter()
    query: dict[str, Any] = {"fusion": fusion, "text_weight": text_weight}
    img: np.ndarray | None = None
    hq = HybridQuery(fusion=fusion, text_weight=text_weight, prefetch=prefetch)
    if like:
        pt = _like_point(like, store)
        query["like"] = like
        img, hq.text, hq.words = pt.vector, pt.text, pt.words
        filter = _excluding(filter, [pt.id])  # the figure itself is not a result
    elif images or image_vector is not None:
        img = _image_query(store, images, image_vector, encoder, settings, query)
    if text and text.strip():
        tq = _store_text_query(store, text, text_encoder, settings, expand)
        hq.text, hq.words = tq.text, tq.words
        query.update(text=text, aliases=tq.aliases)
    if img is None and hq.text is None and hq.words is None:
        raise ValueError("no query: give query images, words (text), or a stored figure (like)")
    hq.image = img
    if img is not None and (hq.text is not None or hq.words is not None) and not like:
        hq.image_text = _cross_modal(encoder, img, store)
    query["mode"] = "+".join(
        m for m, on in (("image", img is not None), ("text", hq.text is not None or hq.words is not None)) if on
    )
    t1 = time.perf_counter()
    hits = store.hybrid_search(hq, k, filter=filter, min_score=min_score, group_by_patent=group_by_patent)
    t2 = time.perf_counter()
    results = [SearchResult.from_hit(i + 1, h) for i, h in enumerate(hits)]
    return SearchResponse(results, (t1 - t0) * 1e3, (t2 - t1) * 1e3, query)


def _excluding(filter: SearchFilter | None, ids: Sequence[str]) -> SearchFilter:
    """A copy of ``filter`` that also leaves out the points ``ids``."""
    flt = dataclasses.replace(filter) if filter is not None else SearchFilter()
    flt.exclude_ids = [*(flt.exclude_ids or []), *ids]
    return flt


def _image_query(
    store: VectorStore,
    images: Sequence[str | Path | Image.Image],
    image_vector: np.ndarray | None,
    encoder: ImageEncoder | None,
    settings: Settings | None,
    query: dict[str, Any],
) -> np.ndarray:
    """The image query vector: the drawings embedded and fused, or the given vector (normalised); noted in ``query``."""
    if encoder is not None:
        check_encoder(store, encoder)
    if not images:
        query["images"] = ["<vector>"]
        return fuse(np.asarray(image_vector, dtype=np.float32))
    if encoder is None:
        raise ValueError("an image query needs the image encoder (encoder=...)")
    assert settings is not None
    query["images"] = [str(i) if not isinstance(i, Image.Image) else "<image>" for i in images]
    return fuse(encoder.encode_images(list(images), batch_size=settings.encoder.batch_size))


def search_recommend(
    store: VectorStore,
    positive_ids: Sequence[str],
    negative_ids: Sequence[str] = (),
    *,
    query_vector: np.ndarray | None = None,
    k: int = 10,
    filter: SearchFilter | None = None,
    min_score: float | None = None,
    group_by_patent: bool = False,
    strategy: str = "average_vector",
    text_weight: float | None = None,
    fusion: str = DEFAULT_FUSION,
    text: str | None = None,
    text_encoder: TextEncoder | None = None,
    settings: Settings | None = None,
) -> SearchResponse:
    """Relevance feedback ("mark relevant / not relevant and search again"): Qdrant's recommend query.

    Figures like the ``positive_ids`` and unlike the ``negative_ids`` (point ids, :attr:`SearchResult.id`), by their
    stored ``image`` vectors; the examples themselves are not results. ``query_vector``, the current image query
    (several rows are fused), counts as one more positive. ``strategy``: ``average_vector`` (search
    ``avg(pos) + avg(pos) - avg(neg)``; needs a positive), ``best_score`` or ``sum_scores`` (see
    :class:`pir.search.store.Recommend`). ``text``: the query words; they are then the words side (``text`` +
    ``words`` vectors, alias-expanded, as in :func:`search_hybrid`) and ``text_weight`` is their share
    (:data:`~pir.search.request.DEFAULT_TEXT_WEIGHT` when None). Without words, ``text_weight > 0`` fuses a recommend
    query on the examples' ``text`` vectors (None = 0). ``fusion`` as in :func:`search_hybrid`; ``filter`` applies to
    every part.

    Example:
        >>> resp = search_recommend(store, [hit_a.id], [hit_b.id], query_vector=q, k=10)

    Raises:
        KeyError: An id is not in the store.
        ValueError: No example to go by (no positive for ``average_vector``, none at all otherwise).
    """
    positive: list[str | np.ndarray] = [str(i) for i in positive_ids]
    if query_vector is not None:
        positive.append(fuse(np.asarray(query_vector, dtype=np.float32)))
    if not positive and (strategy == "average_vector" or not negative_ids):
        raise ValueError(f"relevance feedback ({strategy}) needs a relevant figure or the query")
    query: dict[str, Any] = {
        "mode": "recommend",
        "strategy": strategy,
        "positive": [str(i) for i in positive_ids],
        "negative": [str(i) for i in negative_ids],
        "with_query": query_vector is not None,
        "text_weight": text_weight or 0.0,
        "fusion": fusion,
    }
    t0 = time.perf_counter()
    words = None
    if text and text.strip():
        tq = _store_text_query(store, text, text_encoder, settings)
        words, text_weight = (tq.text, tq.words), DEFAULT_TEXT_WEIGHT if text_weight is None else text_weight
        query.update(text=text, aliases=tq.aliases, text_weight=text_weight)
    elif text_weight is None:
        text_weight = 0.0
    t1 = time.perf_counter()
    hits = store.recommend(
        positive,
        [str(i) for i in negative_ids],
        k,
        strategy=strategy,
        text_weight=text_weight,
        fusion=fusion,
        filter=filter,
        min_score=min_score,
        group_by_patent=group_by_patent,
        words=words,
    )
    results = [SearchResult.from_hit(i + 1, h) for i, h in enumerate(hits)]
    return SearchResponse(results, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3, query)


def figure_point_id(figure: str) -> str:
    """The point id of a figure given as a point id (uuid) or ``PATENT/FIGURE`` (the patent id normalised, so
    ``D907292/D00001`` and ``USD0907292/D00001`` are the same figure).

    Raises:
        ValueError: neither form.
    """
    figure = figure.strip()
    if "/" in figure:
        patent, fig = figure.split("/", 1)
        try:
            patent = normalize_patent_id(patent)
        except ValueError:
            pass
        return point_id(patent, fig)
    try:
        return normalize_id(figure)
    except StoreError:
        raise ValueError(
            f"{figure[:80]!r}: expected a figure id or PATENT_ID/FIGURE_ID, e.g. USD0907292/D00001"
        ) from None


def _like_point(key: str, store: VectorStore) -> StoredPoint:
    """The stored figure ``PATENT/FIGURE`` (or a point id) with its vectors."""
    pts = store.retrieve([figure_point_id(key)], with_vectors=True)
    if not pts or pts[0].vector is None:
        raise KeyError(f"figure {key} is not in collection {store.collection!r}")
    return pts[0]
