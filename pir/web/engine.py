"""The warm process behind ``pir serve``: one encoder, one store, query drawings and thumbnails on disk.

Everything here is plain synchronous library code (the HTTP layer in :mod:`pir.web.app` runs it on worker threads
under a concurrency limit). Searching itself is :mod:`pir.search.service`; this module only turns a
:class:`Query` (the whole search state, as it appears in a URL) into calls of those functions.

Concurrency: the encoder is only read (``eval`` + ``no_grad``), so several searches may encode at once; the
embedded Qdrant Edge store (and qdrant-client's in-process ``:memory:`` mode) is wrapped in :class:`LockedStore`,
which serialises its calls (each takes milliseconds). A Qdrant server over HTTP is safe to call from threads and is
used unlocked.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from PIL import Image, ImageOps

from pir.config import Settings
from pir.ingest.images import ImageLoadError, image_from_bytes, load_line_art
from pir.search.store import DEFAULT_FUSION, DEFAULT_TEXT_WEIGHT
from pir.search.words import matched_words
from pir.web.settings import ServeSettings

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.search.store import SearchFilter, StoredPoint, VectorStore

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_ALLOWED_FORMATS = {"PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"}
_WORD_RE = re.compile(r"[a-z0-9]+")
THUMB_SIZES = (128, 256, 1024)
FUSIONS = ("zscore", "rrf", "weighted")
STRATEGIES = ("average_vector", "best_score", "sum_scores")  # Qdrant's recommend strategies
_WORK_SIDE = 2048  # longest side a query drawing is kept at while searching  # pir.search.service.search_hybrid


class WebError(Exception):
    """A problem the client can fix (or a 'not found'): ``status`` is the HTTP status, ``str(e)`` the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LockedStore:
    """A :class:`VectorStore` whose method calls are serialised by one lock (the embedded store is single-owner)."""

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


# ------------------------------------------------------------------------------------------------------ the query
class _Params:
    """URL query / form fields by name, with the parsers :meth:`Query.from_params` validates them with."""

    def __init__(self, params: Iterable[tuple[str, str]]) -> None:
        self.multi: dict[str, list[str]] = {}
        for key, value in params:
            self.multi.setdefault(key, []).append(str(value))

    def one(self, key: str) -> str:
        """The last value of ``key`` (stripped; "" when absent)."""
        return (self.multi.get(key) or [""])[-1].strip()

    def many(self, key: str) -> list[str]:
        """All values of ``key``, de-duplicated in order (comma-separated for ``cls``, ``viewpoint``, ``exclude``)."""
        out: list[str] = []
        for v in self.multi.get(key, []):
            for part in v.split(",") if key in ("cls", "viewpoint", "exclude") else [v]:
                if part.strip() and part.strip() not in out:
                    out.append(part.strip())
        return out

    def integer(self, key: str, lo: int, hi: int) -> int | None:
        """``key`` as a whole number in ``lo..hi``, None when absent."""
        v = self.one(key)
        if not v:
            return None
        try:
            n = int(v)
        except ValueError:
            raise WebError(400, f"{key}={v!r}: expected a whole number") from None
        if not lo <= n <= hi:
            raise WebError(400, f"{key}={n}: must be between {lo} and {hi}")
        return n

    def text_weight(self) -> float:
        """``text_weight`` in 0..1 (default :data:`~pir.search.store.DEFAULT_TEXT_WEIGHT`)."""
        tw = self.one("text_weight")
        try:
            text_weight = float(tw) if tw else DEFAULT_TEXT_WEIGHT
        except ValueError:
            raise WebError(400, f"text_weight={tw!r}: expected a number between 0 and 1") from None
        if not 0.0 <= text_weight <= 1.0:
            raise WebError(400, f"text_weight={text_weight}: must be between 0 and 1")
        return text_weight

    def choice(self, key: str, allowed: Iterable[str]) -> str:
        """``key`` lower-cased, "" or one of ``allowed``."""
        value = self.one(key).lower()
        if value and value not in allowed:
            raise WebError(400, f"{key}={value[:40]!r}: one of {', '.join(allowed)}")
        return value

    def figure_ids(self, key: str) -> list[str]:
        """The figure ids (uuids) given as ``key``."""
        values = self.many(key)
        for v in values:
            if not re.fullmatch(r"[0-9a-fA-F-]{32,36}", v):
                raise WebError(400, f"{key}={v[:80]!r}: expected a figure id (uuid)")
        return values


