"""The record every reader produces: one patent figure (or drawing sheet) with its metadata."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

#: Namespace of pir's deterministic point ids: uuid5(PIR_NAMESPACE, "<patent_id>/<figure_id>").
PIR_NAMESPACE = uuid.UUID("5b0c3c2e-6f1a-4e43-9d0b-7a2f1c9e8d11")

SourceFormat = Literal["uspto_raw", "deeppatent2", "generic", "synthetic"]


def point_id(patent_id: str, figure_id: str) -> str:
    """Deterministic Qdrant point id of a figure, so re-ingesting overwrites instead of duplicating."""
    return str(uuid.uuid5(PIR_NAMESPACE, f"{patent_id}/{figure_id}"))


def main_class(code: str) -> str:
    """Main class of a classification code: ``D14/203`` / ``D14-203`` -> ``D14``; ``14-03`` -> ``14``."""
    code = code.strip()
    for sep in ("/", "-", " ", "."):
        if sep in code:
            return code.split(sep, 1)[0].strip()
    return code


class PatentFigure(BaseModel):
    """One patent figure (a drawing sheet or a segmented figure) and what the patent says about it.

    ``class_label`` is the retrieval class used for training and evaluation (object name for DeepPatent2,
    USPC main class for the labelled 2007 set, the folder name for class-per-folder data, ...).
    """

    patent_id: str
    figure_id: str
    image_path: Path
    title: str | None = None
    object_name: str | None = None
    viewpoint: str | None = None
    uspc: list[str] = Field(default_factory=list)
    locarno: list[str] = Field(default_factory=list)
    cpc: list[str] = Field(default_factory=list)
    publication_date: date | None = None
    description: str | None = None
    class_label: str | None = None
    source_format: SourceFormat = "generic"
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("patent_id", "figure_id")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        v = str(v).strip()
        if not v:
            raise ValueError("must not be empty")
        return v

    @property
    def point_id(self) -> str:
        """Deterministic point id (uuid5 of patent id + figure id)."""
        return point_id(self.patent_id, self.figure_id)

    @property
    def key(self) -> str:
        """Human-readable unique key, ``<patent_id>/<figure_id>``."""
        return f"{self.patent_id}/{self.figure_id}"

    @property
    def year(self) -> int | None:
        return self.publication_date.year if self.publication_date else None

    @property
    def classes(self) -> list[str]:
        """All class codes (USPC, Locarno, CPC) plus their main classes, de-duplicated, order kept."""
        out: list[str] = []
        for code in [*self.uspc, *self.locarno, *self.cpc]:
            for c in (code.strip(), main_class(code)):
                if c and c not in out:
                    out.append(c)
        if self.class_label and self.class_label not in out:
            out.append(self.class_label)
        return out

    def content_hash(self) -> str:
        """sha256 of the image file's bytes (used to skip figures already stored with the same encoder)."""
        return file_sha256(self.image_path)

    def payload(self) -> dict[str, Any]:
        """The Qdrant payload stored with the figure's vector (flat, JSON-safe, indexed fields included)."""
        return {
            "patent_id": self.patent_id,
            "figure_id": self.figure_id,
            "image_path": str(self.image_path),
            "title": self.title,
            "object_name": self.object_name,
            "viewpoint": self.viewpoint,
            "uspc": self.uspc,
            "locarno": self.locarno,
            "cpc": self.cpc,
            "classes": self.classes,
            "class_label": self.class_label,
            "publication_date": self.publication_date.isoformat() if self.publication_date else None,
            "year": self.year,
            "description": self.description,
            "source_format": self.source_format,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PatentFigure:
        """Rebuild a figure from a stored payload."""
        fields = {k: payload.get(k) for k in cls.model_fields if k in payload and payload.get(k) is not None}
        return cls.model_validate(fields)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class ReadIssue:
    """A metadata problem found while reading: the file (or ``file#record``) and what is wrong with it."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
