"""Reader for a generic image folder: images plus an optional sidecar table, or one sub-folder per class.

Three layouts, tried in this order:

1. **Sidecar**: ``metadata.jsonl``, ``metadata.json`` (a list of objects), ``metadata.csv``, or else the only
   ``*.csv`` / ``*.jsonl`` in the folder (or the file passed as ``sidecar=`` / as ``root``). One row per figure; only
   listed rows are read (other images in the folder, e.g. ``unlabelled_distractors/``, are ignored: read that
   folder on its own if you want them). Columns map to :class:`PatentFigure` fields through ``columns``
   (field -> column) on top of the built-in aliases in :data:`ALIASES` (``file``/``path``/``image``/``filename``
   -> ``image_path``, relative to the sidecar; ``patent``/``patent_number`` -> ``patent_id``; ...). Defaults:
   ``figure_id`` = the file stem; ``patent_id`` = the patent in a DeepPatent2-style file name, else the stem;
   ``object_name`` = the title lower-cased; ``class_label`` = ``class_column`` if given, else a
   class/label/category column, else the first USPC main class, else the object name. Other columns go to
   ``extra``. A JSON-lines file written with the PatentFigure field names plus ``file`` reads back as written.
2. **Class per folder** (no sidecar, images in sub-folders): ``class_label`` = ``object_name`` = the first-level
   folder name. ``patent_id`` comes from the file name when it looks like a patent number (``USD0534379.png``,
   ``USD0534379_2.png``, DeepPatent2 names); otherwise it is ``<folder>_<stem>`` so that ``chair/001.png`` and
   ``lamp/001.png`` stay distinct.
3. **Flat images** (no sidecar, no class folders): ``patent_id`` from the file name as above, else the stem.

A figure key (``patent_id/figure_id``) seen twice is reported and the second one skipped.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pir.ingest.confine import may_open
from pir.ingest.deeppatent2 import parse_deeppatent2_filename
from pir.ingest.normalize import (
    SIDECAR_NAMES,
    clean,
    is_image,
    is_vector,
    normalize_patent_id,
    parse_date,
    split_codes,
    vector_issue,
)
from pir.ingest.schema import PatentFigure, ReadIssue, main_class

#: Built-in column aliases (case-insensitive), per PatentFigure field, in order of preference.
ALIASES: dict[str, tuple[str, ...]] = {
    "image_path": ("image_path", "file", "path", "image", "filename", "file_name", "image_file", "img", "figure_file"),
    "patent_id": ("patent_id", "patent", "patent_number", "patentid", "patent_no", "publication_number"),
    "figure_id": ("figure_id", "figure", "fig", "figid", "fig_id"),
    "title": ("title", "invention_title", "object_title"),
    "object_name": ("object_name", "object", "object_infer"),
    "viewpoint": ("viewpoint", "view", "aspect"),
    "uspc": ("uspc", "uspc_codes"),
    "locarno": ("locarno", "locarno_class"),
    "cpc": ("cpc", "cpc_codes"),
    "publication_date": ("publication_date", "date", "pub_date", "patentdate", "publication_dat"),
    "description": ("description", "caption"),
    "class_label": ("class_label", "class", "label", "category"),
    "source_format": ("source_format",),
}
_LIST_FIELDS = ("uspc", "locarno", "cpc")
_SOURCE_FORMATS = ("uspto_raw", "deeppatent2", "generic", "synthetic")
_PATENT_LIKE = re.compile(r"^(?:[A-Z]{2})?(?:D|RE|PP)?\d{5,}(?:[A-Z]\d?)?$", re.IGNORECASE)
_PATENT_FIG = re.compile(r"^(?P<patent>(?:[A-Z]{2})?(?:D|RE|PP)?\d{5,})[_](?P<fig>[A-Za-z]{0,4}\d+[A-Za-z]?)$", re.I)


def detect(root: Path, dirs: list[Path]) -> bool:
    """A single file, or a folder with a ``metadata.jsonl`` / ``.json`` / ``.csv`` sidecar (explicit metadata wins)."""
    return root.is_file() or any((root / name).is_file() for name in SIDECAR_NAMES)


def read_generic(
    root: Path,
    *,
    issues: list[ReadIssue],
    columns: dict[str, str] | None = None,
    class_column: str | None = None,
    sidecar: str | Path | None = None,
    normalize_ids: bool = True,
    **_: object,
) -> Iterator[PatentFigure]:
    """Yield the figures of a generic folder (see the module docstring for the three layouts).

    Args:
        root: A folder, a single image, or a sidecar file (CSV / JSON lines).
        issues: Receives bad rows, missing images, unusable sidecars and duplicate keys.
        columns: PatentFigure field -> column name, overriding the built-in aliases.
        class_column: Column that gives ``class_label`` (e.g. ``"uspc_main_class"``).
        sidecar: Explicit sidecar file (default: discovered in ``root``).
        normalize_ids: Normalise patent ids with :func:`~pir.ingest.normalize.normalize_patent_id`.
    """
    columns = dict(columns or {})
    unknown = set(columns) - set(ALIASES)
    if unknown:
        raise ValueError(f"columns: unknown PatentFigure field(s) {sorted(unknown)}; known: {sorted(ALIASES)}")
    return _iter_generic(root, issues, columns, class_column, sidecar, normalize_ids)


def _iter_generic(
    root: Path,
    issues: list[ReadIssue],
    columns: dict[str, str],
    class_column: str | None,
    sidecar: str | Path | None,
    normalize_ids: bool,
) -> Iterator[PatentFigure]:
    seen: dict[str, str] = {}  # figure key -> where it was first read
    if root.is_file() and not is_image(root):
        sidecar = root
        root = root.parent
    side = Path(sidecar) if sidecar else (None if root.is_file() else _find_sidecar(root, issues))
    if side is not None:
        figures = _read_sidecar(side, issues, columns, class_column, normalize_ids)
    elif root.is_file():
        figures = iter([_figure_from_name(root, None, normalize_ids)])
    else:
        figures = _read_folder(root, issues, normalize_ids)
    for fig, where in figures:
        if fig.key in seen:
            issues.append(ReadIssue(where, f"duplicate figure {fig.key} (first read from {seen[fig.key]}); skipped"))
            continue
        seen[fig.key] = where
        yield fig


def _find_sidecar(root: Path, issues: list[ReadIssue]) -> Path | None:
    for name in SIDECAR_NAMES:
        if (root / name).is_file():
            return root / name
    for ext in (".csv", ".jsonl"):
        found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ext)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found[:5])
            issues.append(ReadIssue(str(root), f"several {ext} files ({names}); none used as metadata (pass sidecar=)"))
    return None


# --------------------------------------------------------------------------------------------------------------
# Sidecar rows
# --------------------------------------------------------------------------------------------------------------


def _rows(path: Path, issues: list[ReadIssue]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, row) pairs of a CSV, JSON-lines or JSON-list file; bad lines are reported."""
    suffix = path.suffix.lower()
    if not may_open(path):
        return
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                for i, row in enumerate(csv.DictReader(f), start=2):
                    if None in row:
                        issues.append(ReadIssue(f"{path}:{i}", "more values than header columns; skipped"))
                        continue
                    yield f"{path}:{i}", row
        elif suffix == ".jsonl":
            with open(path, encoding="utf-8-sig") as f:
                for i, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        issues.append(ReadIssue(f"{path}:{i}", f"invalid JSON ({e.msg}); skipped"))
                        continue
                    if not isinstance(row, dict):
                        issues.append(ReadIssue(f"{path}:{i}", "line is not a JSON object; skipped"))
                        continue
                    yield f"{path}:{i}", row
        else:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            if not isinstance(data, list):
                issues.append(ReadIssue(str(path), "expected a JSON list of objects; file skipped"))
                return
            for i, row in enumerate(data):
                if not isinstance(row, dict):
                    issues.append(ReadIssue(f"{path}#{i}", "record is not a JSON object; skipped"))
                    continue
                yield f"{path}#{i}", row
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError) as e:
        issues.append(ReadIssue(str(path), f"unreadable metadata file ({e})"))


