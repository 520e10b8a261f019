"""One search, described once: :class:`SearchRequest` (pydantic), for every front end.

The CLI's options, the web page's URL state and form, the JSON API and the bench all build a
:class:`SearchRequest`; :class:`pir.search.runtime.SearchRuntime` executes it. Validation happens here, once: a bad
value is a :class:`pydantic.ValidationError` (the CLI prints one line, the API answers 422 naming the field).

The URL form (:meth:`SearchRequest.from_params` / :meth:`SearchRequest.to_params`) uses each field's alias (``q``,
``words``, ``cls``, ...), so a page URL, an API query string and a form post are the same thing. Unknown parameters
are an error naming them (a typo such as ``clss=06`` is never silently ignored).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any, Final, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Fusion methods of drawing + words (:meth:`pir.search.store.VectorStore.hybrid_search`): ``zscore`` (each leg's
#: scores standardised by the mean and spread of its own candidates, then a weighted sum: the default), ``rrf``
#: (weighted reciprocal rank fusion), ``weighted`` (weighted sum of raw scores).
FUSIONS = ("zscore", "rrf", "weighted")
#: The fusion every front end uses unless told otherwise.
DEFAULT_FUSION: Final = "zscore"
#: Relevance-feedback strategies: ``rocchio`` (the default: the query moved towards the marked-relevant figures and
#: away from the others, the query weighted so the marks cannot outvote it, :func:`pir.search.runtime.rocchio`), or
#: one of Qdrant's recommend strategies with the query as one more positive
#: (:meth:`pir.search.store.VectorStore.recommend`).
RECOMMEND_STRATEGIES = ("average_vector", "best_score", "sum_scores")
STRATEGIES = ("rocchio", *RECOMMEND_STRATEGIES)
#: The words' share when a drawing and words are fused (``--text-weight``). Chosen on the VALIDATION patents of the
#: 2007 USPC split (class-level, zero-shot encoder, grid 0.25 / 0.5 / 0.75 / 0.9: mAP 0.33 / 0.38 / 0.41 / 0.44), never
#: on a split that is reported; see the README's benchmark section. Re-checked for ``zscore`` fusion on the same
#: validation patents (grid 0.7 / 0.8 / 0.9, words share 0.2: mAP 0.440 / 0.456 / 0.461).
DEFAULT_TEXT_WEIGHT = 0.9

#: Most drawings (views of one design) in one search.
MAX_DRAWINGS = 7
#: Longest query words (characters): a title and a few part names; 100 KB of text took 40 s to embed.
MAX_WORDS_CHARS = 500
#: Most hits one search may ask for.
MAX_K = 10_000
#: Most figures marked relevant / not relevant.
MAX_MARKS = 50

Fusion = Literal["zscore", "rrf", "weighted"]
Strategy = Literal["rocchio", "average_vector", "best_score", "sum_scores"]
assert set(Fusion.__args__) == set(FUSIONS) and set(Strategy.__args__) == set(STRATEGIES)  # type: ignore[attr-defined]

_CROP_RE = re.compile(r"(\d+):([0-9.]+),([0-9.]+),([0-9.]+),([0-9.]+)")
#: Fields given as comma-separated lists in a URL (``cls=D6,D7``) as well as repeated.
_COMMA_LISTS = ("cls", "viewpoint", "exclude")


class Crop(BaseModel):
    """A crop rectangle of a query drawing, in fractions of its width and height."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _box(self) -> Crop:
        if not (self.x0 < self.x1 and self.y0 < self.y1) or self.x1 - self.x0 < 0.02 or self.y1 - self.y0 < 0.02:
            raise ValueError("need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, at least 2% wide and high")
        return self

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @classmethod
    def parse(cls, text: str) -> tuple[int, Crop]:
        """``INDEX:X0,Y0,X1,Y1`` (the URL form) -> ``(index, crop)``."""
        m = _CROP_RE.fullmatch(text.strip())
        if not m:
            raise ValueError(f"crop={text[:80]!r}: expected INDEX:X0,Y0,X1,Y1 in fractions of the drawing (0..1)")
        try:
            x0, y0, x1, y1 = (float(m.group(j)) for j in range(2, 6))
        except ValueError:
            raise ValueError(f"crop={text[:80]!r}: not numbers") from None
        return int(m.group(1)), cls(x0=x0, y0=y0, x1=x1, y1=y1)

    def format(self, index: int) -> str:
        return f"{index}:" + ",".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in self.as_tuple())


