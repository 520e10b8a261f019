"""Readers, the figure schema and image loading."""

from __future__ import annotations

from pir.ingest.schema import PatentFigure, point_id

__all__ = ["PatentFigure", "point_id"]
