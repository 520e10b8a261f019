"""Reader for raw USPTO grant data: one folder per patent with ``*-D0000N.TIF`` sheets and the grant XML.

Layout (USPTO bulk "grant full text with embedded images", e.g. ``USD0907292-20210105/``)::

    USD0907292-20210105/USD0907292-20210105.XML
    USD0907292-20210105/USD0907292-20210105-D00000.TIF   front-page drawing
    USD0907292-20210105/USD0907292-20210105-D00001.TIF   drawing sheet 1 ...

Each sheet becomes one :class:`PatentFigure` (``figure_id`` = the sheet name, ``D00001``). The grant XML gives the
title (also the object name, lower-cased: a design patent's title is the article), USPC (``classification-national``
main + further, as ``D28-47``), Locarno (``28-03``), CPC, the publication date and the figure descriptions
("FIG. 1 is a perspective view ...", or Hague-style "1.1 : Perspective"). ``class_label`` is the main USPC class
(``D28``), else the Locarno class, else the CPC subclass.

Figures are mapped to sheets as far as the data allows. ``<drawings>`` lists the sheet files but not which figures
are on them, so:

* described figures == drawing sheets: sheet ``D0000k`` holds the k-th figure (``figure_mapping="exact"``);
* more figures than sheets: figures run in order over the sheets, so sheet k holds some of figures
  ``k .. k + (F - S)`` (``figure_mapping="ambiguous"``, ``extra["figures"]`` lists the candidates; the description
  joins at most three candidate sentences, the viewpoint is set only when all candidates agree);
* ``D00000`` (front page) is assumed to repeat FIG. 1, which is the USPTO's usual choice
  (``figure_mapping="front_page"``); pass ``include_front_page=False`` to skip it.

The XML is parsed with :mod:`xml.etree.ElementTree` after removing the DOCTYPE (so no DTD or external entity is
ever fetched or expanded); named HTML entities are turned into numeric references first.
"""

from __future__ import annotations

import html.entities
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pir.ingest.confine import may_open
from pir.ingest.normalize import (
    ReadIssue,
    _files,
    clean,
    looks_like_uspto_xml,
    normalize_patent_id,
    normalize_viewpoint,
    parse_date,
)
from pir.ingest.schema import PatentFigure, main_class

_SHEET_RE = re.compile(r"-(D\d{5})\.(?:tiff?|png|jpe?g)$", re.IGNORECASE)
_SHEET_EXT = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
_ROOT_TAGS = ("us-patent-grant", "us-patent-application")
#: At most this many candidate sentences are joined into an ambiguous sheet's description.
MAX_CANDIDATE_SENTENCES = 3


@dataclass
class GrantRecord:
    """What pir reads from one USPTO grant XML."""

    patent_id: str
    title: str | None = None
    kind: str | None = None
    publication_date: date | None = None
    uspc: list[str] = field(default_factory=list)
    locarno: list[str] = field(default_factory=list)
    cpc: list[str] = field(default_factory=list)
    #: Sheet files listed in ``<drawings>``, as (sheet id ``D00001``, file name).
    sheets: list[tuple[str, str]] = field(default_factory=list)
    #: Described figures in order of appearance: label (``"1"``, ``"1.3"``, ``"2A"``) -> description.
    figures: dict[str, str] = field(default_factory=dict)
    number_of_figures: int | None = None
    number_of_sheets: int | None = None


# --------------------------------------------------------------------------------------------------------------
# XML parsing
# --------------------------------------------------------------------------------------------------------------

_DOCTYPE = re.compile(rb"<!DOCTYPE\s[^\[>]*(?:\[.*?\]\s*)?>", re.DOTALL | re.IGNORECASE)
_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]*);")
_XML_ENTITIES = {b"amp", b"lt", b"gt", b"quot", b"apos"}


def _numeric_entity(m: re.Match[bytes]) -> bytes:
    name = m.group(1)
    if name in _XML_ENTITIES:
        return m.group(0)
    char = html.entities.html5.get(name.decode("ascii") + ";")
    if char is None:
        return b" "
    return b"".join(b"&#%d;" % ord(c) for c in char)


