"""Readers, the figure schema and image loading (attributes load lazily: ``import pir.ingest.registry`` stays light)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ImageLoadError": "pir.ingest.images",
    "load_line_art": "pir.ingest.images",
    "to_line_art": "pir.ingest.images",
    "ReadIssue": "pir.ingest.schema",
    "detect_format": "pir.ingest.readers",
    "read_figures": "pir.ingest.readers",
    "PatentFigure": "pir.ingest.schema",
    "point_id": "pir.ingest.schema",
    "reader_names": "pir.ingest.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pir.ingest' has no attribute {name!r}")