def _pick(row: dict[str, Any], lower: dict[str, str], field: str, columns: dict[str, str]) -> Any:
    """The value of ``field`` in ``row`` via the user's column or the aliases (``None`` when absent)."""
    if field in columns:
        key = lower.get(columns[field].lower())
        return row.get(key) if key is not None else None
    for alias in ALIASES[field]:
        key = lower.get(alias)
        if key is not None:
            return row[key]
    return None


def _read_sidecar(
    path: Path,
    issues: list[ReadIssue],
    columns: dict[str, str],
    class_column: str | None,
    normalize_ids: bool,
) -> Iterator[tuple[PatentFigure, str]]:
    if not path.is_file():
        issues.append(ReadIssue(str(path), "metadata file not found"))
        return
    base = path.parent
    for where, row in _rows(path, issues):
        try:
            fig = _row_to_figure(row, base, columns, class_column, normalize_ids)
        except ValidationError as e:
            err = e.errors()[0]
            issues.append(ReadIssue(where, f"{'.'.join(map(str, err['loc']))}: {err['msg']}; skipped"))
            continue
        except ValueError as e:
            issues.append(ReadIssue(where, f"{e}; skipped"))
            continue
        yield fig, where


class _Row:
    """One metadata row: values by field (user columns, then aliases), remembering which columns were used."""

    def __init__(self, row: dict[str, Any], columns: dict[str, str]) -> None:
        self.row, self.columns = row, columns
        self.lower = {str(k).strip().lower(): k for k in row}
        self.used: set[str] = set()

    def pick(self, field: str) -> Any:
        """The value of ``field`` (``None`` when absent); its column counts as used."""
        value = _pick(self.row, self.lower, field, self.columns)
        for alias in (self.columns.get(field, ""), *ALIASES[field]):
            if alias and alias.lower() in self.lower:
                self.used.add(self.lower[alias.lower()])
                break
        return value

    def extra(self) -> dict[str, Any]:
        """The row's ``extra`` dict, plus every non-empty column no field used."""
        extra: dict[str, Any] = {}
        given = self.row.get("extra")
        if isinstance(given, dict):
            extra.update(given)
            self.used.add("extra")
        for k, v in self.row.items():
            value = clean(v) if isinstance(v, str) else v
            if k not in self.used and value is not None:
                extra[str(k)] = value
        return extra


