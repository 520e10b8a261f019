"""Read patent figures from a folder: :func:`read_figures` dispatches to the registered readers.

The readers (raw USPTO design grants, DeepPatent2, a generic image folder) are registered in
:mod:`pir.ingest.registry`; their shared helpers live in :mod:`pir.ingest.normalize`. :func:`read_figures` yields
:class:`~pir.ingest.schema.PatentFigure` records lazily and appends problems (bad XML, a bad JSON record, a missing
image file, a file outside the folder, a point-id conflict) to ``issues`` instead of stopping. Images are not
decoded here; only their existence is checked.

Two guarantees on top of every reader:

* **Confinement** (:mod:`pir.ingest.confine`): every file opened, and every figure's image, resolves inside ``root``
  (no ``../``, absolute, or symlinked escapes) unless ``follow_outside=True``; refusals are issues naming the path.
* **No silent overwrite** (:mod:`pir.ingest.conflicts`): two sources producing one point id in a run are reported
  as a conflict naming both files; the first is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pir.ingest.confine import Confinement, confine_iter, confined
from pir.ingest.conflicts import RunIds
from pir.ingest.registry import detect_format as _detect_format
from pir.ingest.registry import get_reader
from pir.ingest.schema import PatentFigure, ReadIssue

__all__ = ["detect_format", "read_figures"]


def detect_format(root: str | Path, *, follow_outside: bool = False) -> str:
    """Guess a folder's layout from its contents (see each reader's ``detect``), peeking only at files inside it.

    * ``generic``: a single file, or a folder with a ``metadata.jsonl`` / ``metadata.json`` / ``metadata.csv``
      sidecar (explicit metadata wins over everything else).
    * ``uspto_raw``: USPTO grant XML (``<us-patent-grant``) in the folder or its sub-folders, next to drawing sheets.
    * ``deeppatent2``: a DeepPatent2 JSON record list, or image names that mostly follow DeepPatent2's
      ``<PATENTID>-<YYYYMMDD>-D<5 digits>[_<fig>].png`` naming (and no CSV sidecar).
    * ``generic`` otherwise (a single ``*.csv`` sidecar, class-per-folder, flat images).

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    with confined(Confinement.for_input(root, [], follow_outside)):
        return _detect_format(root)


def read_figures(
    root: str | Path,
    fmt: str | None = None,
    *,
    issues: list[ReadIssue] | None = None,
    columns: dict[str, str] | None = None,
    class_column: str | None = None,
    follow_outside: bool = False,
    **options: Any,
) -> Iterator[PatentFigure]:
    """Iterate over the figures found under ``root``, lazily (the checks of ``root`` and ``fmt`` are eager).

    Args:
        root: A folder (or, for the generic reader, a single image file).
        fmt: A registered reader name (:func:`pir.ingest.registry.reader_names`) or ``None``/``"auto"`` to
            :func:`detect_format`.
        issues: Receives one :class:`ReadIssue` per skipped file or record (bad XML or JSON, missing image, a file
            outside ``root``, a point-id conflict, ...).
        columns: Generic reader: PatentFigure field -> sidecar column name, on top of the built-in aliases.
        class_column: Generic reader: the column that gives ``class_label`` (e.g. ``"uspc_main_class"``).
        follow_outside: Also read files that resolve outside ``root`` (symlinks, ``../`` or absolute sidecar
            paths); refused and reported by default.
        **options: Passed to the format's reader (see :mod:`pir.ingest.uspto`, :mod:`pir.ingest.deeppatent2`,
            :mod:`pir.ingest.generic`).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: Unknown ``fmt``.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if issues is None:
        issues = []
    conf = Confinement.for_input(root, issues, follow_outside)
    if fmt in (None, "", "auto"):
        with confined(conf):
            fmt = _detect_format(root)
    spec = get_reader(fmt)
    if spec.name == "generic":
        options.update(columns=columns, class_column=class_column)
    with confined(conf):
        inner = iter(spec.load().read(root, issues=issues, **options))
    return _checked(confine_iter(inner, conf), conf, issues)


def _checked(figures: Iterator[PatentFigure], conf: Confinement, issues: list[ReadIssue]) -> Iterator[PatentFigure]:
    """Drop (and report) figures whose image resolves outside the folder, or whose point id another file has."""
    ids = RunIds()
    for fig in figures:
        if not conf.allows(fig.image_path):
            continue
        conflict = ids.claim(fig)
        if conflict is not None:
            issues.append(conflict)
            continue
        yield fig
