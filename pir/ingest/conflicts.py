"""Point-id conflicts: two different files claiming one figure id are reported, never silently overwritten.

Point ids are uuid5 of ``patent_id/figure_id``, so a grant folder whose XML claims another grant's number (or two
sidecar rows naming one figure) map two files to one point. Two checks:

* :class:`RunIds`, in :func:`pir.ingest.readers.read_figures`: within one run, the second file producing an id is a
  conflict naming both files; the first is kept.
* :func:`stored_conflicts`, before an upsert: a stored point whose payload names another file (``image_path``) with
  other content (``content_hash``) is not overwritten; the figure is reported as a conflict naming both files.
  The same content at a new path (a moved corpus) and new content at the same path (an edited drawing) are
  updates, not conflicts. ``force`` (``pir ingest --force``) overwrites anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pir.ingest.schema import PatentFigure, ReadIssue

__all__ = ["RunIds", "conflict_reason", "stored_conflicts"]


def _real(path: Any) -> str:
    return os.path.realpath(str(path))


def conflict_reason(fig: PatentFigure, other_path: str, where: str) -> str:
    return f"conflict: {fig.key} (point {fig.point_id}) is also claimed by {other_path} ({where}); not overwritten"


class RunIds:
    """Point ids seen in one run and the file each came from."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}

    def claim(self, fig: PatentFigure) -> ReadIssue | None:
        """``None`` when ``fig`` may be stored; a conflict issue when another file already produced its id."""
        path = _real(fig.image_path)
        first = self._first.setdefault(fig.point_id, path)
        if first == path:
            return None
        return ReadIssue(str(fig.image_path), conflict_reason(fig, first, "same run"))


def stored_conflicts(
    figures: Sequence[PatentFigure], hashes: Mapping[str, str], stored: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, str]:
    """Figure key -> conflict reason for figures whose stored point came from another file with other content.

    Args:
        figures: the batch.
        hashes: point id -> sha256 of the figure's image (as stored in ``content_hash``).
        stored: point id -> payload of the stored point (absent or ``None``: not stored).
    """
    out: dict[str, str] = {}
    for fig in figures:
        payload = stored.get(fig.point_id)
        if not payload:
            continue
        old_path, old_hash = payload.get("image_path"), payload.get("content_hash")
        if not old_path or not old_hash:
            continue
        if _real(old_path) != _real(fig.image_path) and old_hash != hashes.get(fig.point_id):
            out[fig.key] = conflict_reason(fig, str(old_path), "already stored")
    return out
