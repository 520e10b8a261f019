"""The warm process behind ``pir serve``: one encoder, one store, query drawings and thumbnails on disk.

Everything here is plain synchronous code (the HTTP layer in :mod:`pir.web.app` runs it on worker threads under a
concurrency limit). A search is a :class:`pir.search.request.SearchRequest` (the page's URL state, the form and the
JSON API all parse into one) executed by one :class:`pir.search.runtime.SearchRuntime`; this module adds only what
is the web's own: uploaded query drawings kept under their content hash, thumbnails, and the JSON shapes.

Concurrency: the encoder is only read (``eval`` + ``no_grad``), so several searches may encode at once; the
runtime serialises the store's calls when its backend says it is not thread-safe (the embedded Qdrant Edge store).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from pir import __version__ as pir_version
from pir.core.config import Settings
from pir.ingest.images import ImageLoadError, _sniff_vector, image_from_bytes, load_line_art
from pir.search.request import SearchRequest
from pir.search.words import matched_words
from pir.web.settings import ServeSettings

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.search.query import StoredPoint
    from pir.search.runtime import SearchRuntime
    from pir.search.store import VectorStore

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_ALLOWED_FORMATS = {"PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"}
_WORD_RE = re.compile(r"[a-z0-9]+")
THUMB_SIZES = (128, 256, 1024)
log = logging.getLogger(__name__)


class WebError(Exception):
    """A problem the client can fix (or a 'not found'): ``status`` is the HTTP status, ``str(e)`` the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
        from pir.encoder.backbone import set_threads  # lazy: start-up (torch)
        from pir.search.runtime import SearchRuntime  # lazy: start-up (qdrant)

        self.settings = settings
        self.serve = serve
        set_threads(settings.encoder.num_threads)
        self.runtime: SearchRuntime = SearchRuntime(settings, store=store, encoder=encoder, eager=True)
        self.store: VectorStore = self.runtime.store
        self.encoder: ImageEncoder = self.runtime.encoder
        self.root = _web_dir(Path(settings.data_dir) / "web")
        self.drawings_dir = self.root / "drawings"
        self.thumbs_dir = self.root / "thumbs"
        self.drawings_dir.mkdir(parents=True, exist_ok=True)
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        self.started = datetime.now(UTC)

    def close(self) -> None:
        self.runtime.close()

    # ---------------------------------------------------------------------------------------------- drawings
    def store_upload(self, data: bytes, filename: str = "<upload>", max_pages: int | None = None) -> list[str]:
        """Store an uploaded file as query drawings; their hashes. A PDF or a multi-page TIFF gives one drawing per
        page (at most ``max_pages``, default ``max_images``), each a candidate view to keep, pick or crop.

        Raises:
            WebError: as :meth:`store_drawing`; 413 too many pages; 422 a PDF that cannot be read.
        """
        name = _safe_name(filename)
        limit = self.serve.max_images if max_pages is None else max_pages
        if len(data) > self.serve.max_upload_bytes:
            raise WebError(413, f"{name}: {len(data):,} bytes; at most {self.serve.max_upload_bytes:,} per drawing")
        pages: list[bytes] | None
        if data[:5] == b"%PDF-":
            pages = _pdf_pages(data, name, limit, self.serve.max_pixels)
        else:
            pages = _tiff_pages(data, name, limit, self.serve.max_pixels)
        if pages is None:
            return [self.store_drawing(data, filename)]
        return [self.store_drawing(png, f"{name} page {i}") for i, png in enumerate(pages, start=1)]

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
        from pir.search.runtime import load_query_image  # lazy: start-up (qdrant)

        path = self.drawing_path(digest)
        path.touch()
        try:
            return load_query_image(path, crop)
        except ImageLoadError as e:
            raise WebError(422, f"drawing {digest[:12]}...: {e.reason}") from None

    def drawing_png(
        self, digest: str, size: int = 1024, crop: tuple[float, float, float, float] | None = None
    ) -> bytes:
        """A stored query drawing as PNG, longest side at most ``size`` (not trimmed, so crop fractions line up), or
        the part ``crop`` (fractions) of it (the compare view shows the query as it is searched)."""
        img = self.load_drawing(digest, crop)
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "L")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    # ----------------------------------------------------------------------------------------------- search
    def search(self, q: SearchRequest) -> dict[str, Any]:
        """Execute ``q`` with the search runtime (once: the uploaded drawings' hashes resolved to their files here,
        before it); returns the JSON answer (without urls).

        Raises:
            WebError: 400 an empty or impossible query, 404 unknown figures/drawings, 413/415/422 bad drawings.
        """
        from pir.search.query import StoreError  # lazy: only the error path needs it
        from pir.search.service import EncoderMismatchError  # lazy: only the error path needs it

        files = {str(self.drawing_path(d)): d for d in q.drawings}  # 404: a drawing this server does not hold
        for path in files:
            Path(path).touch()  # recently used: kept by the drawings folder's pruning
        try:
            resp = self.runtime.execute(q.replace(drawings=list(files)) if files else q)
        except ImageLoadError as e:
            if e.path in files:
                raise WebError(422, f"drawing {files[e.path][:12]}...: {e.reason}") from None
            raise _image_error(e) from None
        except KeyError as e:
            raise WebError(404, str(e.args[0]) if e.args else "not found") from None
        except (ValueError, StoreError, EncoderMismatchError) as e:
            raise WebError(400, str(e)) from None
        from pir.search.runtime import facets  # lazy: start-up (qdrant)

        words = " ".join([q.words, *resp.query.get("aliases", [])]) if q.words else ""
        results = [self.hit_dict(r.to_dict(), words) for r in resp.results]
        extra = {k: resp.query[k] for k in ("mode", "feedback", "aliases") if k in resp.query}
        return {
            "query": {**q.describe(), **extra},
            "mode": str(resp.query.get("mode", "")),
            "score": str(resp.query.get("score", "")),
            "encoder": self.encoder.id,
            "encode_ms": round(resp.encode_ms, 2),
            "search_ms": round(resp.search_ms, 2),
            "results": results,
            "marks": [
                {**{k: v for k, v in m.items() if k != "point_id"}, "thumb_url": f"/api/figures/{m['point_id']}/thumb"}
                for m in resp.marks
            ],
            "clusters": list(resp.query.get("clusters") or []),
            "facets": facets(results),
        }

    def class_options(self) -> list[dict[str, Any]]:
        """The class pick-list: every stored class code / object class with its title and number of figures."""
        counts = self.runtime.class_counts()
        return [{"code": c, "title": class_title(c), "count": n} for c, n in counts.items()]

    # ------------------------------------------------------------------------------------------------ lookup
    def point(self, figure: str) -> StoredPoint:
        """A stored figure by point id or ``PATENT/FIGURE`` (patent id normalised; 404 when it is not stored)."""
        try:
            return self.runtime.point(figure)
        except KeyError as e:
            raise WebError(404, str(e.args[0])) from None

    def figure(self, figure: str) -> dict[str, Any]:
        p = self.point(figure)
        return self.payload_dict(p.id, p.payload)

    def patent(self, patent_id: str) -> dict[str, Any]:
        """A patent and all its stored figures, in figure order (404 when none is stored)."""
        pts = self.runtime.patent(patent_id)
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
        import torch  # lazy: start-up (torch; already loaded with the encoder)

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
                "encode_threads": torch.get_num_threads(),
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


