"""Helpers shared by the readers: value cleaning, patent id / viewpoint / date normalisation, file sniffing.

Nothing here dispatches to a reader, so every reader module imports from here (never from
:mod:`pir.ingest.readers`, which imports the readers). No torch, no PIL.

* Patent ids are normalised with :func:`normalize_patent_id`: upper case, no spaces or commas, country ``US`` added
  to bare US numbers and zero-padded like USPTO file names (``D907292`` / ``US D907,292 S`` / ``USD0907292-20210105``
  -> ``USD0907292``; ``10524395`` -> ``US10524395``). The same function serves ``--exclude-patent``.
* Viewpoints are normalised with :func:`normalize_viewpoint` to a small vocabulary (``perspective``, ``front``,
  ``rear``, ``left side``, ``right side``, ``side``, ``top``, ``bottom``, ``cross-section``, ``exploded``,
  ``detail``, ``reference``, ``elevation``, ``plan``) or ``None``.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pir.ingest.confine import may_open
from pir.ingest.schema import ReadIssue

#: Extensions read as raster drawings, and vector/document drawings (reported, never rasterised); defined here so
#: that the readers need no PIL (:mod:`pir.ingest.images` uses the same sets).
IMAGE_EXTENSIONS = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
VECTOR_EXTENSIONS = {".pdf", ".svg", ".svgz", ".eps", ".ps", ".emf", ".wmf", ".dxf", ".dwg"}

#: File names of the generic reader's sidecar metadata, in order of preference.
SIDECAR_NAMES = ("metadata.jsonl", "metadata.json", "metadata.csv")


_MISSING = {"", "null", "none", "nan", "n/a", "na"}


def clean(value: Any) -> str | None:
    """A metadata value as a stripped string, or ``None`` for the usual spellings of "missing".

    Missing: ``None``, ``""``, ``"NULL"``/``"null"``, ``"None"``, ``"NaN"``, ``"N/A"`` (case-insensitive).
    """
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    s = re.sub(r"\s+", " ", str(value)).strip()
    return None if s.lower() in _MISSING else s


_US_NUMBER = re.compile(r"(?:US)?(D|RE|PP|H|T)?(\d{1,8})(?:[A-Z]\d?)?")
_OTHER_NUMBER = re.compile(r"([A-Z]{2})(\d{4,})(?:[A-Z]\d?)?")


def normalize_patent_id(raw: Any) -> str:
    """Canonical patent id: ``USD0907292``, ``US10524395``, ``USRE047890``; other countries kept (``EP1234567``).

    Removes spaces/commas/dots/slashes, a trailing ``-YYYYMMDD`` date and a trailing kind code (``S``, ``S1``,
    ``B2``, ``A1``, ...). US numbers (``US``-prefixed or bare) are zero-padded to 8 characters after ``US``, like
    USPTO's own file names (``D0907292``, ``10524395``, ``RE047890``). A value that does not look like a patent
    number (a generic file stem such as ``chair_01``) is returned unchanged apart from stripping.

    Raises:
        ValueError: Empty value.
    """
    s = clean(raw)
    if s is None:
        raise ValueError("empty patent id")
    compact = re.sub(r"[\s,./]", "", s.upper())
    compact = re.sub(r"-\d{8}$", "", compact)
    m = _US_NUMBER.fullmatch(compact)
    if m and (compact.startswith("US") or m.group(1) or compact[:1].isdigit()):
        prefix = m.group(1) or ""
        return f"US{prefix}{m.group(2).zfill(8 - len(prefix))}"
    m = _OTHER_NUMBER.fullmatch(compact)
    if m:
        return f"{m.group(1)}{m.group(2)}"
    return s


_VIEW_RULES: list[tuple[str, str]] = [
    (r"enlarged|detail|partial|close[- ]up|fragmentary|magnified", "detail"),
    (r"perspective|isometric|oblique|axonometric|3d view|three[- ]dimensional", "perspective"),
    (r"cross[- ]?section|sectional|\bsection\b|\bcut\b", "cross-section"),
    (r"exploded", "exploded"),
    (r"reference|environment|in use|use state|state of use", "reference"),
    (r"\bleft\b", "left side"),
    (r"\bright\b", "right side"),
    (r"\bfront\b|\bfrontal\b", "front"),
    (r"\brear\b|\bback\b|\brearward\b", "rear"),
    (r"\btop\b|\bupper\b|\bplan\b|\boverhead\b", "top"),
    (r"\bbottom\b|\bunderside\b|\blower\b|\bunder\b", "bottom"),
    (r"\bside\b|\blateral\b|\bprofile\b", "side"),
    (r"elevation", "elevation"),
]
_VIEW_HEAD_STOP = re.compile(
    r"\b(views?|of|thereof|showing|illustrating|according|with|in|taken|for|depicting|wherein|where|that)\b|[;:]"
)
_FIG_LABEL = re.compile(
    r"^\s*(?:the\s+)?(?:figures?|figs?\.?|reproductions?)\s*[\dA-Z.\-, and]*?\s*(?:is|are|provides|shows)?\s*",
    re.IGNORECASE,
)


def normalize_viewpoint(text: Any) -> str | None:
    """Map a view description (``"FIG. 3 is a left side elevational view thereof"``, ``"perspective view"``,
    ``"1.4 : Left"``) to a small vocabulary; ``None`` when no known view word is found.

    Only the head of a sentence is read (up to ``view``/``of``/``thereof``/``showing``/...), so words describing the
    object ("... a shoe with a front strap") do not leak into the viewpoint.
    """
    s = clean(text)
    if s is None:
        return None
    s = s.lower()
    s = re.sub(r"^\s*\d+(?:\.\d+)*\s*:?\s*", "", s)  # Hague style "1.4 : Left" / "1.8 is ..."
    s = _FIG_LABEL.sub("", s, count=1)
    s = re.sub(r"^(?:an?|the|another|a further|an additional)\s+", "", s)
    stop = _VIEW_HEAD_STOP.search(s)
    head = s[: stop.start()] if stop else s
    if not head.strip() and stop and stop.group(0).startswith("view"):
        return None
    for pattern, name in _VIEW_RULES:
        if re.search(pattern, head):
            return name
    return None


def parse_date(value: Any) -> date | None:
    """Parse ``20200107``, ``"2020-01-07"``, ``"2020/01/07"``, ``"07.01.2020"``, date/datetime; ``None`` if invalid."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    s = clean(value)
    if s is None:
        return None
    s = s.split("T", 1)[0].split(" ", 1)[0]
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%Y.%m.%d"):
        try:
            return datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    m = re.fullmatch(r"(\d{4})(\d{2})00", s)  # USPTO "month only" dates (19861100)
    if m and 1 <= int(m.group(2)) <= 12:
        return date(int(m.group(1)), int(m.group(2)), 1)
    return None


