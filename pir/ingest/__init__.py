"""Readers, the figure schema and image loading."""

from __future__ import annotations

from pir.ingest.images import ImageLoadError, load_line_art, to_line_art
from pir.ingest.readers import ReadIssue, detect_format, read_figures
from pir.ingest.schema import PatentFigure, point_id

__all__ = [
    "ImageLoadError",
    "PatentFigure",
    "ReadIssue",
    "detect_format",
    "load_line_art",
    "point_id",
    "read_figures",
    "to_line_art",
]
