"""Confinement: every file a reader opens must resolve inside the folder given to ``pir ingest``.

:func:`pir.ingest.readers.read_figures` runs each reader step under a :class:`Confinement` (a context variable that is
set only while the reader itself runs, never while the caller handles a yielded figure). Readers ask
:func:`may_open` before opening a metadata file (sidecar, grant XML, JSON records) and :func:`read_figures` refuses
every figure whose image resolves elsewhere: ``../`` in a sidecar path, an absolute path, a symlinked file or a
symlinked folder that points outside. Each refusal is a :class:`~pir.ingest.schema.ReadIssue` naming the path and
where it resolves to. ``follow_outside=True`` (``pir ingest --follow-outside``) lifts the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from pir.ingest.schema import ReadIssue

__all__ = ["Confinement", "confined", "may_open"]


@dataclass
class Confinement:
    """The folder reads are confined to (resolved), the issues list refusals go to, and the escape hatch."""

    root: Path
    issues: list[ReadIssue] = field(default_factory=list)
    follow_outside: bool = False
    _refused: set[str] = field(default_factory=set)

    @classmethod
    def for_input(cls, path: str | Path, issues: list[ReadIssue], follow_outside: bool = False) -> Confinement:
        """The confinement of an ingest input: the folder itself, or the folder holding a single input file."""
        real = Path(os.path.realpath(path))
        return cls(real if real.is_dir() else real.parent, issues, follow_outside)

    def resolve(self, path: str | Path) -> Path:
        return Path(os.path.realpath(path))

    def inside(self, path: str | Path) -> bool:
        """Whether ``path`` (after following every symlink and ``..``) lies inside the root."""
        real = self.resolve(path)
        return real == self.root or real.is_relative_to(self.root)

    def allows(self, path: str | Path) -> bool:
        """``True`` when ``path`` may be opened; otherwise records one refusal for it and returns ``False``."""
        if self.follow_outside or self.inside(path):
            return True
        key = str(path)
        if key not in self._refused:
            self._refused.add(key)
            self.issues.append(ReadIssue(key, self.reason(path)))
        return False

    def reason(self, path: str | Path) -> str:
        return (
            f"refused: resolves to {self.resolve(path)}, outside the ingest folder {self.root} "
            "(pass --follow-outside to read it)"
        )


_CURRENT: ContextVar[Confinement | None] = ContextVar("pir_confinement", default=None)


@contextmanager
def confined(conf: Confinement | None) -> Iterator[None]:
    """Run the block under ``conf`` (``None``: no confinement)."""
    token = _CURRENT.set(conf)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def may_open(path: str | Path) -> bool:
    """Whether a reader may open ``path`` now (always ``True`` outside :func:`confined`); refusals are recorded."""
    conf = _CURRENT.get()
    return conf is None or conf.allows(path)


def confine_iter(inner: Iterator, conf: Confinement) -> Iterator:
    """Iterate ``inner`` with ``conf`` active only while ``inner`` runs."""
    while True:
        with confined(conf):
            try:
                item = next(inner)
            except StopIteration:
                return
        yield item
