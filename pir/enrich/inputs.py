"""What enrichment knows about one figure: object, viewpoint, the patent's own figure text, classes and aliases."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pir.enrich.aliases import load_lexicon, normalize_name
from pir.enrich.classes import class_titles, parse_locarno, parse_uspc_design
from pir.ingest.schema import PatentFigure

#: Where a title stops naming the object: "Display screen or portion thereof with a GUI" -> "display screen".
_TITLE_CUT = re.compile(
    r"\s*(?:[,;:(!?]|(?<=[a-z]{2})\.\s|\bor (?:a )?(?:portions?|parts?) thereof\b"
    r"|\b(?:with|for|having|including|comprising|showing|that|which|used|adapted)\b)\s*",
    re.IGNORECASE,
)
_LEADING_ARTICLE = re.compile(r"^(?:an?|the)\s+", re.IGNORECASE)
_FIG_SPLIT = re.compile(r"(?=\bFIG(?:URE)?S?\.?\s*\d)|(?=\bThe FIGURE\b)|(?=\b\d+\.\d+\s*:)", re.IGNORECASE)
_FIG_LEAD = re.compile(
    r"^\s*(?:(?:the\s+)?FIG(?:URE)?S?\.?\s*[\dA-Z]*(?:\s*(?:-|to|through|and|,)\s*\d+[A-Z]?)*|the\s+figure)\s+"
    r"(?:is|are|shows?|illustrates?|depicts?)\s+",
    re.IGNORECASE,
)
_NOISE = (
    re.compile(r",?\s*(?:showing|illustrating|embodying)\s+(?:my|our|the|a)\s+(?:new\s+|claimed\s+)?design\b", re.I),
    re.compile(r"\s+or (?:a )?(?:portions?|parts?) thereof\b", re.I),
    re.compile(r"\s+(?:according to|in accordance with)\b.*$", re.I),
    re.compile(r"\s+of the present (?:invention|design)\b", re.I),
    re.compile(r";.*$"),
    re.compile(r"\s+(?:and|or|of|as shown in|shown in)[,;]?\s*$", re.I),
)
_HAGUE_VIEW = re.compile(r"^\s*\d+\.\d+\s*:\s*([A-Za-z][\w ,-]*?)\s*[.;]?\s*$")
_VIEW = re.compile(r"^(?:an?\s+|the\s+)?((?:[\w-]+[\s,]+){0,5}?view)\b", re.IGNORECASE)
_VIEW_QUALIFIER = re.compile(r"^(?:(?:an)?other|second|third|alternate|alternative|additional|further)\s+")
_FIG_NUMBER = re.compile(r"^\s*(?:the\s+)?FIG(?:URE)?S?\.?\s*(\d+[A-Z]?)\b|^\s*(\d+\.\d+)\s*:", re.IGNORECASE)
#: At most this many candidate views are listed for a sheet whose figure is unknown; more leave the view out.
MAX_LISTED_VIEWS = 4
_MAX_OBJECT_CHARS = 60


@dataclass(frozen=True)
class FigureInputs:
    """Everything a backend may use to describe one figure (the cache key hashes all fields but ``key``)."""

    key: str
    object_name: str
    title: str | None = None
    viewpoint: str | None = None
    description: str | None = None
    classes: tuple[tuple[str, str, str], ...] = ()  # (system, code, title), e.g. ("USPC", "D26", "Lighting")
    aliases: tuple[str, ...] = ()
    caption: str | None = None

    def class_phrases(self) -> list[str]:
        """``["lighting (USPC D26)", "lamps, ... (Locarno 26-05)"]``."""
        return [f"{title[0].lower()}{title[1:]} ({system} {code})" for system, code, title in self.classes]

    def names(self) -> list[str]:
        """The object name followed by its aliases."""
        return [self.object_name, *self.aliases]

    def to_json(self, *, aliases: bool = True) -> str:
        """Canonical JSON of everything but ``key`` (and without the aliases when ``aliases=False``)."""
        data = asdict(self)
        data.pop("key")
        if not aliases:
            data.pop("aliases")
        return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


def object_from_title(title: str) -> str:
    """The object a design title names: ``"Garment with a side pocket"`` -> ``"garment"``."""
    text = _LEADING_ARTICLE.sub("", title.strip())
    head = _TITLE_CUT.split(text, maxsplit=1)[0].strip(" .")
    return (head or text).lower()[:_MAX_OBJECT_CHARS].strip()


def object_name_of(figure: PatentFigure) -> str:
    """Object name of a figure: its ``object_name``, else derived from the title, else from the class label."""
    for raw in (figure.object_name, figure.title):
        if raw and raw.strip() and raw.strip().upper() not in ("NULL", "NONE", "N/A"):
            return object_from_title(raw)
    label = figure.class_label
    if label and not _is_class_code(label):
        return normalize_name(label)[:_MAX_OBJECT_CHARS]
    return "design"


def _is_class_code(code: str) -> bool:
    c = code.strip()
    return bool(c) and (parse_uspc_design(c) is not None or parse_locarno(c) is not None)


def clean_figure_text(text: str | None, object_name: str, *, max_statements: int = 2) -> str | None:
    """The patent's figure text as plain sentences: ``"FIG. 2 is a front view thereof;"`` -> ``"A front view of
    the garment."``. Statements that do not describe a figure (broken-line notes) are dropped."""
    statements = figure_statements(text, object_name, max_statements=max_statements)
    return " ".join(sentence for _, sentence in statements) or None