def safe_xml_root(data: bytes) -> ET.Element:
    """Parse XML bytes without fetching or expanding anything: DOCTYPE removed, named entities made numeric.

    Raises:
        ET.ParseError: Malformed XML.
    """
    data = _DOCTYPE.sub(b"", data, count=1)
    data = _ENTITY.sub(_numeric_entity, data)
    return ET.fromstring(data)


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    return clean("".join(el.itertext()))


def parse_uspc(raw: str | None) -> str | None:
    """USPC code from USPTO's fixed-width field (3 chars class, 3 chars subclass, optional extension).

    ``"D28 47"`` -> ``D28-47``, ``"D 2728"`` / ``" D2840"`` -> ``D2-728`` / ``D2-840``, ``"D142034"`` ->
    ``D14-203.4``, ``"345 11"`` -> ``345-11``. Values that already hold a separator (``D14/486``, ``D14-486``) are
    split there. Leading spaces are significant (USPTO pads the class field), so pass the raw element text.
    """
    if raw is None or not raw.strip():
        return None
    s = raw.rstrip()
    stripped = s.strip()
    m = re.fullmatch(r"(D?\s*\d+|[A-Z]+\d*)\s*[/-]\s*([\d.A-Z]+)", stripped)
    if m:
        return f"{m.group(1).replace(' ', '')}-{m.group(2)}"
    if len(s) < 4:
        return stripped.replace(" ", "")
    cls = s[:3].replace(" ", "")
    rest = s[3:]
    if rest[:1].isspace():  # a short subclass, right-justified: "D28 47", "D18  46"
        sub, ext = rest.strip(), ""
    else:  # a full 3-digit subclass, maybe with a decimal extension: "D142034" -> 203.4
        sub, ext = rest[:3].strip(), rest[3:].strip()
    sub = sub.lstrip("0") or "0"
    return f"{cls}-{sub}" + (f".{ext}" if ext else "")


def parse_locarno(raw: str | None) -> str | None:
    """Locarno class from ``main-classification`` (``"2803"`` -> ``28-03``)."""
    s = clean(raw)
    if s is None:
        return None
    s = s.replace(" ", "")
    if re.fullmatch(r"\d{4}", s):
        return f"{s[:2]}-{s[2:]}"
    return s


def _cpc_code(el: ET.Element) -> str | None:
    parts = [clean(el.findtext(t)) or "" for t in ("section", "class", "subclass", "main-group", "subgroup")]
    if not parts[0] or not parts[1]:
        return clean(el.findtext("text"))
    return f"{parts[0]}{parts[1]}{parts[2]} {parts[3]}/{parts[4]}".strip().rstrip("/")


_FIG_START = re.compile(
    r"""^\s*(?:the\s+|and\s+)?
        (?:(?:figures?|figs?\.?|reproductions?)\s*
            (?P<labels>\d+[A-Za-z]?(?:\.\d+)?(?:\s*(?:,|and|&|to|through|-|–)\s*\d+[A-Za-z]?(?:\.\d+)?)*)
            (?=[\s:]|$)
          |(?P<hague>\d+\.\d+)\s*(?=:|is\b|are\b))""",
    re.IGNORECASE | re.VERBOSE,
)
_SOLE_FIGURE = re.compile(r"^\s*the\s+(?:sole\s+)?(?:figure|drawing)\s+(?:is|shows|illustrates)\b", re.IGNORECASE)
_SPLIT = re.compile(r"(?<=[;.])\s+(?=(?:and\s+)?(?:FIGS?\.?|FIGURES?|reproductions?)\s*\d)", re.IGNORECASE)