def _row_image(r: _Row, base: Path) -> Path:
    """The row's image file (relative to ``base``); ValueError when missing, vector or not found."""
    file_value = clean(r.pick("image_path"))
    if file_value is None:
        raise ValueError("no image file column (file/path/image/filename) or empty value")
    image = Path(file_value)
    if not image.is_absolute():
        image = base / image
    if is_vector(image):
        raise ValueError(vector_issue(image).reason)
    if not image.is_file():
        raise ValueError(f"image not found: {image}")
    return image


def _row_ids(r: _Row, image: Path, normalize_ids: bool) -> tuple[str, str]:
    """(patent id, figure id) from the row, else from the image's file name."""
    name_fig = _figure_from_name(image, None, normalize_ids)[0]
    raw_patent = clean(r.pick("patent_id"))
    patent_id = (normalize_patent_id(raw_patent) if normalize_ids else raw_patent) if raw_patent else None
    figure_id = clean(r.pick("figure_id"))
    if patent_id is None:
        patent_id, figure_id = name_fig.patent_id, figure_id or name_fig.figure_id
    return patent_id, figure_id or image.stem


def _row_class(r: _Row, class_column: str | None, uspc: list[str], object_name: str | None) -> str | None:
    """The class label: ``class_column``'s value, else the row's label, else the main USPC class or object name."""
    if class_column is not None:
        key = r.lower.get(class_column.lower())
        if key is None:
            raise ValueError(f"class column {class_column!r} not in the row (columns: {', '.join(map(str, r.row))})")
        r.used.add(key)
        return clean(r.row[key])
    class_label = clean(r.pick("class_label"))
    if class_label is None:
        class_label = main_class(uspc[0]) if uspc else object_name
    return class_label


