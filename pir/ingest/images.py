"""Load patent drawings (TIFF G4 sheets, PNG, JPEG, ...) as normalised grayscale line art.

Every raster image becomes the same kind of picture: mode ``"L"``, dark lines on white, white margins trimmed to
the ink's bounding box plus a small margin, padded to a square on white and resized to ``size x size``.

Decisions:

* Pillow's decompression-bomb guard stays on (``Image.MAX_IMAGE_PIXELS`` is never changed). Pillow only *warns*
  between ``MAX_IMAGE_PIXELS`` (about 89.5 M pixels) and twice that; here that range is refused as well, because a
  drawing sheet at 300 dpi is at most about 3300 x 5900 px (19.5 M pixels). The refusal is an
  :class:`ImageLoadError` whose reason says "exceeds the decompression-bomb limit".
* Large legal images are cheap: JPEGs are decoded at a reduced DCT scale (``draft``), and the trimmed drawing is
  shrunk with ``reducing_gap`` (box reduction first, LANCZOS last) instead of resampling the full page.
* A page that is mostly dark, on its border (the paper) as well as overall, is taken to be white-on-black and
  inverted, so the output is always dark lines on white (a large black silhouette on white paper is kept).
* JPEG/TIFF EXIF orientation is applied (phone photos of drawings used as queries).
* Vector formats (PDF, SVG, EPS) are refused with a clear reason: rasterise them first.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Raster extensions, and drawing formats that Pillow cannot rasterise (readers report them instead of skipping them).
from pir.ingest.normalize import VECTOR_EXTENSIONS  # noqa: E402

#: A pixel darker than this (0..255) counts as ink when trimming and when deciding that a page is blank.
INK_THRESHOLD = 200
#: Margin kept around the ink's bounding box, as a fraction of the box's longer side (at least 2 px).
MARGIN_FRACTION = 0.02

_INK_LUT = [255 if v < INK_THRESHOLD else 0 for v in range(256)]
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


class ImageLoadError(ValueError):
    """An image file that cannot be used as a drawing: ``str(e) == f"{path}: {reason}"``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))


def _bomb_reason(width: int, height: int) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    return (
        f"image of {width}x{height} = {width * height:,} pixels exceeds the decompression-bomb limit "
        f"({limit:,} pixels); this is not a drawing sheet (refused for safety)"
    )


