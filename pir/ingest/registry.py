"""The reader registry: name, detector and reader of every input format, in one place (no torch, no PIL).

A reader is a module that defines::

    def detect(root: Path, dirs: list[Path]) -> bool   # does this folder look like my format? (cheap peeks only)
    def read(root: Path, *, issues: list[ReadIssue], **options) -> Iterator[PatentFigure]

Adding a format is that module plus one :class:`ReaderSpec` line in :data:`READERS`. :func:`reader_names` (the CLI's
``--format`` choices) imports no reader module. Detection asks the readers in ``priority`` order (lowest first) and
falls back to :data:`DEFAULT`.

Example:
    >>> from pir.ingest.registry import reader_names
    >>> reader_names()
    ('uspto_raw', 'deeppatent2', 'generic')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["DEFAULT", "READERS", "ReaderSpec", "detect_format", "get_reader", "reader_names"]


@dataclass(frozen=True)
class ReaderSpec:
    """A registered reader: its ``--format`` name, its module (``detect`` + ``read``) and its detection priority."""

    name: str
    module: str
    priority: int = 50
    help: str = ""

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


READERS: tuple[ReaderSpec, ...] = (
    ReaderSpec("uspto_raw", "pir.ingest.uspto", 10, "raw USPTO design grants: grant XML + TIFF drawing sheets"),
    ReaderSpec("deeppatent2", "pir.ingest.deeppatent2", 20, "DeepPatent2 JSON records or DeepPatent2 image names"),
    ReaderSpec("generic", "pir.ingest.generic", 0, "images + optional sidecar table, or one folder per class"),
)
#: The format of a folder no reader claims.
DEFAULT = "generic"


def reader_names() -> tuple[str, ...]:
    """Names of the registered readers, in registration order."""
    return tuple(r.name for r in READERS)


def get_reader(name: str) -> ReaderSpec:
    """The reader registered as ``name``.

    Raises:
        ValueError: No reader of that name.
    """
    for r in READERS:
        if r.name == name:
            return r
    raise ValueError(f"unknown format {name!r}; expected one of {', '.join(reader_names())} or 'auto'")


def detect_format(root: str | Path) -> str:
    """The first registered reader (by priority) whose ``detect`` claims ``root``; :data:`DEFAULT` otherwise.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    from pir.ingest.normalize import _dirs_breadth_first  # lazy: start-up (`pir --help` reads reader_names only)

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    dirs = [root] if root.is_file() else _dirs_breadth_first(root, max_depth=3, max_dirs=300)
    for spec in sorted(READERS, key=lambda r: r.priority):
        if spec.load().detect(root, dirs):
            return spec.name
    return DEFAULT
