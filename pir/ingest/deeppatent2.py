"""Reader for DeepPatent2: per-year JSON record lists with ``Original/`` sheets and ``Segmented/`` figures.

One record per figure (see ``shared/data/README.md``, "DeepPatent2 record format")::

    {"id": 17, "patentID": "USD0871741", "patentdate": "20200107", "figid": 6, "caption": "FIG. 6 is ...",
     "object": "lamp", "aspect": "front view", "object_title": "Lamp",
     "figure_file": "USD0871741-20200107-D00006.png", "subfigure_file": "USD0871741-20200107-D00006_6.png", ...}

Variations handled: a missing value may be an absent key, ``null``, ``""`` or ``"NULL"``; the object may be in
``object_infer``; ``figid`` may be an int or a string; image folders are named ``Original``,
``Original_2012/Original``, ``Segmented``, ``Segmentednew``, ... (any folder below the JSON's folder whose path
contains "original" or "segment"). The segmented figure is preferred; when it is missing the original sheet is used
(``figure_id`` = the sheet, records of one sheet merged into one figure, captions joined).

Without JSON records, images named like DeepPatent2 files are read from their names alone
(:func:`parse_deeppatent2_filename`); images referenced by no record are not read when records exist.

Ids: ``patent_id`` from ``patentID`` (normalised, ``USD0871741``), ``figure_id`` = ``<sheet>_<fig>``
(``D00006_6``) for a segmented figure, ``<sheet>`` (``D00006``) for an original sheet, so the JSON and the
file-name modes agree.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pir.ingest.confine import may_open
from pir.ingest.normalize import (
    IMAGE_EXTENSIONS,
    _files,
    clean,
    is_image,
    is_vector,
    looks_like_deeppatent2_json,
    normalize_patent_id,
    normalize_viewpoint,
    parse_date,
    vector_issue,
)
from pir.ingest.schema import PatentFigure, ReadIssue

_NAME = re.compile(
    r"^(?P<patent>[A-Z]+\d+(?:[A-Z]\d?)?)-(?P<date>\d{8})-(?P<sheet>D\d{5})(?:_(?P<fig>[^./\\]+))?"
    r"\.(?P<ext>png|tiff?|jpe?g|gif|bmp|webp)$",
    re.IGNORECASE,
)
_IMAGE_DIR_WORDS = ("original", "segment")


def parse_deeppatent2_filename(name: str | Path) -> dict[str, Any]:
    """Parse a DeepPatent2 image name (directories are ignored).

    ``USD0871741-20200107-D00006.png`` (an Original sheet) and ``USD0739807-20150929-D00004_5.png`` (a Segmented
    figure: sheet ``D00004``, FIG. 5).

    Returns:
        ``{"patent_id": "USD0739807", "date": date(2015, 9, 29), "sheet": "D00004", "fig": "5" | None,
        "figure_id": "D00004_5" | "D00004", "kind": "segmented" | "original"}``.

    Raises:
        ValueError: The name does not follow the DeepPatent2 naming.
    """
    base = re.split(r"[/\\]", str(name).strip())[-1]
    m = _NAME.match(base)
    if not m:
        raise ValueError(f"{base!r} is not a DeepPatent2 file name (<PATENTID>-<YYYYMMDD>-D<5 digits>[_<fig>].png)")
    day = parse_date(m.group("date"))
    if day is None:
        raise ValueError(f"{base!r}: invalid date {m.group('date')}")
    sheet = m.group("sheet").upper()
    fig = m.group("fig")
    return {
        "patent_id": normalize_patent_id(m.group("patent")),
        "date": day,
        "sheet": sheet,
        "fig": fig,
        "figure_id": f"{sheet}_{fig}" if fig else sheet,
        "kind": "segmented" if fig else "original",
    }


def detect(root: Path, dirs: list[Path]) -> bool:
    """A DeepPatent2 JSON record file, or (no CSV sidecar) image names that mostly follow DeepPatent2's naming."""
    if root.is_file():
        return False
    for d in dirs:
        for f in _files(d, limit=500):
            if f.suffix.lower() in (".json", ".jsonl") and looks_like_deeppatent2_json(f):
                return True
    if any(f.suffix.lower() == ".csv" for f in _files(root, limit=2000)):
        return False
    names: list[str] = []
    for d in dirs:
        names += [f.name for f in _files(d, limit=500) if f.suffix.lower() in IMAGE_EXTENSIONS]
        if len(names) >= 200:
            break
    if not names:
        return False
    parsed = 0
    for n in names[:200]:
        try:
            parse_deeppatent2_filename(n)
            parsed += 1
        except ValueError:
            pass
    return parsed >= 0.8 * min(len(names), 200)