def split_codes(value: Any) -> list[str]:
    """A class-code field as a list: JSON list, Python list, or a string separated by ``;``, ``|`` or ``,``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [clean(v) for v in value]
        return [v for v in items if v]
    s = clean(value)
    if s is None:
        return []
    if s.startswith("[") and s.endswith("]"):
        import json

        try:
            parsed = json.loads(s)
        except ValueError:
            try:
                import ast

                parsed = ast.literal_eval(s)
            except (ValueError, SyntaxError):
                parsed = None
        if isinstance(parsed, list):
            return split_codes(parsed)
        s = s[1:-1]
    out = [clean(p.strip("'\" ")) for p in re.split(r"[;|,]", s)]
    return [p for p in out if p]


def is_image(path: Path) -> bool:
    """Whether a file name has one of :data:`~pir.ingest.images.IMAGE_EXTENSIONS`."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_vector(path: Path) -> bool:
    """Whether a file name has a vector/document extension (PDF, SVG, ...)."""
    return path.suffix.lower() in VECTOR_EXTENSIONS


def vector_issue(path: Path) -> ReadIssue:
    """The issue reported for a vector drawing (PDF, SVG, ...) found where raster images are read."""
    return ReadIssue(
        str(path), f"{path.suffix.lstrip('.').upper()} drawings cannot be rasterised by pir; convert to PNG or TIFF"
    )


def _entries(root: Path, limit: int, *, dirs: bool) -> list[Path]:
    """Up to ``limit`` visible sub-folders (``dirs``) or files of ``root``, sorted; [] when it cannot be listed."""
    out: list[Path] = []
    try:
        with os.scandir(root) as it:
            for e in it:
                if (e.is_dir() if dirs else e.is_file()) and not e.name.startswith("."):
                    out.append(Path(e.path))
                    if len(out) >= limit:
                        break
    except OSError:
        return []
    return sorted(out)


def _subdirs(root: Path, limit: int) -> list[Path]:
    return _entries(root, limit, dirs=True)


def _dirs_breadth_first(root: Path, max_depth: int, max_dirs: int) -> list[Path]:
    """``root`` and its sub-folders, breadth first, at most ``max_depth`` levels and ``max_dirs`` folders."""
    out, level = [root], [root]
    for _ in range(max_depth):
        nxt: list[Path] = []
        for d in level:
            nxt += _subdirs(d, limit=max_dirs)
            if len(out) + len(nxt) >= max_dirs:
                break
        out += nxt[: max(0, max_dirs - len(out))]
        level = nxt
        if len(out) >= max_dirs or not level:
            break
    return out


def _files(root: Path, limit: int) -> list[Path]:
    return _entries(root, limit, dirs=False)


def _head(path: Path, n: int = 4096) -> str:
    if not may_open(path):
        return ""
    try:
        with open(path, "rb") as f:
            return f.read(n).decode("utf-8", "replace")
    except OSError:
        return ""


def looks_like_uspto_xml(path: Path) -> bool:
    """Whether a file's first 8 KB hold a USPTO ``<us-patent-grant`` element."""
    return "<us-patent-grant" in _head(path, 8192)


def looks_like_deeppatent2_json(path: Path) -> bool:
    """Whether a JSON file's first 8 KB mention DeepPatent2 record keys (``patentID``, ``figure_file``, ...)."""
    head = _head(path, 8192)
    return any(k in head for k in ('"patentID"', '"subfigure_file"', '"figure_file"', '"figid"'))
