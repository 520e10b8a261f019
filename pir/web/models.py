"""Typed shapes of the JSON API (FastAPI ``response_model``s), so ``/openapi.json`` documents what is returned.

The search state itself is :class:`pir.search.request.SearchRequest` (its URL parameters are generated from its
fields); these are the answers.
"""

from __future__ import annotations

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
    score: float = Field(description="cosine similarity (drawing alone) or the fused score (words, drawing + words)")
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


class SearchAnswer(BaseModel):
    """A search's hits, the request as executed, and where the time went."""

    query: dict[str, object] = Field(description="the SearchRequest as executed (field names), plus mode and aliases")
    encoder: str = Field(description="the image encoder, name@version")
    encode_ms: float
    search_ms: float
    results: list[HitOut]
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


class DrawingsOut(BaseModel):
    drawings: list[str] = Field(description="content hashes of the uploaded drawings (use them as q=...)")