def _row_to_figure(
    row: dict[str, Any], base: Path, columns: dict[str, str], class_column: str | None, normalize_ids: bool
) -> PatentFigure:
    r = _Row(row, columns)
    image = _row_image(r, base)
    patent_id, figure_id = _row_ids(r, image, normalize_ids)
    title = clean(r.pick("title"))
    object_name = clean(r.pick("object_name"))
    object_name = object_name.lower() if object_name else (title.lower() if title else None)
    codes = {f: split_codes(r.pick(f)) for f in _LIST_FIELDS}
    class_label = _row_class(r, class_column, codes["uspc"], object_name)
    source = clean(r.pick("source_format"))
    if source is not None and source not in _SOURCE_FORMATS:
        raise ValueError(f"source_format {source!r} is not one of {', '.join(_SOURCE_FORMATS)}")
    raw_date = r.pick("publication_date")
    publication_date = parse_date(raw_date)
    if publication_date is None and clean(raw_date) is not None:
        raise ValueError(f"unparseable publication date {raw_date!r}")
    viewpoint = clean(r.pick("viewpoint"))
    description = clean(r.pick("description"))
    return PatentFigure(
        patent_id=patent_id,
        figure_id=figure_id,
        image_path=image,
        title=title,
        object_name=object_name,
        viewpoint=viewpoint,
        publication_date=publication_date,
        description=description,
        class_label=class_label,
        source_format=source or "generic",
        extra=r.extra(),
        **codes,
    )


# --------------------------------------------------------------------------------------------------------------
# Folders without metadata
# --------------------------------------------------------------------------------------------------------------


def _figure_from_name(path: Path, folder_class: str | None, normalize_ids: bool) -> tuple[PatentFigure, str]:
    """A figure whose ids come from its file name (DeepPatent2 name, ``<patent>_<fig>``, a patent number, a stem)."""
    stem = path.stem
    extra: dict[str, Any] = {}
    day = None
    try:
        meta = parse_deeppatent2_filename(path.name)
        patent_id, figure_id, day = meta["patent_id"], meta["figure_id"], meta["date"]
    except ValueError:
        m = _PATENT_FIG.match(stem)
        if m:
            patent_id, figure_id = m.group("patent"), m.group("fig")
        elif _PATENT_LIKE.match(stem):
            patent_id, figure_id = stem, stem
        else:
            patent_id, figure_id = (f"{folder_class}_{stem}" if folder_class else stem), stem
            normalize_ids = False
        if normalize_ids:
            patent_id = normalize_patent_id(patent_id)
    fig = PatentFigure(
        patent_id=patent_id,
        figure_id=figure_id,
        image_path=path,
        object_name=folder_class,
        class_label=folder_class,
        publication_date=day,
        source_format="generic",
        extra=extra,
    )
    return fig, str(path)


def _read_folder(root: Path, issues: list[ReadIssue], normalize_ids: bool) -> Iterator[tuple[PatentFigure, str]]:
    entries = sorted(root.iterdir())
    for p in entries:
        if p.name.startswith(".") or not p.is_file():
            continue
        if is_vector(p):
            issues.append(vector_issue(p))
        elif is_image(p):
            yield _figure_from_name(p, None, normalize_ids)
    for d in entries:
        if d.name.startswith(".") or not d.is_dir() or not may_open(d):
            continue  # a folder linked from outside is reported once, by its own path; its files are never listed
        for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
            dirnames[:] = sorted(x for x in dirnames if not x.startswith(".") and may_open(Path(dirpath) / x))
            for f in sorted(filenames):
                p = Path(dirpath) / f
                if f.startswith("."):
                    continue
                if is_vector(p):
                    issues.append(vector_issue(p))
                elif is_image(p):
                    yield _figure_from_name(p, d.name, normalize_ids)


read = read_generic