def _expand_labels(labels: str) -> list[str]:
    out: list[str] = []
    for part in re.split(r"\s*(?:,|\band\b|&)\s*", labels.strip()):
        if not part:
            continue
        rng = re.fullmatch(r"(\d+)\s*(?:-|–|to|through)\s*(\d+)", part)
        if rng and int(rng.group(1)) < int(rng.group(2)) <= int(rng.group(1)) + 200:
            out += [str(i) for i in range(int(rng.group(1)), int(rng.group(2)) + 1)]
        else:
            out.append(part.upper() if re.fullmatch(r"\d+[a-z]", part) else part)
    return out


def parse_figure_descriptions(paragraphs: list[str]) -> dict[str, str]:
    """Figure label -> description from the "brief description of the drawings" paragraphs, in order.

    Understands "FIG. 1 is ...", "FIGS. 2 and 3 are ...", "FIGS. 4-6 are ...", "The FIGURE is ..." (label ``1``),
    Hague-style "1.1 : Perspective" and "reproduction 1.2 is ...". Several sentences about the same label are
    joined; trailing "; and," is trimmed.
    """
    figures: dict[str, str] = {}
    for para in paragraphs:
        for sentence in _SPLIT.split(para):
            sentence = sentence.strip()
            labels: list[str]
            m = _FIG_START.match(sentence)
            if m:
                labels = _expand_labels(m.group("labels") or m.group("hague"))
            elif _SOLE_FIGURE.match(sentence):
                labels = ["1"]
            else:
                continue
            text = re.sub(r"\s*[;,]?\s*(?:and|or)?\s*[;,.]*\s*$", "", sentence).strip()
            text = re.sub(r"^\s*and\s+", "", text, flags=re.IGNORECASE)
            for label in labels:
                figures[label] = f"{figures[label]} {text}" if label in figures else text
    return figures


def _read_classes(bib: ET.Element, rec: GrantRecord) -> None:
    """Add the USPC (main, then further), Locarno and CPC codes of ``bib`` to ``rec`` (each once, in order)."""

    def add(target: list[str], codes: Iterable[str | None]) -> None:
        for code in codes:
            if code and code not in target:
                target.append(code)

    national = bib.find("classification-national")
    if national is not None:
        els = [national.find("main-classification"), *national.findall("further-classification")]
        add(rec.uspc, (parse_uspc(el.text if el is not None else None) for el in els))
    add(
        rec.locarno,
        (parse_locarno(loc.findtext("main-classification")) for loc in bib.findall("classification-locarno")),
    )
    cpc = [f"classifications-cpc/{part}-cpc/classification-cpc" for part in ("main", "further")]
    add(rec.cpc, (_cpc_code(el) for el in bib.findall(cpc[0]) + bib.findall(cpc[1])))


def parse_grant_xml(path: Path) -> GrantRecord:
    """Read one USPTO grant (or application) XML.

    Raises:
        ValueError: Not a USPTO grant XML, malformed XML, or no document number.
        OSError: The file cannot be read.
    """
    data = path.read_bytes()
    try:
        root = safe_xml_root(data)
    except ET.ParseError as e:
        raise ValueError(f"malformed XML ({e})") from e
    if root.tag not in _ROOT_TAGS:
        raise ValueError(f"not a USPTO grant XML (root element <{root.tag}>)")
    bib = root.find("us-bibliographic-data-grant")
    if bib is None:
        bib = root.find("us-bibliographic-data-application")
    if bib is None:
        raise ValueError("no <us-bibliographic-data-grant> element")
    doc = bib.find("publication-reference/document-id")
    number = clean(doc.findtext("doc-number")) if doc is not None else None
    if doc is None or not number:
        raise ValueError("no publication-reference doc-number")
    country = clean(doc.findtext("country")) or "US"
    rec = GrantRecord(patent_id=normalize_patent_id(f"{country}{number}"))
    rec.kind = clean(doc.findtext("kind"))
    rec.publication_date = parse_date(doc.findtext("date")) or parse_date(root.get("date-publ"))
    rec.title = _text(bib.find("invention-title"))

    _read_classes(bib, rec)

    figs = bib.find("figures")
    if figs is not None:
        nf, ns = clean(figs.findtext("number-of-figures")), clean(figs.findtext("number-of-drawing-sheets"))
        rec.number_of_figures = int(nf) if nf and nf.isdigit() else None
        rec.number_of_sheets = int(ns) if ns and ns.isdigit() else None

    for fig in root.findall("drawings/figure"):
        img = fig.find("img")
        name = img.get("file") if img is not None else None
        if not name:
            continue
        m = _SHEET_RE.search(name)
        sheet = m.group(1).upper() if m else f"D{int(fig.get('num', '0') or 0):05d}"
        rec.sheets.append((sheet, name))

    desc = root.find(".//description-of-drawings")
    if desc is None:
        desc = root.find("description")
    paragraphs = [t for p in (desc.iter("p") if desc is not None else []) if (t := _text(p))]
    rec.figures = parse_figure_descriptions(paragraphs)
    return rec