def figure_statements(
    text: str | None, object_name: str, *, max_statements: int | None = None
) -> list[tuple[str | None, str]]:
    """The figure statements of a patent text as ``(figure number or None, plain sentence)``:
    ``"FIG. 2 is a top view thereof"`` -> ``("2", "A top view of the razor.")``."""
    if not text or not text.strip():
        return []
    out: list[tuple[str | None, str]] = []
    for raw in _FIG_SPLIT.split(" ".join(text.split())):
        hague = _HAGUE_VIEW.match(raw)  # Hague-style "1.2 : Front"
        lead = _FIG_LEAD.match(raw)
        if hague:
            view = hague.group(1).strip().lower()
            body = f"{view}{'' if view.endswith('view') else ' view'} of the {object_name}"
        elif lead:
            body = raw[lead.end() :]
            for pattern in _NOISE:
                body = pattern.sub("", body).strip(" ,.")
            body = re.sub(r"\bthereof\b", f"of the {object_name}", body, flags=re.IGNORECASE)
            body = _NOISE[-1].sub("", body).strip(" ;,.")
        else:
            continue
        if body:
            m = _FIG_NUMBER.match(raw)
            number = next((g for g in m.groups() if g), None) if m else None
            out.append((number, body[0].upper() + body[1:] + "."))
        if max_statements is not None and len(out) >= max_statements:
            break
    return out


def sentence_view(sentence: str | None) -> str | None:
    """The view a figure sentence opens with: ``"Another perspective view of the lamp."`` -> ``"perspective view"``."""
    m = _VIEW.match(sentence) if sentence else None
    if not m:
        return None
    return _VIEW_QUALIFIER.sub("", " ".join(m.group(1).lower().replace(",", " ").split())) or None


def list_views(views: list[str]) -> str:
    """``["top view", "bottom view", "right view"]`` -> ``"top, bottom or right view"``."""
    names = [v.removesuffix(" view").removesuffix(" views") for v in views]
    head = ", ".join(names[:-1])
    return f"{head} or {names[-1]} view" if head else f"{names[-1]} view"


def _given_viewpoint(figure: PatentFigure) -> str | None:
    vp = " ".join(figure.viewpoint.split()).lower() if figure.viewpoint else ""
    return None if not vp or vp in ("null", "none") else vp


def _candidate_figures(figure: PatentFigure) -> list[str]:
    """The figure numbers a drawing sheet may hold when the reader could not tell which (``extra["figures"]``)."""
    figs = figure.extra.get("figures") if isinstance(figure.extra, dict) else None
    if not isinstance(figs, list | tuple):
        return []
    return [str(f).strip().upper() for f in figs if str(f).strip()]


