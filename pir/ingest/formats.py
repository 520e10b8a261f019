"""Reader names, importable without any heavy module (the CLI's ``--format`` choices read them)."""

from __future__ import annotations

from pir.ingest.registry import reader_names

READER_NAMES: tuple[str, ...] = reader_names()
FORMAT_CHOICES: tuple[str, ...] = ("auto", *READER_NAMES)