def read_deeppatent2(
    root: Path,
    *,
    issues: list[ReadIssue],
    prefer: str = "segmented",
    **_: object,
) -> Iterator[PatentFigure]:
    """Yield DeepPatent2 figures from the JSON record files under ``root``, or from image names when there are none.

    Args:
        root: A DeepPatent2 year folder, a folder of year folders, or a folder of DeepPatent2-named images.
        issues: Receives unreadable JSON files, bad records and records whose images are missing.
        prefer: ``"segmented"`` (default) or ``"original"``: which image of a record to use when both exist.
    """
    if root.is_file() and root.suffix.lower() in (".json", ".jsonl"):
        yield from _read_json_file(root, issues, prefer)
        return
    if root.is_file():
        yield from _figures_by_name(root.parent, [root.name], issues)
        return
    json_files = _record_files(root)
    if json_files:
        for jf in json_files:
            yield from _read_json_file(jf, issues, prefer)
    else:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            yield from _figures_by_name(Path(dirpath), sorted(filenames), issues)


# --------------------------------------------------------------------------------------------------------------
# JSON records
# --------------------------------------------------------------------------------------------------------------


def _record_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not any(w in d.lower() for w in _IMAGE_DIR_WORDS)
        )
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if p.suffix.lower() in (".json", ".jsonl") and looks_like_deeppatent2_json(p):
                out.append(p)
    return out


def _load_records(path: Path) -> list[Any]:
    """The records of a JSON list, a ``{"...": [records]}`` wrapper, a dict of records, or JSON lines."""
    if not may_open(path):
        return []
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if "Extra data" not in str(e):
            raise
        return [json.loads(line) if line.strip() else None for line in text.splitlines()]
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1 and "patentID" not in data:
            return lists[0]
        if all(isinstance(v, dict) for v in data.values()):
            return list(data.values())
        return [data]
    raise ValueError(f"expected a JSON list of records, got {type(data).__name__}")


def _image_dirs(base: Path) -> tuple[list[Path], list[Path]]:
    """(segmented dirs, original dirs) below ``base`` (depth <= 3), found by name."""
    seg: list[Path] = []
    orig: list[Path] = []

    def walk(d: Path, depth: int, rel: str) -> None:
        try:
            with os.scandir(d) as it:
                subs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        except OSError:
            return
        for name in subs:
            r = f"{rel}/{name}".lower()
            if "segment" in r:
                seg.append(d / name)
            elif "original" in r:
                orig.append(d / name)
            if depth < 3:
                walk(d / name, depth + 1, r)

    walk(base, 1, "")
    return seg, orig


def _resolve(base: Path, value: str | None, dirs: list[Path]) -> Path | None:
    if not value:
        return None
    rel = Path(value.replace("\\", "/"))
    names = [rel.name] if rel.suffix else [rel.name + ".png", rel.name]
    if not rel.is_absolute():
        for cand in (base / rel, base / rel.with_suffix(".png")):
            if cand.is_file():
                return cand
    elif rel.is_file():
        return rel
    for d in dirs:
        for n in names:
            p = d / n
            if p.is_file():
                return p
    return None


def _get(rec: dict[str, Any], *keys: str) -> str | None:
    for k in keys:
        v = clean(rec.get(k))
        if v is not None:
            return v
    return None


