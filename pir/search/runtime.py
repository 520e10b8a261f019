"""One runtime for searches: :class:`SearchRuntime` executes a :class:`~pir.search.request.SearchRequest`.

Built once from :class:`~pir.core.config.Settings` (the CLI per command, ``pir serve`` per process, the bench per run):
the store (serialised by a lock when the backend is not thread-safe), the image encoder (loaded on the first image
query, once) and the frozen text encoder. Every front end calls :meth:`SearchRuntime.execute`; relevance feedback,
"more like this", patent-id normalisation of figure keys and the query drawings' crops all live here, not in a
front end.

Example:
    >>> with SearchRuntime.open(settings) as rt:
    ...     resp = rt.execute(SearchRequest(drawings=["front.png"], words="lamp", k=10))
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from pir.core.config import Settings
from pir.search.query import GATE_GAIN, GATE_Z, RRF_K, WORDS_SCALE, WORDS_SHARE, SearchFilter, StoredPoint, StoreError
from pir.search.request import SearchRequest
from pir.search.service import (
    SearchResponse,
    build_filter,
    figure_point_id,
    fuse,
    search_hybrid,
    search_recommend,
)
from pir.search.store import VectorStore
from pir.search.words import get_text_encoder

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.encoder.text import TextEncoder

#: Longest side a query drawing is kept at while searching (the encoder sees ~224 px).
WORK_SIDE = 2048

#: Rocchio weights (query, centroid of the relevant figures, centroid of the not-relevant ones): the textbook values
#: (Salton & Buckley 1990; Manning et al., *Introduction to Information Retrieval*, 9.1.1), not tuned on any split.
#: All vectors have unit length and ``BETA + GAMMA < ALPHA``, so however many figures are marked, the query keeps the
#: larger share of the new query: the marks steer it, they cannot outvote it.
ROCCHIO = (1.0, 0.75, 0.15)


def rocchio(
    query: np.ndarray | None,
    relevant: np.ndarray | None,
    not_relevant: np.ndarray | None,
    weights: tuple[float, float, float] = ROCCHIO,
) -> np.ndarray | None:
    """The Rocchio query ``ALPHA * q + BETA * mean(relevant) - GAMMA * mean(not relevant)``, L2-normalised.

    Without a query (feedback on marked figures alone) the relevant centroid is the anchor (weight ``ALPHA``); with
    neither, None. Rows of ``relevant`` / ``not_relevant`` are unit vectors (the stored ``image`` vectors).
    """
    alpha, beta, gamma = weights
    have_pos = relevant is not None and len(relevant) > 0
    if query is None and not have_pos:
        return None
    pos = _unit(np.asarray(relevant, dtype=np.float32).mean(axis=0)) if have_pos else None
    v: np.ndarray
    if query is not None:
        v = alpha * _unit(np.asarray(query, dtype=np.float32).reshape(-1))
        if pos is not None:
            v = v + beta * pos
    else:
        assert pos is not None
        v = alpha * pos
    if not_relevant is not None and len(not_relevant) > 0:
        v = v - gamma * np.asarray(not_relevant, dtype=np.float32).mean(axis=0)
    return _unit(v).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class LockedStore:
    """A :class:`VectorStore` whose method calls are serialised by one lock (for backends that are not thread-safe,
    e.g. the embedded Qdrant Edge store)."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr
        lock = self._lock

        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                out = attr(*args, **kwargs)
                return list(out) if name == "scroll" else out  # drain iterators inside the lock

        return locked


def guarded(store: VectorStore) -> VectorStore:
    """``store`` itself when its backend is thread-safe, else wrapped in a :class:`LockedStore`."""
    if isinstance(store, LockedStore) or store.thread_safe:
        return store
    return LockedStore(store)  # type: ignore[return-value]  # same interface, serialised


