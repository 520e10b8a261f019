"""Typed shapes of the JSON API (FastAPI ``response_model``s), so ``/openapi.json`` documents what is returned.

The search state itself is :class:`pir.search.request.SearchRequest` (its URL parameters are generated from its
fields); these are the answers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class FigureOut(BaseModel):
    """A stored figure's public fields (never its file path)."""

    id: str = Field(description="point id (uuid5 of patent id + figure id)")
    patent_id: str
    figure_id: str
    title: str | None = None
    object_name: str | None = None
    viewpoint: str | None = None
    class_label: str | None = None
    classes: list[str] = Field(default_factory=list)
    year: int | None = None
    publication_date: str | None = None
    description: str | None = None
    descriptions: list[str] = Field(default_factory=list)


class HitOut(BaseModel):
    """One ranked prior-art figure."""

    rank: int
    score: float = Field(description="see SearchAnswer.score for what it means in this search's mode")
    id: str
    patent_id: str
    figure_id: str
    title: str | None = None
    class_label: str | None = None
    classes: list[str] = Field(default_factory=list)
    viewpoint: str | None = None
    year: int | None = None
    descriptions: list[str] = Field(default_factory=list)
    why: list[str] = Field(default_factory=list, description="the stored words that matched the query's words")
    thumb_url: str = ""


class FileErrorOut(BaseModel):
    """An uploaded file that could not be used (the rest of the query still ran)."""

    file: str = Field(description="the file name as uploaded")
    status: int = Field(description="the HTTP status this file alone would have had (413, 415, 422)")
    message: str = Field(description="one line: the file and the problem")


class ErrorOut(BaseModel):
    """An error answer: one line, plus per-file errors when uploads failed."""

    detail: str
    errors: list[FileErrorOut] = Field(default_factory=list)


class MarkOut(BaseModel):
    """A figure marked relevant (``pos``) or not (``neg``) in relevance feedback (the marks tray)."""

    id: str = Field(description="the figure id as given in pos=/neg= (undo: drop it from the URL)")
    mark: Literal["pos", "neg"]
    patent_id: str
    figure_id: str
    title: str | None = None
    thumb_url: str = ""


class FacetsOut(BaseModel):
    """Counts in the current hit list."""

    classes: dict[str, int] = Field(default_factory=dict, description="hits per class code / object class")
    years: dict[str, int] = Field(default_factory=dict, description="hits per publication year")


class ClusterOut(BaseModel):
    """A group of look-alike hits (k-means on their image vectors)."""

    label: str = Field(description="the title / object words most of its figures share ('mixed' when none)")
    size: int
    ids: list[str] = Field(description="its hits' point ids, in rank order")


class SearchAnswer(BaseModel):
    """A search's hits, the request as executed, and where the time went."""

    query: dict[str, object] = Field(description="the SearchRequest as executed (field names), plus mode and aliases")
    mode: str = Field("", description="image, text, image+text (the parts of the query that ran)")
    score: str = Field("", description="what a hit's score means in this mode (min_score applies to it)")
    encoder: str = Field(description="the image encoder, name@version")
    encode_ms: float = Field(description="embedding the drawings and words (ms)")
    search_ms: float
    results: list[HitOut]
    marks: list[MarkOut] = Field(default_factory=list, description="the marked figures (relevance feedback)")
    facets: FacetsOut = Field(default_factory=FacetsOut)
    clusters: list[ClusterOut] = Field(default_factory=list, description="groups of look-alike hits (clusters=N)")
    errors: list[FileErrorOut] = Field(default_factory=list, description="uploaded files that could not be used")
    url: str = Field("", description="the page URL of this search (shareable)")


class PatentOut(BaseModel):
    """A patent and all its stored figures, in figure order."""

    patent_id: str
    title: str | None = None
    classes: list[str] = Field(default_factory=list)
    year: int | None = None
    publication_date: str | None = None
    figures: list[FigureOut]


class HealthOut(BaseModel):
    status: str
    count: int = Field(description="stored figures")


class EncoderInfoOut(BaseModel):
    name: str
    version: str
    dim: int
    text_aligned: bool = Field(description="trained into the text model's space (drawing + words use it)")
    device: str


class StoreInfoOut(BaseModel):
    backend: str | None = Field(None, description="edge (embedded Qdrant) or server")
    collection: str | None = None
    dim: int | None = None
    count: int | None = Field(None, description="stored figures")
    encoder: str | None = Field(None, description="name@version of the encoder the collection was built with")


class LimitsOut(BaseModel):
    max_images: int
    max_upload_bytes: int
    max_pixels: int
    max_k: int
    max_concurrent: int
    max_queued: int
    encode_threads: int = Field(description="torch threads each search's forward pass uses")


class SearchesOut(BaseModel):
    running: int
    waiting: int
    peak: int


class InfoOut(BaseModel):
    """This server: pir's version, the encoder, the store, the limits and the searches running now."""

    pir: str
    encoder: EncoderInfoOut
    store: StoreInfoOut
    limits: LimitsOut
    started: str = Field(description="when this server started (UTC, ISO 8601)")
    searches: SearchesOut


class DrawingsOut(BaseModel):
    drawings: list[str] = Field(description="content hashes of the uploaded drawings (use them as q=...)")
    errors: list[FileErrorOut] = Field(default_factory=list, description="uploaded files that could not be used")


class SavedOut(BaseModel):
    """A saved search or a history entry: reopen it at its ``url``."""

    id: int
    name: str = Field("", description="the name it was saved under ('' in the history)")
    url: str = Field(description="the search page URL (/?...), holding the whole search")
    summary: str = Field("", description="the search in a few words: drawings, words, filters, marks")
    hits: int | None = Field(None, description="number of hits when it ran (history)")
    created: str = Field(description="when, UTC (YYYY-MM-DD HH:MM)")
