"""Query side: embed a query (one or several views, or words) and run filtered kNN against the store."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pir.config import Settings
from pir.ingest.schema import point_id

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.search.store import Hit, SearchFilter, VectorStore


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
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResponse:
    """Results plus where the time went."""

    results: list[SearchResult]
    encode_ms: float
    search_ms: float
    query: dict[str, Any]

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
    mine = f"{encoder.name}@{encoder.version}"
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
    from pir.ingest.readers import normalize_patent_id, normalize_viewpoint
    from pir.search.store import SearchFilter

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
    k: int = 10,
    filter: SearchFilter | None = None,
    min_score: float | None = None,
    group_by_patent: bool = False,
) -> SearchResponse:
    """Search with one drawing, or several views of one object fused into one query.

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
    return _respond(q, t0, query, store, k=k, filter=filter, min_score=min_score, group_by_patent=group_by_patent)


def search_text(
    text: str,
    settings: Settings,
    *,
    encoder: ImageEncoder,
    store: VectorStore,
    k: int = 10,
    filter: SearchFilter | None = None,
    min_score: float | None = None,
    group_by_patent: bool = False,
) -> SearchResponse:
    """Search drawings by words (needs an encoder trained into the text space; raises ZeroShotTextError otherwise)."""
    check_encoder(store, encoder)
    t0 = time.perf_counter()
    q = encoder.encode_text([text])[0]
    return _respond(
        q, t0, {"text": text}, store, k=k, filter=filter, min_score=min_score, group_by_patent=group_by_patent
    )


def search_like(
    key: str,
    store: VectorStore,
    *,
    k: int = 10,
    filter: SearchFilter | None = None,
    min_score: float | None = None,
    group_by_patent: bool = False,
) -> SearchResponse:
    """ "More like this": query with a stored figure (``PATENT/FIGURE``) by its stored vector; it is not a result.

    Raises:
        ValueError: ``key`` is not ``PATENT/FIGURE``.
        KeyError: the figure is not in the store.
    """
    if "/" not in key:
        raise ValueError(f"{key!r}: expected PATENT_ID/FIGURE_ID, e.g. USD0907292/D00001")
    patent, figure = key.split("/", 1)
    from pir.ingest.readers import normalize_patent_id

    try:
        patent = normalize_patent_id(patent)
    except ValueError:
        pass
    t0 = time.perf_counter()
    pts = store.retrieve([point_id(patent, figure)], with_vectors=True)
    if not pts or pts[0].vector is None:
        raise KeyError(f"figure {key} is not in collection {store.collection!r}")
    from pir.search.store import SearchFilter

    flt = dataclasses.replace(filter) if filter is not None else SearchFilter()
    flt.exclude_ids = [*(flt.exclude_ids or []), pts[0].id]  # the figure itself is not a result
    return _respond(
        pts[0].vector, t0, {"like": key}, store, k=k, filter=flt, min_score=min_score, group_by_patent=group_by_patent
    )