def _figid(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    s = clean(value)
    if s is None:
        return None
    return str(int(s)) if re.fullmatch(r"\d+(?:\.0+)?", s) else s


def _object_name(value: str | None) -> str | None:
    return re.sub(r"\s+", " ", value).strip().lower() if value else None


def _viewpoint(aspect: str | None) -> str | None:
    if not aspect:
        return None
    return normalize_viewpoint(aspect) or re.sub(r"\s*\bviews?\b\s*", " ", aspect.lower()).strip() or None


def _read_json_file(path: Path, issues: list[ReadIssue], prefer: str) -> Iterator[PatentFigure]:
    try:
        records = _load_records(path)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        issues.append(ReadIssue(str(path), f"unreadable DeepPatent2 JSON ({e})"))
        return
    base = path.parent
    seg_dirs, orig_dirs = _image_dirs(base)
    seg_dirs, orig_dirs = [*seg_dirs, base], [*orig_dirs, base]
    seen: set[str] = set()
    sheets: dict[str, PatentFigure] = {}
    for i, rec in enumerate(records):
        where = f"{path}#{i}"
        if not isinstance(rec, dict):
            issues.append(ReadIssue(where, f"record is not a JSON object ({type(rec).__name__})"))
            continue
        try:
            fig = _record_to_figure(rec, base, seg_dirs, orig_dirs, prefer)
        except (ValueError, ValidationError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            issues.append(ReadIssue(where, msg))
            continue
        if fig.extra["image_kind"] == "original":
            prev = sheets.get(fig.key)
            if prev is None:
                sheets[fig.key] = fig
            else:
                _merge_sheet(prev, fig)
            continue
        if fig.key in seen:
            issues.append(ReadIssue(where, f"duplicate record for {fig.key}; skipped"))
            continue
        seen.add(fig.key)
        yield fig
    yield from sheets.values()


def _merge_sheet(into: PatentFigure, other: PatentFigure) -> None:
    """Several figures on one original sheet: keep one figure, join captions, drop disagreeing labels."""
    if other.description and other.description not in (into.description or ""):
        into.description = f"{into.description} {other.description}" if into.description else other.description
    if into.viewpoint != other.viewpoint:
        into.viewpoint = None
    into.extra.setdefault("figids", [into.extra.get("figid")]).append(other.extra.get("figid"))
    if other.object_name and other.object_name != into.object_name:
        into.extra.setdefault("other_objects", []).append(other.object_name)


def _record_to_figure(
    rec: dict[str, Any], base: Path, seg_dirs: list[Path], orig_dirs: list[Path], prefer: str
) -> PatentFigure:
    sub_name = _get(rec, "subfigure_file", "subfigurefile", "subfigure")
    fig_name = _get(rec, "figure_file", "Figure_file", "figurefile")
    sub_meta = _try_name(sub_name)
    fig_meta = _try_name(fig_name)
    raw_patent = _get(rec, "patentID", "patent_id", "patentId", "pid")
    if raw_patent is None:
        raw_patent = (sub_meta or fig_meta or {}).get("patent_id")
    if raw_patent is None:
        raise ValueError("record has no patentID and no parseable file name")
    patent_id = normalize_patent_id(raw_patent)

    sub_path = _resolve(base, sub_name, seg_dirs)
    fig_path = _resolve(base, fig_name, orig_dirs)
    use_segmented = sub_path is not None and (prefer != "original" or fig_path is None)
    figid = _figid(rec.get("figid"))
    if use_segmented:
        assert sub_path is not None
        kind, image = "segmented", sub_path
        figure_id = (sub_meta or {}).get("figure_id") or (f"fig{figid}" if figid else Path(sub_name or "").stem)
    elif fig_path is not None:
        kind, image = "original", fig_path
        figure_id = (fig_meta or {}).get("figure_id") or Path(fig_name or "").stem
    else:
        wanted = " or ".join(n for n in (sub_name, fig_name) if n) or "no subfigure_file/figure_file given"
        raise ValueError(f"image not found: {wanted}")

    day = parse_date(rec.get("patentdate")) or parse_date(rec.get("date"))
    if day is None:
        day = (sub_meta or fig_meta or {}).get("date")
    obj = _object_name(_get(rec, "object", "object_infer", "object_name"))
    title = _get(rec, "object_title", "title")
    extra: dict[str, Any] = {
        "record_id": clean(rec.get("id")),
        "figid": figid,
        "sheet": (sub_meta or fig_meta or {}).get("sheet"),
        "image_kind": kind,
        "figure_file": fig_name,
        "subfigure_file": sub_name,
    }
    box = [rec.get(k) for k in ("x_figure", "y_figure", "w_figure", "h_figure")]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        extra["bbox"] = box
    if isinstance(rec.get("boxes"), list):
        extra["boxes"] = rec["boxes"]
    return PatentFigure(
        patent_id=patent_id,
        figure_id=figure_id,
        image_path=image,
        title=title,
        object_name=obj,
        viewpoint=_viewpoint(_get(rec, "aspect", "aspect_infer", "viewpoint")),
        publication_date=day,
        description=_get(rec, "caption", "description"),
        class_label=obj,
        source_format="deeppatent2",
        extra=extra,
    )


def _try_name(name: str | None) -> dict[str, Any] | None:
    if not name:
        return None
    try:
        return parse_deeppatent2_filename(name if Path(name).suffix else name + ".png")
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------------------
# File names only
# --------------------------------------------------------------------------------------------------------------


def _figures_by_name(folder: Path, names: list[str], issues: list[ReadIssue]) -> Iterator[PatentFigure]:
    for f in names:
        p = folder / f
        if f.startswith("."):
            continue
        if is_vector(p):
            issues.append(vector_issue(p))
            continue
        if not is_image(p):
            continue
        try:
            meta = parse_deeppatent2_filename(f)
        except ValueError:
            yield PatentFigure(
                patent_id=normalize_patent_id(p.stem),
                figure_id=p.stem,
                image_path=p,
                source_format="deeppatent2",
                extra={"image_kind": "unknown", "name_parsed": False},
            )
            continue
        yield PatentFigure(
            patent_id=meta["patent_id"],
            figure_id=meta["figure_id"],
            image_path=p,
            publication_date=meta["date"],
            source_format="deeppatent2",
            extra={"sheet": meta["sheet"], "figid": meta["fig"], "image_kind": meta["kind"]},
        )


read = read_deeppatent2