@dataclass
class Query:
    """The whole search state; :meth:`to_params` / :meth:`from_params` round-trip it through a URL query string.

    ``drawings`` are content hashes of uploaded drawings (see :meth:`Engine.store_drawing`); ``crops`` maps a drawing's
    index to a crop rectangle in fractions of its width and height ``(x0, y0, x1, y1)``; ``positives`` /
    ``negatives`` are point ids marked relevant / not relevant (relevance feedback).
    """

    drawings: list[str] = field(default_factory=list)
    words: str = ""
    text_weight: float = DEFAULT_TEXT_WEIGHT
    fusion: str = ""
    classes: list[str] = field(default_factory=list)
    year_from: int | None = None
    year_to: int | None = None
    viewpoints: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    per_patent: bool = False
    k: int = 20
    crops: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    like: str = ""
    positives: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    strategy: str = ""

    @property
    def empty(self) -> bool:
        return not (self.drawings or self.words.strip() or self.like or self.positives)

    def to_params(self) -> list[tuple[str, str]]:
        """``(key, value)`` pairs of the non-default fields, in a stable order."""
        out: list[tuple[str, str]] = [("q", h) for h in self.drawings]
        for i, box in sorted(self.crops.items()):
            out.append(("crop", f"{i}:" + ",".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in box)))
        if self.words.strip():
            out += [("words", self.words.strip()), ("text_weight", f"{self.text_weight:g}")]
        if self.fusion:
            out.append(("fusion", self.fusion))
        out += [("cls", c) for c in self.classes]
        if self.year_from is not None:
            out.append(("year_from", str(self.year_from)))
        if self.year_to is not None:
            out.append(("year_to", str(self.year_to)))
        out += [("viewpoint", v) for v in self.viewpoints]
        out += [("exclude", p) for p in self.exclude]
        if self.per_patent:
            out.append(("per_patent", "1"))
        out.append(("k", str(self.k)))
        if self.like:
            out.append(("like", self.like))
        out += [("pos", p) for p in self.positives]
        out += [("neg", n) for n in self.negatives]
        if self.strategy and (self.positives or self.negatives):
            out.append(("strategy", self.strategy))
        return out

    def url(self, path: str = "/", **changes: Any) -> str:
        """``path?query`` of this state, with some fields replaced (e.g. ``like=...``)."""
        q = self.replace(**changes) if changes else self
        return f"{path}?{urlencode(q.to_params())}"

    def replace(self, **changes: Any) -> Query:
        import dataclasses

        return dataclasses.replace(self, **changes)

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]], *, max_k: int = 200, max_images: int = 7) -> Query:
        """Parse (and validate) a URL query string or form fields.

        Raises:
            WebError: 400 with a one-line reason for a malformed value.
        """
        p = _Params(params)
        drawings = p.many("q")
        bad = [h for h in drawings if not _HASH_RE.match(h)]
        if bad:
            raise WebError(400, f"q={bad[0][:80]!r}: expected the sha256 content hash of an uploaded drawing")
        if len(drawings) > max_images:
            raise WebError(400, f"{len(drawings)} drawings: at most {max_images} per search")
        crops: dict[int, tuple[float, float, float, float]] = {}
        for c in p.many("crop"):
            crops.update([_parse_crop(c, len(drawings))])
        text_weight = p.text_weight()
        fusion, strategy = p.choice("fusion", FUSIONS), p.choice("strategy", STRATEGIES)
        words = p.one("words")
        if len(words) > 500:
            raise WebError(400, "words: at most 500 characters")
        ids = {key: p.figure_ids(key) for key in ("pos", "neg")}
        return cls(
            drawings=drawings,
            words=words,
            text_weight=text_weight,
            fusion=fusion,
            classes=p.many("cls")[:20],
            year_from=p.integer("year_from", 1000, 9999),
            year_to=p.integer("year_to", 1000, 9999),
            viewpoints=p.many("viewpoint")[:20],
            exclude=p.many("exclude")[:50],
            per_patent=p.one("per_patent").lower() in ("1", "true", "on", "yes"),
            k=p.integer("k", 1, max_k) or 20,
            crops=crops,
            like=p.one("like")[:200],
            positives=ids["pos"][:50],
            negatives=ids["neg"][:50],
            strategy=strategy,
        )

    def filter(self) -> SearchFilter:
        from pir.search.service import build_filter

        return build_filter(
            classes=self.classes,
            year_from=self.year_from,
            year_to=self.year_to,
            viewpoints=self.viewpoints,
            exclude_patents=self.exclude,
        )

    def describe(self) -> dict[str, Any]:
        """The query as the report and the JSON answer show it."""
        return {
            "drawings": self.drawings,
            "crops": {str(i): list(b) for i, b in self.crops.items()},
            "words": self.words,
            "text_weight": self.text_weight if self.words else None,
            "fusion": self.fusion or None,
            "filters": {
                "classes": self.classes,
                "year_from": self.year_from,
                "year_to": self.year_to,
                "viewpoints": self.viewpoints,
                "exclude_patents": self.exclude,
            },
            "per_patent": self.per_patent,
            "k": self.k,
            "like": self.like or None,
            "positives": self.positives,
            "negatives": self.negatives,
            "strategy": (self.strategy or "average_vector") if (self.positives or self.negatives) else None,
        }