# --------------------------------------------------------------------------------------------------------------
# Sheets -> figures
# --------------------------------------------------------------------------------------------------------------


def _sheet_number(sheet: str) -> int:
    return int(sheet[1:])


def map_figures_to_sheets(labels: list[str], sheet_numbers: list[int]) -> dict[int, tuple[list[str], str]]:
    """Sheet number -> (figure labels, mapping kind) for the drawing sheets (numbers >= 1) and the front page (0).

    Kinds: ``exact`` (one figure per sheet), ``ambiguous`` (candidates of a contiguous run), ``front_page``
    (``D00000`` assumed to show the first figure) and ``none``.
    """
    out: dict[int, tuple[list[str], str]] = {}
    drawing = sorted(n for n in sheet_numbers if n >= 1)
    s, f = len(drawing), len(labels)
    for i, n in enumerate(drawing):
        if f and f == s:
            out[n] = ([labels[i]], "exact")
        elif f > s > 0:
            out[n] = (labels[i : i + (f - s) + 1], "ambiguous")
        else:
            out[n] = ([], "none")
    if 0 in sheet_numbers:
        out[0] = ([labels[0]], "front_page") if labels else ([], "none")
    return out


def _find_sheet_file(folder: Path, name: str, listing: dict[str, Path]) -> Path | None:
    exact = folder / name
    if exact.is_file():
        return exact
    stem = Path(name).stem.lower()
    for ext in _SHEET_EXT:
        hit = listing.get(stem + ext)
        if hit is not None:
            return hit
    return None


def detect(root: Path, dirs: list[Path]) -> bool:
    """USPTO grant XML (``<us-patent-grant``) in the folder or its sub-folders."""
    return any(f.suffix.lower() == ".xml" and looks_like_uspto_xml(f) for d in dirs for f in _files(d, limit=500))


