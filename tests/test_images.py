"""Tests of pir.ingest.images: formats, bad files, the decompression-bomb guard, trimming and padding."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pir.ingest.images import (
    ImageLoadError,
    image_from_bytes,
    load_line_art,
    to_line_art,
)
from pir.ingest.normalize import IMAGE_EXTENSIONS

GOFIGURE = "gofigure_format_examples"
STEM = "USD0873711-20200128-D00000"


def _drawing(size: tuple[int, int] = (400, 300), box: tuple[int, int, int, int] = (100, 50, 300, 250)) -> Image.Image:
    """White page with a black rectangle outline and a diagonal, mode L."""
    img = Image.new("L", size, 255)
    d = ImageDraw.Draw(img)
    d.rectangle(box, outline=0, width=4)
    d.line(box, fill=0, width=4)
    return img


def _ink_bbox(img: Image.Image, thr: int = 128) -> tuple[int, int, int, int] | None:
    return img.point(lambda v: 255 if v < thr else 0).getbbox()


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A valid 1-bit PNG of the given size whose IDAT holds all-white rows (compresses to a few KB)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------------------------


def test_real_uspto_g4_tiff_sheet(shared_data: Path) -> None:
    path = shared_data / "impact_uspto_design_raw/sample_data/USD0907292-20210105/USD0907292-20210105-D00001.TIF"
    with Image.open(path) as raw:
        assert raw.mode == "1" and raw.info.get("compression") == "group4"
    out = load_line_art(path)
    assert out.mode == "L" and out.size == (224, 224)
    arr = np.asarray(out)
    assert arr.min() < 64 and np.median(arr) == 255  # dark lines on white
    # Trimmed: the ink touches (nearly) two opposite borders of the square, up to the margin.
    x0, y0, x1, y1 = _ink_bbox(out, 250)
    assert y0 <= 8 and y1 >= 216


def test_synthetic_group4_tiff(tmp_path: Path) -> None:
    img = _drawing().convert("1")
    path = tmp_path / "sheet.tif"
    img.save(path, compression="group4")
    with Image.open(path) as check:
        assert check.info["compression"] == "group4"
    out = load_line_art(path, size=128)
    assert out.size == (128, 128) and out.mode == "L"
    assert np.asarray(out).min() == 0


def test_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (300, 200), (0, 0, 0, 0))  # transparent *black* background
    ImageDraw.Draw(rgba).rectangle((50, 50, 250, 150), outline=(0, 0, 0, 255), width=5)
    path = tmp_path / "rgba.png"
    rgba.save(path)
    arr = np.asarray(load_line_art(path, size=64))
    assert np.median(arr) == 255 and arr.min() < 50
    assert arr[32, 32] == 255  # inside the rectangle: transparent -> white


def test_jpeg_and_palette_and_1bit_png_agree(tmp_path: Path) -> None:
    base = _drawing()
    paths = {}
    for name, img, kw in [
        ("l.png", base, {}),
        ("rgb.jpg", base.convert("RGB"), {"quality": 92}),
        ("p.png", base.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4), {}),
        ("one.png", base.convert("1"), {}),
        ("gray.bmp", base, {}),
        ("gray.webp", base, {"lossless": True}),
    ]:
        paths[name] = tmp_path / name
        img.save(paths[name], **kw)
    with Image.open(paths["p.png"]) as p:
        assert p.mode == "P"
    ref = np.asarray(load_line_art(paths["l.png"]), dtype=float)
    for name, path in paths.items():
        out = np.asarray(load_line_art(path), dtype=float)
        assert np.abs(out - ref).mean() < 2.0, name


def test_paletted_png_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (100, 100), 0)
    img.putpalette([0, 0, 0, 0, 0, 128] + [0] * 762)  # index 0: black (transparent), index 1: dark blue lines
    ImageDraw.Draw(img).rectangle((20, 20, 80, 80), outline=1, width=3)
    path = tmp_path / "ptrans.png"
    img.save(path, transparency=0)
    with Image.open(path) as check:
        assert check.mode == "P" and check.info["transparency"] == 0
    arr = np.asarray(load_line_art(path, size=64, trim=False))
    assert arr[0, 0] == 255 and arr[32, 32] == 255  # transparent black -> white page
    assert arr.min() < 60  # the lines stay dark


def test_gofigure_encodings_near_identical(shared_data: Path) -> None:
    folder = shared_data / GOFIGURE
    outs = {ext: np.asarray(load_line_art(folder / f"{STEM}.{ext}"), dtype=float) for ext in ("png", "tiff", "jpg")}
    assert np.abs(outs["tiff"] - outs["png"]).mean() < 0.5
    assert np.abs(outs["jpg"] - outs["png"]).mean() < 1.0
    other = np.asarray(load_line_art(folder / "USD0873712-20200128-D00000.png"), dtype=float)
    assert np.abs(other - outs["png"]).mean() > 2 * np.abs(outs["jpg"] - outs["png"]).mean()


@pytest.mark.parametrize("ext, kind", [("pdf", "PDF"), ("svg", "SVG")])
def test_gofigure_vector_formats_refused(shared_data: Path, ext: str, kind: str) -> None:
    path = shared_data / GOFIGURE / f"{STEM}.{ext}"
    with pytest.raises(ImageLoadError) as e:
        load_line_art(path)
    assert e.value.path == str(path)
    assert kind in e.value.reason and "vector" in e.value.reason
    assert str(e.value) == f"{path}: {e.value.reason}"


def test_vector_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "drawing.png"
    path.write_bytes(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0L1 1"/></svg>')
    with pytest.raises(ImageLoadError, match="SVG is a vector"):
        load_line_art(path)


# ---------------------------------------------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------------------------------------------


def test_gofigure_corrupt_and_empty(shared_data: Path) -> None:
    corrupt = shared_data / GOFIGURE / "corrupt.png"
    with pytest.raises(ImageLoadError, match="not a recognised image format") as e:
        load_line_art(corrupt)
    assert e.value.path == str(corrupt)
    with pytest.raises(ImageLoadError, match="blank page: no drawing found"):
        load_line_art(shared_data / GOFIGURE / "empty.png")


def test_truncated_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400), dtype=np.uint8))
    noisy.save(buf, format="PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_line_art(path)


def test_missing_empty_text_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_line_art(tmp_path / "nope.png")
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_line_art(tmp_path / "zero.png")
    (tmp_path / "notes.jpg").write_text("not an image at all")
    with pytest.raises(ImageLoadError, match="not a recognised image format"):
        load_line_art(tmp_path / "notes.jpg")
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_line_art(tmp_path)


def test_error_pickles_with_path_and_reason() -> None:
    import pickle

    e = pickle.loads(pickle.dumps(ImageLoadError("/x/a.png", "blank page: no drawing found")))
    assert (e.path, e.reason, str(e)) == (
        "/x/a.png",
        "blank page: no drawing found",
        "/x/a.png: blank page: no drawing found",
    )


def test_faint_page_is_blank() -> None:
    faint = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(faint).line((10, 10, 190, 190), fill=240, width=3)
    with pytest.raises(ImageLoadError, match="<query>: blank page"):
        to_line_art(faint, source="<query>")


# ---------------------------------------------------------------------------------------------------------------
# Size limits
# ---------------------------------------------------------------------------------------------------------------


def test_huge_image_refused_by_bomb_guard(tmp_path: Path) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    assert limit is not None and 12000 * 12000 > limit  # warning range of Pillow: refused here too
    path = tmp_path / "huge.png"
    _png_header_only(path, 12000, 12000)
    with pytest.raises(ImageLoadError, match="exceeds the decompression-bomb limit"):
        load_line_art(path)
    path2 = tmp_path / "bomb.png"
    _png_header_only(path2, 20000, 10000)  # > 2x the limit: Pillow's own DecompressionBombError
    with pytest.raises(ImageLoadError, match="exceeds the decompression-bomb limit"):
        load_line_art(path2)
    assert Image.MAX_IMAGE_PIXELS == limit  # the guard is untouched


def test_bomb_check_without_file() -> None:
    img = Image.new("1", (10000, 10000), 1)  # 100 M pixels, built in memory (no Image.open)
    with pytest.raises(ImageLoadError, match="<big>: .*decompression-bomb limit"):
        to_line_art(img, source="<big>")


def test_large_legal_1bit_tiff_loads_fast(tmp_path: Path) -> None:
    import time

    img = Image.new("1", (8000, 8000), 1)
    d = ImageDraw.Draw(img)
    d.rectangle((1000, 2000, 6000, 7000), outline=0, width=3)
    d.line((1000, 2000, 6000, 7000), fill=0, width=2)
    path = tmp_path / "big.tif"
    img.save(path, compression="group4")
    del img
    t = time.perf_counter()
    out = load_line_art(path)
    assert time.perf_counter() - t < 5.0
    assert out.size == (224, 224) and np.asarray(out).min() < 200


# ---------------------------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------------------------


def test_trim_and_pad_geometry_native_size() -> None:
    img = _drawing(size=(400, 300), box=(100, 50, 300, 150))
    a0, b0, a1, b1 = _ink_bbox(img)
    out = to_line_art(img, size=None)
    side = out.width
    assert out.size == (side, side)
    x0, y0, x1, y1 = _ink_bbox(out)
    ink_w, ink_h = x1 - x0, y1 - y0
    assert (ink_w, ink_h) == (a1 - a0, b1 - b0)  # cropped, not scaled
    margin = (side - ink_w) // 2
    assert 2 <= margin <= 8
    assert abs(x0 - (side - x1)) <= 1 and abs(y0 - (side - y1)) <= 1  # centred both ways


def test_trim_and_pad_geometry_resized() -> None:
    out = to_line_art(_drawing(size=(400, 300), box=(100, 50, 300, 150)), size=100)
    assert out.size == (100, 100)
    x0, y0, x1, y1 = _ink_bbox(out)
    assert x1 - x0 >= 90  # the long side fills the square up to the margin
    assert 40 <= y1 - y0 <= 56  # aspect ratio kept (about 2:1)
    assert abs(y0 - (100 - y1)) <= 1


def test_no_trim_keeps_page() -> None:
    img = _drawing(size=(400, 200), box=(10, 10, 60, 60))
    out = to_line_art(img, size=None, trim=False)
    assert out.size == (400, 400)
    a0, b0, _, _ = _ink_bbox(img)
    x0, y0, _, _ = _ink_bbox(out)
    assert (x0, y0) == (a0, b0 + 100)  # page pasted unchanged, centred vertically


def test_white_on_black_is_inverted() -> None:
    neg = Image.eval(_drawing(), lambda v: 255 - v)
    out = np.asarray(to_line_art(neg, size=64))
    assert np.median(out) == 255 and out.min() < 60


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "LA", "CMYK", "RGB", "1"])
def test_other_modes(mode: str) -> None:
    base = _drawing()
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base, dtype=np.uint16) * 257).astype(np.uint16))
        assert img.mode == "I;16"
    else:
        img = base.convert(mode)
    out = np.asarray(to_line_art(img, size=64), dtype=float)
    ref = np.asarray(to_line_art(base, size=64), dtype=float)
    assert np.abs(out - ref).mean() < 2.0, mode


def test_black_silhouette_on_white_is_not_inverted() -> None:
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).rectangle((10, 10, 190, 190), fill=0)  # mostly black, white paper at the border
    out = np.asarray(to_line_art(img, size=None))
    assert out[out.shape[0] // 2, out.shape[1] // 2] == 0 and out[0, 0] == 255


def test_exif_orientation_applied(tmp_path: Path) -> None:
    tall = Image.new("L", (100, 300), 255)
    ImageDraw.Draw(tall).rectangle((20, 20, 80, 280), outline=0, width=4)  # a tall box
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise -> a wide box
    path = tmp_path / "photo.jpg"
    tall.convert("RGB").save(path, exif=exif, quality=95)
    out = load_line_art(path, size=None)
    x0, y0, x1, y1 = _ink_bbox(out)
    assert x1 - x0 > 2 * (y1 - y0)


def test_query_image_from_bytes_and_multiframe(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _drawing().save(buf, format="PNG")
    assert image_from_bytes(buf.getvalue(), size=32).size == (32, 32)
    with pytest.raises(ImageLoadError, match="<upload>: not a recognised"):
        image_from_bytes(b"hello", source="<upload>")
    frames = [_drawing(), Image.new("L", (400, 300), 255)]
    path = tmp_path / "multi.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert np.asarray(load_line_art(path, size=32)).min() < 128  # first page is used
    assert {".tif", ".png", ".jpg"} <= IMAGE_EXTENSIONS