def _parse_crop(text: str, n: int) -> tuple[int, tuple[float, float, float, float]]:
    m = re.fullmatch(r"(\d+):([0-9.]+),([0-9.]+),([0-9.]+),([0-9.]+)", text.strip())
    if not m:
        raise WebError(400, f"crop={text[:80]!r}: expected INDEX:X0,Y0,X1,Y1 in fractions of the drawing (0..1)")
    i = int(m.group(1))
    try:
        x0, y0, x1, y1 = (float(m.group(j)) for j in range(2, 6))
    except ValueError:
        raise WebError(400, f"crop={text[:80]!r}: not numbers") from None
    if i >= n:
        raise WebError(400, f"crop={text[:80]!r}: there is no drawing {i} (indices start at 0)")
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1) or (x1 - x0) < 0.02 or (y1 - y0) < 0.02:
        raise WebError(400, f"crop={text[:80]!r}: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (at least 2% wide)")
    return i, (x0, y0, x1, y1)


# ----------------------------------------------------------------------------------------------------- the engine
class Engine:
    """The encoder, the store and the web's files (``<data_dir>/web/drawings`` and ``/thumbs``)."""

    def __init__(
        self,
        settings: Settings,
        serve: ServeSettings,
        *,
        encoder: ImageEncoder | None = None,
        store: VectorStore | None = None,
    ) -> None:
        from pir.encoder.backbone import set_threads  # lazy: start-up
        from pir.encoder.model import load_encoder  # lazy: start-up
        from pir.search import open_store

        self.settings = settings
        self.serve = serve
        set_threads(settings.encoder.num_threads)
        self.encoder = encoder or load_encoder(
            settings.encoder.name, device=settings.encoder.device, image_size=settings.image_size
        )
        self._own_store = store is None
        raw = store or open_store(settings)
        remote = raw.backend == "server" and str(settings.qdrant.url or "").startswith(("http://", "https://"))
        self.store: Any = raw if remote or isinstance(raw, LockedStore) else LockedStore(raw)
        self.text_encoder: Any = None
        if self.store.text_encoder():  # the store holds text vectors: load the frozen text encoder now, once
            from pir.search.service import get_text_encoder

            self.text_encoder = get_text_encoder(settings)
        self.root = Path(settings.data_dir) / "web"
        self.drawings_dir = self.root / "drawings"
        self.thumbs_dir = self.root / "thumbs"
        self.drawings_dir.mkdir(parents=True, exist_ok=True)
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        self.started = datetime.now(UTC)

    def close(self) -> None:
        if self._own_store:
            self.store.close()

    # ---------------------------------------------------------------------------------------------- drawings
    def store_drawing(self, data: bytes, filename: str = "<upload>") -> str:
        """Validate an uploaded drawing and keep it under its sha256; returns the hash.

        Raises:
            WebError: 413 too many bytes or pixels (decompression bombs too), 415 not a raster image (PDF, SVG,
                text, unknown), 422 corrupt, truncated or blank.
        """
        name = _safe_name(filename)
        if len(data) > self.serve.max_upload_bytes:
            raise WebError(413, f"{name}: {len(data):,} bytes; at most {self.serve.max_upload_bytes:,} per drawing")
        if not data:
            raise WebError(422, f"{name}: empty file (0 bytes)")
        fmt, (w, h) = _sniff(data, name)
        if fmt in ("PDF", "SVG", "PostScript/EPS"):
            raise WebError(415, f"{name}: {fmt} is a vector/document format, not a raster drawing; convert it to PNG")
        if fmt not in _ALLOWED_FORMATS:
            raise WebError(415, f"{name}: {fmt} files are not accepted; use PNG, JPEG, TIFF, BMP, GIF or WebP")
        if w * h > self.serve.max_pixels:
            raise WebError(
                413, f"{name}: {w}x{h} = {w * h:,} pixels; at most {self.serve.max_pixels:,} per drawing (too large)"
            )
        try:
            image_from_bytes(data, size=64, source=name)  # decodes it all: truncation, blank pages, bombs
        except ImageLoadError as e:
            raise _image_error(e) from None
        digest = hashlib.sha256(data).hexdigest()
        path = self.drawings_dir / digest
        if path.exists():
            path.touch()  # recently used: kept longest
        else:
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            self._prune_drawings(keep=path)
        return digest

    def _prune_drawings(self, keep: Path) -> None:
        """Delete the least recently used query drawings beyond ``max_stored_mb`` (never ``keep``, the newest)."""
        files = []
        for p in self.drawings_dir.iterdir():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, p))
        total, cap = sum(f[1] for f in files), self.serve.max_stored_mb * 2**20
        for _, size, p in sorted(files, key=lambda f: f[0]):
            if total <= cap:
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size

    def drawing_path(self, digest: str) -> Path:
        """Path of a stored query drawing (only ever a hash from this server's own directory)."""
        if not _HASH_RE.match(digest):
            raise WebError(404, "no such drawing")
        path = self.drawings_dir / digest
        if not path.is_file():
            raise WebError(404, f"drawing {digest[:12]}... is not stored on this server (upload it again)")
        return path

    def load_drawing(self, digest: str, crop: tuple[float, float, float, float] | None = None) -> Image.Image:
        """A stored query drawing as a PIL image, cropped to ``crop`` (fractions) when given."""
        path = self.drawing_path(digest)
        data = path.read_bytes()
        path.touch()
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.seek(0)
                im.load()
                img = ImageOps.exif_transpose(im)
        except (OSError, ValueError, SyntaxError) as e:
            raise WebError(422, f"drawing {digest[:12]}...: cannot decode ({e})") from None
        if crop:
            w, h = img.size
            x0, y0, x1, y1 = crop
            img = img.crop((round(x0 * w), round(y0 * h), max(round(x1 * w), 1), max(round(y1 * h), 1)))
        if max(img.size) > _WORK_SIDE:  # the encoder sees ~224 px: keep a search's memory small for large sheets
            img = img.convert("L") if img.mode in ("1", "P") else img
            img.thumbnail((_WORK_SIDE, _WORK_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return img

    def drawing_png(self, digest: str, size: int = 1024) -> bytes:
        """A stored query drawing as PNG, longest side at most ``size`` (not trimmed, so crop fractions line up)."""
        img = self.load_drawing(digest)
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "L")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    # ----------------------------------------------------------------------------------------------- search
    def search(self, q: Query) -> dict[str, Any]:
        """Run a search for ``q`` with the library functions; returns the JSON answer (without urls).

        Raises:
            WebError: 400 an empty or impossible query, 404 unknown figures/drawings.
        """
        from pir.search import service
        from pir.search.store import StoreError

        if q.empty:
            raise WebError(400, "empty query: give at least one drawing, some words, like=FIGURE or pos=FIGURE")
        flt = q.filter()
        kw: dict[str, Any] = {"k": q.k, "filter": flt, "group_by_patent": q.per_patent}
        try:
            images = [self.load_drawing(h, q.crops.get(i)) for i, h in enumerate(q.drawings)]
            if q.positives or q.negatives:
                resp = self._feedback(q, images, kw)
            else:
                resp = service.search_hybrid(
                    self.store,
                    self.settings,
                    images=images,
                    text=q.words or None,
                    like=self._like_key(q.like) if q.like else None,
                    encoder=self.encoder,
                    text_encoder=self.text_encoder,
                    text_weight=q.text_weight,
                    fusion=q.fusion or DEFAULT_FUSION,
                    **kw,
                )
        except ImageLoadError as e:
            raise _image_error(e) from None
        except KeyError as e:
            raise WebError(404, str(e.args[0]) if e.args else "not found") from None
        except (ValueError, StoreError, service.EncoderMismatchError) as e:
            raise WebError(400, str(e)) from None
        words = " ".join([q.words, *resp.query.get("aliases", [])]) if q.words else ""
        results = [self.hit_dict(r.to_dict(), words) for r in resp.results]
        return {
            "query": q.describe(),
            "encoder": f"{self.encoder.name}@{self.encoder.version}",
            "encode_ms": round(resp.encode_ms, 2),
            "search_ms": round(resp.search_ms, 2),
            "results": results,
        }

    def _feedback(self, q: Query, images: list[Image.Image], kw: dict[str, Any]) -> Any:
        """Relevance feedback: Qdrant's recommend query (:func:`pir.search.service.search_recommend`).

        The current query (fused drawings, or the "more like this" figure) counts as one more positive; the words,
        when given, stay the words side of the query; the marked figures are left out of the results (with one hit
        per patent, their patents are).
        """
        from pir.search import service

        positives = list(q.positives)
        if q.like:
            like_id = self._like_id(q.like)
            if like_id not in positives:
                positives.append(like_id)
        if q.per_patent and (positives or q.negatives):
            # one hit per patent: a marked figure stands for its patent, so its other figures are not results either
            import dataclasses

            marked = {str(p.payload.get("patent_id")) for p in self.store.retrieve([*positives, *q.negatives])}
            flt = dataclasses.replace(kw["filter"])
            flt.exclude_patents = [*(flt.exclude_patents or []), *sorted(marked)]
            kw = {**kw, "filter": flt}
        query_vec = None
        if images:
            query_vec = service.fuse(self.encoder.encode_images(images, batch_size=self.settings.encoder.batch_size))
        return service.search_recommend(
            self.store,
            positives,
            q.negatives,
            query_vector=query_vec,
            strategy=q.strategy or "average_vector",
            text=q.words or None,
            text_weight=q.text_weight if q.words else 0.0,
            fusion=q.fusion or DEFAULT_FUSION,
            text_encoder=self.text_encoder,
            settings=self.settings,
            **kw,
        )

    def _like_id(self, like: str) -> str:
        from pir.ingest.schema import point_id
        from pir.search.store import StoreError, normalize_id

        if "/" in like:
            return point_id(*like.split("/", 1))
        try:
            return normalize_id(like)
        except StoreError:
            raise WebError(400, f"like={like[:80]!r}: expected a figure id or PATENT/FIGURE") from None

    def _like_key(self, like: str) -> str:
        """``PATENT/FIGURE`` for search_like (a figure id is looked up)."""
        if "/" in like:
            return like
        p = self.point(self._like_id(like))
        return f"{p.payload.get('patent_id')}/{p.payload.get('figure_id')}"

    # ------------------------------------------------------------------------------------------------ lookup
    def point(self, figure: str) -> StoredPoint:
        """A stored figure by point id or ``PATENT/FIGURE`` (404 when it is not in the store)."""
        from pir.search.store import StoreError

        try:
            pid = self._like_id(figure)
            pts = self.store.retrieve([pid])
        except (WebError, StoreError):
            raise WebError(404, f"figure {figure[:80]!r} is not in the store") from None
        if not pts:
            raise WebError(404, f"figure {figure[:80]!r} is not in the store")
        return pts[0]

    def figure(self, figure: str) -> dict[str, Any]:
        p = self.point(figure)
        return self.payload_dict(p.id, p.payload)

    def patent(self, patent_id: str) -> dict[str, Any]:
        """A patent and all its stored figures, in figure order (404 when none is stored)."""
        from pir.search.service import build_filter

        flt = build_filter(patent_ids=[patent_id[:100]])
        pts = self.store.scroll(filter=flt)
        if not pts:
            raise WebError(404, f"patent {patent_id[:80]!r} is not in the store")
        figs = sorted((self.payload_dict(p.id, p.payload) for p in pts), key=lambda d: _natural(d["figure_id"]))
        first = figs[0]
        return {
            "patent_id": first["patent_id"],
            "title": first["title"],
            "classes": first["classes"],
            "year": first["year"],
            "publication_date": first["publication_date"],
            "figures": figs,
        }

    @staticmethod
    def payload_dict(point_id: str, p: Mapping[str, Any]) -> dict[str, Any]:
        """The public fields of a stored figure (never its file path)."""
        return {
            "id": point_id,
            "patent_id": str(p.get("patent_id", "")),
            "figure_id": str(p.get("figure_id", "")),
            "title": p.get("title"),
            "object_name": p.get("object_name"),
            "viewpoint": p.get("viewpoint"),
            "class_label": p.get("class_label"),
            "classes": list(p.get("classes") or []),
            "year": p.get("year"),
            "publication_date": p.get("publication_date"),
            "description": p.get("description"),
            "descriptions": list(p.get("descriptions") or []),
        }

    def hit_dict(self, r: Mapping[str, Any], words: str) -> dict[str, Any]:
        out = {k: v for k, v in r.items() if k not in ("image_path",)}
        out["score"] = round(float(r["score"]), 4)
        out["why"] = matched_words(words, r.get("words") or []) if words.strip() else []  # words that matched
        return out

    # -------------------------------------------------------------------------------------------- thumbnails
    def thumbnail(self, figure: str, size: int = 256) -> Path:
        """PNG of a stored figure (trimmed line art, ``size`` px square), cached under ``<data_dir>/web/thumbs``.

        Only figures in the store are rendered, from the image path in their payload.
        """
        if size not in THUMB_SIZES:
            raise WebError(400, f"size={size}: one of {', '.join(map(str, THUMB_SIZES))}")
        p = self.point(figure)
        tag = str(p.payload.get("content_hash") or "")[:16]
        out = self.thumbs_dir / f"{p.id}-{tag}-{size}.png"
        if out.is_file():
            return out
        src = p.payload.get("image_path")
        if not src:
            raise WebError(404, "this figure has no stored image")
        try:
            img = load_line_art(src, size)
        except ImageLoadError as e:
            raise WebError(404, f"the figure's image cannot be read: {e.reason}") from None
        tmp = out.with_suffix(f".{threading.get_ident()}.tmp")
        img.save(tmp, format="PNG", optimize=True)
        tmp.replace(out)
        return out

    # ------------------------------------------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        from pir import __version__ as pir_version

        store = self.store.info()
        return {
            "pir": pir_version,
            "encoder": {
                "name": self.encoder.name,
                "version": self.encoder.version,
                "dim": self.encoder.dim,
                "text_aligned": self.encoder.text_aligned,
                "device": str(self.encoder.device),
            },
            "store": {k: store.get(k) for k in ("backend", "collection", "dim", "count", "encoder")},
            "limits": {
                "max_images": self.serve.max_images,
                "max_upload_bytes": self.serve.max_upload_bytes,
                "max_pixels": self.serve.max_pixels,
                "max_k": self.serve.max_k,
                "max_concurrent": self.serve.max_concurrent,
                "max_queued": self.serve.max_queued,
            },
            "started": self.started.isoformat(timespec="seconds"),
        }


def closest_descriptions(words: str, descriptions: Sequence[str], n: int = 2) -> list[str]:
    """The stored descriptions sharing the most words with the query words (why a hit matched), best first."""
    want = set(_WORD_RE.findall(words.lower()))
    scored = []
    for i, d in enumerate(descriptions):
        have = set(_WORD_RE.findall(d.lower()))
        overlap = len(want & have)
        if overlap:
            scored.append((-overlap, i, d))
    return [d for *_, d in sorted(scored)[:n]]


def export_csv(answer: Mapping[str, Any]) -> str:
    """The hit list as CSV (one row per hit)."""
    buf = io.StringIO()
    cols = ["rank", "score", "patent_id", "figure_id", "title", "class_label", "classes", "year", "viewpoint", "id"]
    w = csv.writer(buf)
    w.writerow(cols)
    for r in answer["results"]:
        w.writerow([";".join(r[c]) if c == "classes" else ("" if r.get(c) is None else r[c]) for c in cols])
    return buf.getvalue()


def _sniff(data: bytes, name: str) -> tuple[str, tuple[int, int]]:
    """Format and size from the header only (no decode)."""
    from pir.ingest.images import _sniff_vector  # the same sniffing as the readers

    kind = _sniff_vector(data[:4096])
    if kind:
        return kind, (0, 0)
    try:
        with Image.open(io.BytesIO(data)) as im:
            return str(im.format or "unknown"), im.size
    except Image.DecompressionBombError:
        raise WebError(413, f"{name}: exceeds the decompression-bomb limit (refused for safety)") from None
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is "not an image"
        return "unknown (not an image)", (0, 0)


def _image_error(e: ImageLoadError) -> WebError:
    reason = e.reason
    if "decompression-bomb" in reason or "too large" in reason:
        return WebError(413, str(e))
    if "vector/document" in reason or "not a recognised image" in reason:
        return WebError(415, str(e))
    return WebError(422, str(e))


def _safe_name(filename: str) -> str:
    name = Path(str(filename or "<upload>").replace("\\", "/")).name
    return re.sub(r"[^\w.\- ]", "_", name)[:80] or "<upload>"


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