def read_uspto_raw(
    root: Path,
    *,
    issues: list[ReadIssue],
    include_front_page: bool = True,
    **_: object,
) -> Iterator[PatentFigure]:
    """Yield one :class:`PatentFigure` per drawing sheet of every grant XML under ``root`` (recursively).

    Args:
        root: A folder of patent folders, or one patent folder.
        issues: Receives bad XML files, sheets listed in the XML but missing on disk and sheet folders without XML.
        include_front_page: Also yield ``D00000``, the front-page drawing (usually a repeat of FIG. 1).
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        xmls = sorted(f for f in filenames if f.lower().endswith(".xml") and not f.startswith("."))
        sheet_files = sorted(f for f in filenames if _SHEET_RE.search(f))
        if not xmls:
            if sheet_files:
                issues.append(ReadIssue(str(folder), f"{len(sheet_files)} drawing sheets but no grant XML; skipped"))
            continue
        listing = {f.lower(): folder / f for f in filenames}
        claimed: set[str] = set()
        for xml_name in xmls:
            xml_path = folder / xml_name
            if not may_open(xml_path):
                continue
            try:
                rec = parse_grant_xml(xml_path)
            except (ValueError, OSError) as e:
                issues.append(ReadIssue(str(xml_path), str(e)))
                continue
            yield from _figures_of(rec, xml_path, folder, sheet_files, listing, claimed, issues, include_front_page)
        unclaimed = [f for f in sheet_files if f.lower() not in claimed]
        if unclaimed and len(xmls) > 1:
            issues.append(ReadIssue(str(folder), f"{len(unclaimed)} drawing sheets match no grant XML; skipped"))


def _sheet_paths(
    rec: GrantRecord,
    xml_path: Path,
    folder: Path,
    sheet_files: list[str],
    listing: dict[str, Path],
    issues: list[ReadIssue],
) -> dict[str, Path]:
    """Sheet id -> file: the sheets listed in ``<drawings>`` (missing ones reported), then unlisted ones on disk."""
    sheets: dict[str, Path] = {}
    for sheet, name in rec.sheets:
        path = _find_sheet_file(folder, name, listing)
        if path is None:
            issues.append(ReadIssue(str(folder / name), f"drawing sheet listed in {xml_path.name} not found"))
            continue
        sheets.setdefault(sheet, path)
    # Sheets on disk that belong to this XML's document but are not listed in <drawings>.
    prefix = xml_path.stem.lower()
    single_xml = sum(1 for f in listing if f.endswith(".xml")) == 1
    for f in sheet_files:
        m = _SHEET_RE.search(f)
        if m and (single_xml or f.lower().startswith(prefix)):
            sheets.setdefault(m.group(1).upper(), folder / f)
    return sheets


def _grant_class(rec: GrantRecord) -> str | None:
    """The grant's class label: main USPC class, else main Locarno class, else the CPC subclass."""
    if rec.uspc:
        return main_class(rec.uspc[0])
    if rec.locarno:
        return main_class(rec.locarno[0])
    return rec.cpc[0].split()[0] if rec.cpc else None  # utility grants after 2015 carry CPC only ("A61C")


def _figures_of(
    rec: GrantRecord,
    xml_path: Path,
    folder: Path,
    sheet_files: list[str],
    listing: dict[str, Path],
    claimed: set[str],
    issues: list[ReadIssue],
    include_front_page: bool,
) -> Iterator[PatentFigure]:
    sheets = _sheet_paths(rec, xml_path, folder, sheet_files, listing, issues)
    claimed.update(p.name.lower() for p in sheets.values())
    if not sheets:
        issues.append(ReadIssue(str(xml_path), "no drawing sheets found"))
        return

    labels = list(rec.figures)
    # Map over every sheet the grant has (a sheet missing on disk still holds its figures).
    numbers = {_sheet_number(s) for s in sheets} | {_sheet_number(s) for s, _ in rec.sheets}
    mapping = map_figures_to_sheets(labels, sorted(numbers))
    class_label = _grant_class(rec)
    object_name = rec.title.lower() if rec.title else None
    for sheet in sorted(sheets, key=_sheet_number):
        n = _sheet_number(sheet)
        if n == 0 and not include_front_page:
            continue
        figs, kind = mapping.get(n, ([], "none"))
        sentences = [rec.figures[label] for label in figs]
        if kind == "ambiguous" and len(sentences) > MAX_CANDIDATE_SENTENCES:
            description = None
        else:
            description = " ".join(sentences) or None
        views = {normalize_viewpoint(s) for s in sentences}
        viewpoint = views.pop() if len(views) == 1 else None
        yield PatentFigure(
            patent_id=rec.patent_id,
            figure_id=sheet,
            image_path=sheets[sheet],
            title=rec.title,
            object_name=object_name,
            viewpoint=viewpoint,
            uspc=rec.uspc,
            locarno=rec.locarno,
            cpc=rec.cpc,
            publication_date=rec.publication_date,
            description=description,
            class_label=class_label,
            source_format="uspto_raw",
            extra={
                "sheet": sheet,
                "figures": figs,
                "figure_mapping": kind,
                "kind": rec.kind,
                "number_of_figures": rec.number_of_figures or len(labels) or None,
                "number_of_sheets": rec.number_of_sheets,
            },
        )


read = read_uspto_raw