def load_query_image(path: str | Path, crop: tuple[float, float, float, float] | None = None) -> Image.Image:
    """A query drawing from a file, EXIF-rotated, cropped to ``crop`` (fractions) and at most :data:`WORK_SIDE`.

    Raises:
        pir.ingest.images.ImageLoadError: the file cannot be decoded.
    """
    from pir.ingest.images import ImageLoadError  # lazy: start-up (PIL decoders, only for file drawings)

    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)
            im.load()
            img = ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(str(path), f"cannot decode ({e})") from None
    if crop:
        w, h = img.size
        x0, y0, x1, y1 = crop
        img = img.crop((round(x0 * w), round(y0 * h), max(round(x1 * w), 1), max(round(y1 * h), 1)))
    if max(img.size) > WORK_SIDE:
        img = img.convert("L") if img.mode in ("1", "P") else img
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


class SearchRuntime:
    """The store, the encoders and the rules of a search, built once; :meth:`execute` runs a request.

    Args:
        settings: The settings tree.
        store: An open store (default: :func:`pir.search.open_store`, closed by :meth:`close`).
        encoder: A loaded image encoder (default: ``settings.encoder``, loaded on the first image query).
        text_encoder: A loaded text encoder (default: ``settings.text.model``, loaded on the first words query).
        eager: Load the encoders now (a server), not on first use (a CLI command).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: VectorStore | None = None,
        encoder: ImageEncoder | None = None,
        text_encoder: TextEncoder | None = None,
        eager: bool = False,
    ) -> None:
        from pir.search.factory import open_store  # lazy: cycle: the factory imports the backends

        self.settings = settings
        self._own_store = store is None
        self.store: VectorStore = guarded(store if store is not None else open_store(settings))
        self._encoder = encoder
        self._text_encoder = text_encoder
        self._load_lock = threading.Lock()
        self._class_counts: tuple[int, dict[str, int]] | None = None
        if eager:
            self.encoder  # noqa: B018 - load now
            if self.store.text_encoder():
                self.text_encoder  # noqa: B018

    @classmethod
    @contextmanager
    def open(cls, settings: Settings, **kw: Any) -> Iterator[SearchRuntime]:
        """A runtime for a ``with`` block (the store is closed at its end)."""
        rt = cls(settings, **kw)
        try:
            yield rt
        finally:
            rt.close()

    def close(self) -> None:
        if self._own_store:
            self.store.close()

    # ------------------------------------------------------------------------------------------ encoders
    @property
    def encoder(self) -> ImageEncoder:
        """The image encoder (loaded once, on first use)."""
        with self._load_lock:
            if self._encoder is None:
                from pir.encoder.model import encoder_for  # lazy: start-up (torch)

                self._encoder = encoder_for(self.settings)
            return self._encoder

    @property
    def text_encoder(self) -> TextEncoder:
        """The frozen text encoder of the store's text vectors (loaded once, on first use)."""
        with self._load_lock:
            if self._text_encoder is None:
                self._text_encoder = get_text_encoder(self.settings)
            return self._text_encoder

    # -------------------------------------------------------------------------------------------- search
    def check(self) -> None:
        """Refuse an empty or missing collection before anything is loaded.

        Raises:
            StoreError: nothing is stored yet.
        """
        if self.store.dim() is None:
            raise StoreError(f"collection {self.store.collection!r} is empty: run `pir ingest PATH` first")

    def execute(self, request: SearchRequest, *, image_vector: np.ndarray | None = None) -> SearchResponse:
        """Run one search.

        Args:
            request: What to search for (its ``drawings`` are image files; ``pir serve`` resolves its uploads'
                content hashes to their files first).
            image_vector: A ready image query vector instead of ``request.drawings`` (the bench's cached embeddings).

        Raises:
            ValueError: an empty query (no drawing, words, like or marked figure).
            KeyError: a ``like`` or marked figure is not stored.
            StoreError: the collection is empty, or words asked of an old single-vector collection.
            pir.search.service.EncoderMismatchError: the collection was built with another encoder.
            pir.ingest.images.ImageLoadError: a query drawing cannot be decoded.
        """
        if request.empty and image_vector is None:
            raise ValueError("empty query: give at least one drawing, some words, like=FIGURE or pos=FIGURE")
        self.check()
        flt = self.filter(request)
        kw: dict[str, Any] = {
            "k": request.k,
            "filter": flt,
            "min_score": request.min_score,
            "group_by_patent": request.one_per_patent,
        }
        t0 = time.perf_counter()
        images = [load_query_image(d, _crop(request, i)) for i, d in enumerate(request.drawings)]
        words = request.words or None
        te = self.text_encoder if words and self.store.text_encoder() else None
        if request.feedback:
            query_vec = image_vector
            if images:
                query_vec = fuse(self.encoder.encode_images(images, batch_size=self.settings.encoder.batch_size))
            encode_ms = (time.perf_counter() - t0) * 1e3
            resp = self._feedback(request, query_vec, te, kw)
            resp.encode_ms += encode_ms
        else:
            resp = search_hybrid(
                self.store,
                self.settings,
                images=images,
                image_vector=image_vector,
                text=words,
                like=request.like,
                encoder=self.encoder if images else self._encoder,
                text_encoder=te,
                text_weight=request.text_weight,
                fusion=request.fusion,
                **kw,
            )
        if request.clusters:
            resp.query["clusters"] = self.cluster_hits(resp.results, request.clusters)
        kept = {k: v for k, v in resp.query.items() if k in ("mode", "aliases", "feedback", "clusters")}
        resp.query = {**request.describe(), **kept}
        resp.query["score"] = score_legend(request, str(kept.get("mode", "")))
        if request.feedback:
            resp.marks = self.marks(request)
        return resp

    def marks(self, request: SearchRequest) -> list[dict[str, Any]]:
        """The figures marked relevant (``pos``) or not (``neg``), in marking order, with their stored payload's
        patent, figure and title (one store read; a mark that is not stored is left out)."""
        given = [("pos", g) for g in request.positives] + [("neg", g) for g in request.negatives]
        ids = {g: self.point_id(g) for _, g in given}
        found = {p.id: p.payload for p in self.store.retrieve(list(dict.fromkeys(ids.values())))}
        return [
            {
                "id": g,
                "mark": mark,
                "point_id": ids[g],
                "patent_id": str(found[ids[g]].get("patent_id", "")),
                "figure_id": str(found[ids[g]].get("figure_id", "")),
                "title": found[ids[g]].get("title"),
            }
            for mark, g in given
            if ids[g] in found
        ]

    def filter(self, request: SearchRequest) -> SearchFilter:
        """The store filter of a request (class codes, patent ids and viewpoints normalised; publication dates)."""
        flt = build_filter(
            classes=request.classes,
            year_from=request.year_from,
            year_to=request.year_to,
            viewpoints=request.viewpoints,
            exclude_patents=[*request.exclude_patents, *(p.upper() for p in request.exclude_patents)],  # any case
        )
        flt.published_after, flt.published_before = request.after, request.before
        return flt

    def _feedback(
        self,
        request: SearchRequest,
        query_vec: np.ndarray | None,
        text_encoder: TextEncoder | None,
        kw: dict[str, Any],
    ) -> SearchResponse:
        """Relevance feedback anchored on the rest of the query.

        ``rocchio`` (the default): the image query (fused drawings, else the "more like this" figure, else the
        relevant figures) moved by :func:`rocchio` towards the relevant figures' stored image vectors and away from
        the others, then searched as a drawing query (with the words, when given, fused as usual). A Qdrant
        recommend strategy: the current query counts as one more positive. Either way the marked figures are not
        results (the page shows them in its marks tray); with one hit per patent, their patents are not either.

        Raises:
            KeyError: a marked figure is not stored.
        """
        positives = [self.point_id(p) for p in request.positives]
        negatives = [self.point_id(n) for n in request.negatives]
        like_id = self.point_id(request.like) if request.like else None
        if request.one_per_patent:
            marked = {str(p.payload.get("patent_id")) for p in self.store.retrieve([*positives, *negatives])}
            flt = dataclasses.replace(kw["filter"])
            flt.exclude_patents = [*(flt.exclude_patents or []), *sorted(marked)]
            kw = {**kw, "filter": flt}
        if request.strategy == "rocchio":
            return self._rocchio(request, query_vec, like_id, positives, negatives, text_encoder, kw)
        if like_id and like_id not in positives:
            positives.append(like_id)
        return search_recommend(
            self.store,
            positives,
            negatives,
            query_vector=query_vec,
            strategy=request.strategy,
            text=request.words or None,
            text_weight=request.text_weight if request.words else 0.0,
            fusion=request.fusion,
            text_encoder=text_encoder,
            settings=self.settings,
            **kw,
        )

    def _rocchio(
        self,
        request: SearchRequest,
        query_vec: np.ndarray | None,
        like_id: str | None,
        positives: list[str],
        negatives: list[str],
        text_encoder: TextEncoder | None,
        kw: dict[str, Any],
    ) -> SearchResponse:
        ids = [*positives, *negatives, *([like_id] if like_id else [])]
        found = {p.id: p.vector for p in self.store.retrieve(ids, with_vectors=True) if p.vector is not None}
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"marked figure {missing[0]!r} is not in the store")
        if query_vec is None and like_id:
            query_vec = found[like_id]
        pos = np.stack([found[i] for i in positives]) if positives else None
        neg = np.stack([found[i] for i in negatives]) if negatives else None
        vec = rocchio(query_vec, pos, neg)
        flt = dataclasses.replace(kw["filter"])
        flt.exclude_ids = [*(flt.exclude_ids or []), *negatives, *([like_id] if like_id else [])]
        resp = search_hybrid(
            self.store,
            self.settings,
            image_vector=vec,
            text=request.words or None,
            encoder=self._encoder,
            text_encoder=text_encoder,
            text_weight=request.text_weight,
            fusion=request.fusion,
            **{**kw, "filter": flt},
        )
        resp.query.update(
            feedback="rocchio",
            positive=positives,
            negative=negatives,
            weights=list(ROCCHIO),
            with_query=query_vec is not None,
        )
        return resp

    # -------------------------------------------------------------------------------------------- lookup
    def point_id(self, figure: str) -> str:
        """The point id of a figure given as a point id or ``PATENT/FIGURE`` (patent id normalised).

        Raises:
            ValueError: neither form.
        """
        return figure_point_id(figure)

    def point(self, figure: str) -> StoredPoint:
        """A stored figure by point id or ``PATENT/FIGURE``.

        Raises:
            KeyError: it is not stored (or the key is malformed).
        """
        try:
            pts = self.store.retrieve([self.point_id(figure)])
        except (ValueError, StoreError):
            pts = []
        if not pts:
            raise KeyError(f"figure {figure[:80]!r} is not in the store")
        return pts[0]

    def cluster_hits(self, results: list[Any], n: int) -> list[dict[str, Any]]:
        """Group hits into at most ``n`` clusters of look-alikes: k-means (scikit-learn) on their stored image vectors.

        Each cluster: ``label`` (the title / object words shared by most of its figures), ``ids`` (its hits' point
        ids, in rank order) and ``size``; largest first. Fewer than 3 hits, or ``n < 2``: no clusters.
        """
        ids = [str(r.id) for r in results]
        vecs = {p.id: p.vector for p in self.store.retrieve(ids, with_vectors=True) if p.vector is not None}
        ids = [i for i in ids if i in vecs]
        k = min(n, len(ids) - 1)
        if k < 2:
            return []
        from sklearn.cluster import KMeans  # lazy: start-up (scikit-learn, only when clusters are asked for)

        x = np.stack([vecs[i] for i in ids]).astype(np.float64)
        labels = KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(x)
        by_id = {str(r.id): r for r in results}
        out = []
        for c in range(k):
            members = [i for i, lab in zip(ids, labels, strict=True) if lab == c]
            if not members:
                continue
            words: Counter[str] = Counter()
            for i in members:
                r = by_id[i]
                text = " ".join(str(t) for t in (r.title, r.class_label) if t)
                words.update(set(re.findall(r"[a-z]{3,}", text.lower())))
            shared = [w for w, m in words.most_common() if m >= max(2, (len(members) + 1) // 2)][:3]
            out.append({"label": " ".join(shared) or "mixed", "size": len(members), "ids": members})
        return sorted(out, key=lambda g: -int(g["size"]))

    def class_counts(self) -> dict[str, int]:
        """Stored figures per class code / object class over the whole collection, most frequent first.

        One scroll of the payloads, cached until the number of stored points changes (the page's class pick-list).
        """
        n = self.store.count()
        cached = self._class_counts
        if cached is None or cached[0] != n:
            counts: Counter[str] = Counter()
            for p in self.store.scroll(batch_size=1024):
                counts.update({str(c) for c in [*(p.payload.get("classes") or []), p.payload.get("class_label")] if c})
            cached = self._class_counts = (n, dict(counts.most_common()))
        return cached[1]

    def patent(self, patent_id: str) -> list[StoredPoint]:
        """All stored figures of a patent (patent id normalised); empty when none is stored."""
        return list(self.store.scroll(filter=build_filter(patent_ids=[patent_id[:100]])))


def score_legend(request: SearchRequest, mode: str) -> str:
    """What a hit's score means for this search (the page's legend; ``min_score`` applies to the same number)."""

    fused = "text" in mode
    if request.feedback and request.strategy != "rocchio":
        return {
            "average_vector": "cosine similarity (-1..1) to the recommend vector avg(relevant) + avg(relevant) - "
            "avg(not relevant), the query counted as relevant",
            "best_score": "Qdrant best_score: the best cosine to a relevant figure if it beats every not-relevant "
            "one, else a negative number",
            "sum_scores": "sum of cosines to the relevant figures (and the query) minus the sum to the not-relevant",
        }[request.strategy]
    if not fused:
        what = "the feedback-moved query (Rocchio)" if request.feedback else "the query drawing(s)"
        return f"cosine similarity (-1..1) between {what} and the figure's image vector; 1 = the same drawing"
    if request.fusion == "zscore":
        words = f"the words' BM25 {WORDS_SHARE:g} of their share, their text vector the rest"
        if "image" in mode:
            parts = (
                f"weighted (drawing 1 - text weight, words text weight; {words}) and summed, plus {GATE_GAIN:g} x "
                f"(1 - text weight) x (z - {GATE_Z:g}) for a drawing more than {GATE_Z:g} spreads above its candidates"
            )
        else:
            parts = f"weighted ({words}) and summed"
        return (
            "standard-score fusion (zscore): each part's score minus the mean of its best candidates, over their "
            f"spread, {parts}; 0 = an average candidate, +1 = about one spread better; compare it within one hit "
            "list only"
        )
    if request.fusion == "weighted":
        return (
            "weighted sum of the parts' scores, the words' share = text weight: cosine for drawing and text vectors, "
            f"BM25 / (BM25 + {WORDS_SCALE:g}) for the words; about 0..1"
        )
    return (
        f"reciprocal-rank fusion: the sum over the image and words rankings of weight / ({RRF_K} + rank); depends "
        f"only on ranks (at most 1 / {RRF_K + 1} = {1 / (RRF_K + 1):.3f}), so compare it within one hit list only"
    )


def facets(results: Iterable[Any]) -> dict[str, dict[str, int]]:
    """Counts per class code / object class and per publication year in a hit list (most frequent first)."""
    classes: Counter[str] = Counter()
    years: Counter[str] = Counter()
    for r in results:
        p = r if isinstance(r, Mapping) else vars(r)
        classes.update({str(c) for c in [*(p.get("classes") or []), p.get("class_label")] if c})
        if p.get("year"):
            years[str(p["year"])] += 1
    return {"classes": dict(classes.most_common()), "years": dict(sorted(years.items()))}


def _crop(request: SearchRequest, i: int) -> tuple[float, float, float, float] | None:
    box = request.crops.get(i)
    return box.as_tuple() if box else None


def run_search(settings: Settings, request: SearchRequest) -> SearchResponse:
    """One search as a command runs it: open the store, check it before loading any encoder, execute, close.

    Raises:
        StoreError: the collection is empty or missing (before any encoder is loaded).
    """
    with SearchRuntime.open(settings) as rt:
        rt.check()
        return rt.execute(request)