def _sniff_vector(head: bytes) -> str | None:
    """Name of a vector/document format recognised from a file's first bytes, or ``None``."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"%pdf"):
        return "PDF"
    if text.startswith(b"%!ps") or text.startswith(b"\xc5\xd0\xd3\xc6"):
        return "PostScript/EPS"
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg")) and b"<svg" in text:
        return "SVG"
    return None


def _vector_reason(kind: str) -> str:
    return f"{kind} is a vector/document format that Pillow cannot rasterise; convert it to PNG or TIFF first"


def _open_line_art(source: str, fp: Path | io.BytesIO, size: int | None, trim: bool) -> Image.Image:
    """Open with the bomb warning promoted to an error and map every failure to :class:`ImageLoadError`.

    ``warnings.catch_warnings`` is not thread-safe; :func:`to_line_art` therefore repeats the pixel-count check, so
    the outcome is the same in threads (at worst Pillow's warning is printed once).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                if size is not None and img.format == "JPEG":
                    # Decode at a reduced DCT scale, still comfortably above the output size.
                    img.draft("L" if img.mode in ("L", "1") else "RGB", (4 * size, 4 * size))
                return to_line_art(img, size, trim=trim, source=source)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(source, f"exceeds the decompression-bomb limit (refused for safety): {e}") from e
    except UnidentifiedImageError as e:
        raise ImageLoadError(source, "not a recognised image format (corrupt file or not an image)") from e
    except _DECODE_ERRORS as e:
        raise ImageLoadError(source, f"cannot decode image (corrupt or truncated): {e}") from e
    except MemoryError as e:
        raise ImageLoadError(source, "image too large to decode in memory") from e


def load_line_art(path: str | Path, size: int | None = 224, *, trim: bool = True) -> Image.Image:
    """Open an image file and return it as normalised line art (see :func:`to_line_art`).

    Args:
        path: Image file (TIFF incl. 1-bit CCITT G4, PNG, JPEG, BMP, GIF, WebP, anything Pillow reads).
        size: Output side in pixels; ``None`` keeps the (trimmed, squared) native resolution.
        trim: Crop white margins to the drawing before squaring.

    Raises:
        ImageLoadError: Missing, unreadable, corrupt, truncated, vector, blank or oversized files.
    """
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(p, "file not found")
    if not p.is_file():
        raise ImageLoadError(p, "not a regular file")
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise ImageLoadError(p, f"cannot read file ({e.strerror or e})") from e
    if not head:
        raise ImageLoadError(p, "empty file (0 bytes)")
    kind = _sniff_vector(head)
    if kind is None and p.suffix.lower() in VECTOR_EXTENSIONS:
        kind = p.suffix.lower().lstrip(".").upper()
    if kind:
        raise ImageLoadError(p, _vector_reason(kind))
    return _open_line_art(str(p), p, size, trim)


def image_from_bytes(data: bytes, size: int | None = 224, *, trim: bool = True, source: str = "<bytes>") -> Image.Image:
    """:func:`load_line_art` for an encoded image held in memory (e.g. an uploaded query image).

    Raises:
        ImageLoadError: Same reasons as :func:`load_line_art`.
    """
    if not data:
        raise ImageLoadError(source, "empty image data (0 bytes)")
    kind = _sniff_vector(data[:4096])
    if kind:
        raise ImageLoadError(source, _vector_reason(kind))
    return _open_line_art(source, io.BytesIO(data), size, trim)


def to_line_art(img: Image.Image, size: int | None = 224, *, trim: bool = True, source: str = "<image>") -> Image.Image:
    """Normalise an opened image to grayscale line art: dark lines on white, trimmed, squared, resized.

    Args:
        img: Any Pillow image (it is fully decoded here, so truncation surfaces as an error).
        size: Output side in pixels; ``None`` keeps the native resolution (still trimmed and squared).
        trim: Crop white margins to the ink's bounding box (plus a small margin) before squaring.
        source: Name used in error messages (the file path for files, e.g. ``"<query>"`` otherwise).

    Raises:
        ImageLoadError: Undecodable, truncated, oversized or blank (no ink) images.
    """
    w, h = img.size
    if Image.MAX_IMAGE_PIXELS is not None and w * h > Image.MAX_IMAGE_PIXELS:
        raise ImageLoadError(source, _bomb_reason(w, h))
    if w < 1 or h < 1:
        raise ImageLoadError(source, f"image has no pixels ({w}x{h})")
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        img.load()
        if img.getexif().get(0x0112, 1) in range(2, 9):  # EXIF orientation (photos of drawings used as queries)
            img = ImageOps.exif_transpose(img)
        gray = _to_gray(img)
    except ImageLoadError:
        raise
    except _DECODE_ERRORS as e:
        raise ImageLoadError(source, f"cannot decode image (corrupt or truncated): {e}") from e

    # Polarity from a subsample (cheap on 300 dpi sheets); ink and bbox from every pixel.
    step = max(1, max(gray.size) // 512)
    sample = gray.resize((max(1, gray.width // step), max(1, gray.height // step)), Image.Resampling.NEAREST)
    if _median_from_hist(sample.histogram()) < 128 and _median_from_hist(_border_histogram(gray)) < 128:
        gray = ImageOps.invert(gray)
    bbox = gray.point(_INK_LUT).getbbox()
    if bbox is None:
        raise ImageLoadError(source, "blank page: no drawing found")

    if trim:
        if bbox != (0, 0, gray.width, gray.height):
            gray = gray.crop(bbox)
        margin = max(2, round(MARGIN_FRACTION * max(gray.size)))
    else:
        margin = 0

    cw, ch = gray.size
    side = max(cw, ch) + 2 * margin
    if size is not None:
        scale = size / side
        nw, nh = max(1, round(cw * scale)), max(1, round(ch * scale))
        if (nw, nh) != (cw, ch):
            gray = gray.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
        side, cw, ch = size, nw, nh
    canvas = Image.new("L", (side, side), 255)
    canvas.paste(gray, ((side - cw) // 2, (side - ch) // 2))
    return canvas


def _border_histogram(gray: Image.Image, width: int = 2) -> list[int]:
    """Histogram of the outermost ``width`` pixels on all four sides (the paper, on a drawing sheet)."""
    w, h = gray.size
    t = min(width, w, h)
    boxes = [(0, 0, w, t), (0, h - t, w, h), (0, 0, t, h), (w - t, 0, w, h)]
    out = [0] * 256
    for box in boxes:
        for i, c in enumerate(gray.crop(box).histogram()):
            out[i] += c
    return out


def _median_from_hist(hist: list[int]) -> int:
    half = sum(hist) / 2
    acc = 0
    for value, count in enumerate(hist):
        acc += count
        if acc >= half:
            return value
    return 255


def _to_gray(img: Image.Image) -> Image.Image:
    """Convert any mode to ``"L"``; transparency is composited on white."""
    mode = img.mode
    if mode == "L":
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 255.0)
        lo = min(float(arr.min()), 0.0)
        scaled = np.clip((arr - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L")
    return img.convert("RGB").convert("L")