def _pdf_pages(data: bytes, name: str, max_pages: int, max_pixels: int) -> list[bytes]:
    """Each page of a PDF rendered to a grayscale PNG (150 dpi, longest side at most 2048 px, within ``max_pixels``).

    Raises:
        WebError: 422 unreadable or no pages, 413 more than ``max_pages`` pages.
    """
    import pypdfium2 as pdfium  # type: ignore[import-untyped]  # lazy: start-up (the PDF renderer, PDF uploads only)

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        raise WebError(422, f"{name}: cannot read the PDF ({e})") from None
    try:
        n = len(pdf)
        if n == 0:
            raise WebError(422, f"{name}: the PDF has no pages")
        if n > max_pages:
            raise WebError(413, f"{name}: {n} pages; at most {max_pages} pages per search")
        out = []
        for i in range(n):
            page = pdf[i]
            w, h = page.get_size()  # points (1/72 inch)
            scale = min(150 / 72, 2048 / max(w, h, 1), (max_pixels / max(w * h, 1)) ** 0.5)
            img = page.render(scale=scale, grayscale=True).to_pil()
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            out.append(buf.getvalue())
        return out
    except pdfium.PdfiumError as e:
        raise WebError(422, f"{name}: cannot render the PDF ({e})") from None
    finally:
        pdf.close()


def _tiff_pages(data: bytes, name: str, max_pages: int, max_pixels: int) -> list[bytes] | None:
    """Each frame of a multi-page TIFF as a PNG; None for anything else (a single image is stored as it is).

    Raises:
        WebError: 413 more than ``max_pages`` pages or a page over ``max_pixels``; 422 a page that cannot be decoded.
    """
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            n = int(getattr(im, "n_frames", 1))
            if n <= 1:
                return None
            if n > max_pages:
                raise WebError(413, f"{name}: {n} pages; at most {max_pages} pages per search")
            out = []
            for i in range(n):
                im.seek(i)
                if im.size[0] * im.size[1] > max_pixels:
                    raise WebError(413, f"{name} page {i + 1}: {im.size[0]}x{im.size[1]} pixels; too large")
                frame = im.convert("L") if im.mode not in ("L", "RGB") else im.copy()
                buf = io.BytesIO()
                frame.save(buf, format="PNG")
                out.append(buf.getvalue())
            return out
    except (OSError, ValueError, SyntaxError) as e:
        raise WebError(422, f"{name}: cannot decode the TIFF ({e})") from None


def class_title(code: str) -> str:
    """The title of a USPC design class (``D6-500`` -> its main class D6) or Locarno class (``06-01``), else ''."""
    uspc, locarno = _class_tables()
    if code in locarno:
        return locarno[code]
    main = code.split("-")[0]
    return uspc.get(main.upper()) or locarno.get(main) or ""


@functools.cache
def _class_tables() -> tuple[dict[str, str], dict[str, str]]:
    from importlib import resources

    def table(name: str) -> dict[str, str]:
        text = resources.files("pir").joinpath("data", name).read_text(encoding="utf-8")
        return {r["code"].strip(): r["title"].strip() for r in csv.DictReader(io.StringIO(text))}

    return table("uspc_design_classes.csv"), table("locarno_classes.csv")


def _sniff(data: bytes, name: str) -> tuple[str, tuple[int, int]]:
    """Format and size from the header only (no decode)."""
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


def _web_dir(root: Path) -> Path:
    """``<data_dir>/web`` for query drawings, thumbnails and history, or, when the data dir cannot be written (a
    store on a read-only file system or a full disk), a private temporary folder, said once in the log."""
    try:
        (root / "drawings").mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
        return root
    except OSError as e:
        tmp = Path(tempfile.mkdtemp(prefix="pir-web-"))
        log.warning("%s is not writable (%s): query drawings, thumbnails and history go to %s", root, e.strerror, tmp)
        return tmp