class SearchRequest(BaseModel):
    """Everything one search needs, for every front end (CLI, web page, JSON API, bench, Python).

    A query is one or more of: ``drawings`` (several = views of one object, fused), ``words``, ``like`` (a stored
    figure), and relevance feedback (``positives`` / ``negatives``; the rest of the query stays its anchor).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    drawings: list[str] = Field(
        default_factory=list,
        alias="q",
        max_length=MAX_DRAWINGS,
        description="query drawings: file paths, or content hashes of drawings uploaded to `pir serve`; several = "
        "views of one design, fused into one query",
    )
    crops: dict[int, Crop] = Field(
        default_factory=dict,
        alias="crop",
        description="crop of drawing INDEX: INDEX:X0,Y0,X1,Y1 in fractions of its width/height (repeatable)",
    )
    words: str = Field(
        "",
        max_length=MAX_WORDS_CHARS,
        description="the words a searcher holds (title, object name, a part); fused with the drawings inside Qdrant",
    )
    text_weight: float = Field(
        DEFAULT_TEXT_WEIGHT, ge=0, le=1, description="share of the words when drawings and words are both given"
    )
    fusion: Fusion = Field(
        DEFAULT_FUSION, description="how image and words rankings are fused: zscore, rrf or weighted (see the README)"
    )
    classes: list[str] = Field(
        default_factory=list,
        alias="cls",
        max_length=20,
        description="class filter (USPC D28/47, Locarno 26-05, CPC, object class); any matches",
    )
    year_from: int | None = Field(None, ge=1000, le=9999, description="first publication year")
    year_to: int | None = Field(None, ge=1000, le=9999, description="last publication year")
    after: date | None = Field(
        None, description="published after this date (YYYY-MM-DD, exclusive; the stored publication date)"
    )
    before: date | None = Field(
        None,
        description="published before this date (YYYY-MM-DD, exclusive): the cut-off of prior art, e.g. the "
        "application's priority or filing date",
    )
    viewpoints: list[str] = Field(
        default_factory=list, alias="viewpoint", max_length=20, description="viewpoint filter (front, perspective, ...)"
    )
    exclude_patents: list[str] = Field(
        default_factory=list, alias="exclude", max_length=50, description="patents to leave out"
    )
    one_per_patent: bool = Field(False, alias="per_patent", description="at most one hit per patent (its best)")
    k: int = Field(10, ge=1, le=MAX_K, description="number of hits")
    min_score: float | None = Field(None, description="drop hits scoring below this (see the score legend)")
    like: str | None = Field(None, max_length=200, description="more like this: a figure id or PATENT/FIGURE")
    positives: list[str] = Field(
        default_factory=list, alias="pos", max_length=MAX_MARKS, description="figure ids marked relevant"
    )
    negatives: list[str] = Field(
        default_factory=list, alias="neg", max_length=MAX_MARKS, description="figure ids marked not relevant"
    )
    clusters: int = Field(
        0,
        ge=0,
        le=12,
        description="group the hits into this many clusters of look-alikes (k-means on their image "
        "vectors, each labelled by the words its figures share); 0 = off",
    )
    strategy: Strategy = Field(
        "rocchio",
        description="how marked figures steer the query: rocchio (query-anchored) or a Qdrant recommend strategy",
    )

    # ------------------------------------------------------------------------------------------- validation
    @field_validator("words", "like", mode="before")
    @classmethod
    def _strip(cls, v: object) -> object:
        return " ".join(v.split()) if isinstance(v, str) else v

    @field_validator("like", mode="after")
    @classmethod
    def _empty_like(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("drawings", "classes", "viewpoints", "exclude_patents", "positives", "negatives", mode="after")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(s.strip() for s in v if s and s.strip()))

    @field_validator("min_score", "text_weight", mode="before")
    @classmethod
    def _finite(cls, v: object) -> object:
        try:
            bad = v is not None and not math.isfinite(float(v))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return v  # not a number: the field's own type check says so
        if bad:
            raise ValueError(f"{v}: not a finite number")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SearchRequest:
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise ValueError(f"year_from {self.year_from} is after year_to {self.year_to} (reversed range)")
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise ValueError(f"after {self.after} is not before before {self.before} (reversed or empty date range)")
        for i in self.crops:
            if not 0 <= i < len(self.drawings):
                raise ValueError(f"crop of drawing {i}: there is no drawing {i} (indices start at 0)")
        return self

    # ---------------------------------------------------------------------------------------------- queries
    @property
    def empty(self) -> bool:
        """No drawing, no words, no stored figure and no marked figure: nothing to search with."""
        return not (self.drawings or self.words or self.like or self.positives)

    @property
    def feedback(self) -> bool:
        """Relevance feedback (figures marked relevant or not)."""
        return bool(self.positives or self.negatives)

    def replace(self, **changes: Any) -> SearchRequest:
        """A validated copy with some fields replaced (by field name)."""
        return SearchRequest.model_validate({**self.model_dump(), **changes})

    # ------------------------------------------------------------------------------------------ URL form
    def url(self, path: str = "/", **changes: Any) -> str:
        """``path?query`` of this request, with some fields replaced (e.g. ``like=...``): a shareable link."""
        q = self.replace(**changes) if changes else self
        return f"{path}?{urlencode(q.to_params())}"

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]], *, ignore: Iterable[str] = ()) -> SearchRequest:
        """Parse a URL query string or form fields (field aliases as keys; lists repeated or comma-separated).

        Raises:
            pydantic.ValidationError: a malformed value, or an unknown parameter (named in the error).
        """
        skip = set(ignore)
        multi: dict[str, list[str]] = {}
        for key, value in params:
            if key not in skip:
                multi.setdefault(key, []).append(str(value))
        data: dict[str, Any] = {}
        aliases = {f.alias or name: name for name, f in cls.model_fields.items()}
        for key, values in multi.items():
            name = aliases.get(key)
            if name is None:
                data[key] = values[-1]  # extra="forbid" names it
                continue
            if key == "crop":
                crops: dict[int, Any] = {}
                for c in values:
                    try:
                        i, box = Crop.parse(c)
                    except (ValueError, ValidationError) as e:
                        raise _param_error(cls, "crop", c, str(e).splitlines()[-1]) from None
                    crops[i] = box
                data[key] = crops
            elif _is_list(cls, name):
                parts = [p for v in values for p in (v.split(",") if key in _COMMA_LISTS else [v])]
                data[key] = [p.strip() for p in parts if p.strip()]
            else:
                v = values[-1].strip()
                if v == "" and key not in ("words",):
                    continue  # an empty form field is "not given"
                data[key] = v
        return cls.model_validate(data)

    def to_params(self) -> list[tuple[str, str]]:
        """``(alias, value)`` pairs of the fields that differ from their defaults, in a stable order."""
        out: list[tuple[str, str]] = []
        defaults = _defaults()
        for name, f in type(self).model_fields.items():
            key = f.alias or name
            value = getattr(self, name)
            default = defaults[name]
            if name == "crops":
                out += [("crop", box.format(i)) for i, box in sorted(value.items())]
            elif name == "text_weight":
                if self.words:
                    out.append((key, f"{value:g}"))
            elif name == "strategy":
                if self.feedback and value != default:
                    out.append((key, value))
            elif isinstance(value, list):
                out += [(key, str(v)) for v in value]
            elif value != default and value is not None:
                out.append((key, _fmt(value)))
        return out

    def describe(self) -> dict[str, Any]:
        """The request as JSON answers and reports show it (field names, crops as lists)."""
        d = self.model_dump(mode="json")
        d["crops"] = {str(i): list(b.as_tuple()) for i, b in self.crops.items()}
        if not self.words:
            d["text_weight"] = None
        if not self.feedback:
            d["strategy"] = None
        return d


@functools.cache
def _defaults() -> dict[str, Any]:
    """Every field's default value (compared, never mutated), computed once: to_params runs on each search."""
    return dict(SearchRequest())


def _is_list(cls: type[BaseModel], name: str) -> bool:
    return cls.model_fields[name].annotation in (list[str], "list[str]")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _param_error(cls: type[BaseModel], key: str, value: str, msg: str) -> ValidationError:
    from pydantic_core import InitErrorDetails, PydanticCustomError

    err = InitErrorDetails(
        type=PydanticCustomError("value_error", "{msg}", {"msg": msg}), loc=(key,), input=value, ctx={}
    )
    return ValidationError.from_exception_data(cls.__name__, [err])


def error_line(e: ValidationError, name: Callable[[str], str] = str) -> str:
    """One line for a validation error, naming the parameter(s): ``"k: must be >= 1; clss: unknown parameter"``.

    ``name`` turns a field (or URL parameter) name into what the user typed (e.g. ``--k`` on the command line).
    """
    parts = []
    for err in e.errors():
        loc = ".".join(name(str(x)) if i == 0 else str(x) for i, x in enumerate(err.get("loc", ()))) or "request"
        if err.get("type") == "extra_forbidden":
            parts.append(f"{loc}: unknown parameter")
            continue
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