def ambiguous_views(figure: PatentFigure, statements: list[tuple[str | None, str]]) -> list[str] | None:
    """The candidate views of a figure whose own view is unknown, or None when it is not ambiguous.

    Ambiguous: no viewpoint of its own, and its figure text names several different views, or the sheet has
    several candidate figures. ``[]`` means the views cannot be told (a candidate figure without a view, or more
    than :data:`MAX_LISTED_VIEWS` views): leave the view out.
    """
    if _given_viewpoint(figure) is not None:
        return None
    views: list[str] = []
    covered: set[str] = set()
    for number, sentence in statements:
        view = sentence_view(sentence)
        if view:
            covered.add((number or "").upper())
            if view not in views:
                views.append(view)
    candidates = _candidate_figures(figure)
    if len(views) <= 1 and len(candidates) <= 1:
        return None
    if len(candidates) > 1 and not set(candidates) <= covered:
        return []
    if len(views) == 1:
        return None  # every candidate figure shows the same view
    return views if len(views) <= MAX_LISTED_VIEWS else []


def viewpoint_of(figure: PatentFigure, description: str | None) -> str | None:
    """``"front left perspective view"``: the view named by the figure's text when it agrees with the figure's
    (normalised) viewpoint or there is none, else the figure's viewpoint."""
    from_text = sentence_view(description)
    vp = _given_viewpoint(figure)
    if vp is None:
        return from_text
    if from_text and vp.removesuffix(" view") in from_text:
        return from_text
    return vp if vp.endswith("view") else f"{vp} view"


def figure_inputs(
    figure: PatentFigure,
    caption: str | None = None,
    *,
    wordnet_root: Path | None = None,
    max_aliases: int = 8,
    with_aliases: bool = True,
) -> FigureInputs:
    """Collect a figure's inputs: title, object name, viewpoint, its figure text, class titles, aliases, caption.

    ``with_aliases=False`` leaves the aliases out (enough for a cache key, see :func:`add_aliases`), which avoids
    loading WordNet when every figure is already cached. A sheet whose figure is unknown (see
    :func:`ambiguous_views`) gets no single view: its candidate views are listed (``"top, bottom or right view"``)
    or, when they cannot be told, left out, and its figure text is reduced to that list.
    """
    obj = object_name_of(figure)
    statements = figure_statements(figure.description, obj)
    candidates = ambiguous_views(figure, statements)
    if candidates is None:
        description = " ".join(sentence for _, sentence in statements[:2]) or None
        viewpoint = viewpoint_of(figure, description)
    else:
        viewpoint = list_views(candidates) if candidates else None
        description = f"{_a(viewpoint)} {viewpoint} of the {obj}." if viewpoint else None
    labels = [figure.class_label] if figure.class_label and _is_class_code(figure.class_label) else []
    classes = class_titles(list(figure.uspc), list(figure.locarno), extra=labels)
    inputs = FigureInputs(
        key=figure.key,
        object_name=obj,
        title=" ".join(figure.title.split()) if figure.title else None,
        viewpoint=viewpoint,
        description=description,
        classes=tuple((c.system, c.code, c.title) for c in classes),
        caption=" ".join(caption.split()) if caption and caption.strip() else None,
    )
    return add_aliases(inputs, wordnet_root=wordnet_root, max_aliases=max_aliases) if with_aliases else inputs


def _a(phrase: str) -> str:
    return "An" if phrase[:1].lower() in "aeiou" else "A"


def add_aliases(inputs: FigureInputs, *, wordnet_root: Path | None = None, max_aliases: int = 8) -> FigureInputs:
    """The inputs with the aliases of their object name (WordNet + curated table)."""
    aliases = load_lexicon(wordnet_root).aliases(inputs.object_name, max_aliases)
    return dataclasses.replace(inputs, aliases=tuple(aliases))
