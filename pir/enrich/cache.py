"""SQLite cache of generated descriptions, safe for several processes (WAL journal, busy timeout).

Tables:
    ``descriptions``: content hash of (inputs, backend, model, prompt version, k, max_chars) -> descriptions.
    ``figures``: figure key (``<patent_id>/<figure_id>``) -> latest descriptions, whatever the backend, with the
    hash of the inputs they were made from (see :func:`inputs_hash`); ``pir enrich --show`` and
    :func:`pir.enrich.latest_descriptions` read it.
    ``captions``: sha256 of (image bytes, caption model) -> caption.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pir.core.sqlite_cache import open_sqlite
from pir.enrich.base import PROMPT_VERSION
from pir.enrich.inputs import FigureInputs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS descriptions (
    hash TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL,
    inputs TEXT NOT NULL, descriptions TEXT NOT NULL, fallback TEXT, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS figures (
    key TEXT PRIMARY KEY, hash TEXT NOT NULL, backend TEXT NOT NULL, model TEXT NOT NULL,
    inputs TEXT NOT NULL, descriptions TEXT NOT NULL, fallback TEXT, updated REAL NOT NULL, inputs_hash TEXT
);
CREATE TABLE IF NOT EXISTS captions (
    hash TEXT PRIMARY KEY, model TEXT NOT NULL, caption TEXT NOT NULL, created REAL NOT NULL
);
"""


def cache_key(
    inputs: FigureInputs,
    backend: str,
    model: str,
    k: int,
    max_chars: int,
    lexicon: str,
    *,
    temperature: float | None = None,
    seed: int | None = None,
) -> str:
    """sha256 of the inputs (their aliases stand in as ``lexicon``, see
    :func:`pir.enrich.aliases.lexicon_signature`), backend, model, prompt version, k, the length limit and, for
    sampling backends, the temperature and seed (None for a deterministic backend leaves them out of the key)."""
    fields: dict[str, Any] = {
        "inputs": inputs.to_json(aliases=False),
        "lexicon": lexicon,
        "backend": backend,
        "model": model,
        "prompt": PROMPT_VERSION,
        "k": k,
        "max_chars": max_chars,
    }
    if temperature is not None:
        fields["temperature"] = float(temperature)
    if seed is not None:
        fields["seed"] = int(seed)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def inputs_hash(inputs: FigureInputs, k: int, max_chars: int) -> str:
    """sha256 of what a figure's descriptions are made from, whatever the backend: its inputs (without the
    aliases), K and the length limit. Changed metadata gives another hash, so stale descriptions are not reused."""
    payload = json.dumps({"inputs": inputs.to_json(aliases=False), "k": k, "max_chars": max_chars}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheRow:
    """One result to store. ``content=False`` records it for the figure key only (a cache hit, or a transport
    failure whose template fallback must not stop a later run from asking the backend again). ``inputs_hash``
    (:func:`inputs_hash`) goes with the figure key's entry."""

    fig_key: str | None
    hash: str
    inputs: FigureInputs
    backend: str
    model: str
    descriptions: list[str]
    fallback: str | None = None
    content: bool = True
    inputs_hash: str | None = None


@dataclass(frozen=True)
class CachedEntry:
    """One cached result."""

    hash: str
    backend: str
    model: str
    descriptions: list[str]
    fallback: str | None
    inputs: dict[str, Any]
    inputs_hash: str | None = None


class EnrichCache:
    """The enrichment cache at ``path`` (created on first use)."""

    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self._conn = open_sqlite(self.path, timeout=timeout, isolation_level=None)
        self._conn.executescript(_SCHEMA)
        self._migrate()
        self._lock = threading.Lock()  # one connection; calls from several threads are serialised

    def _migrate(self) -> None:
        """Add ``figures.inputs_hash`` to a cache written before it existed (its rows stay without a hash)."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(figures)")}
        if "inputs_hash" not in columns:
            try:
                self._conn.execute("ALTER TABLE figures ADD COLUMN inputs_hash TEXT")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def __enter__(self) -> EnrichCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- descriptions --------------------------------------------------------------------------------------------
    def get(self, key_hash: str) -> CachedEntry | None:
        """The cached result for a content hash."""
        row = self._one(
            "SELECT hash, backend, model, descriptions, fallback, inputs FROM descriptions WHERE hash = ?", (key_hash,)
        )
        return _entry(row)

    def put_many(self, rows: list[CacheRow]) -> None:
        """Store results in one transaction."""
        if not rows:
            return
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    inputs_json, texts_json = row.inputs.to_json(), json.dumps(row.descriptions, ensure_ascii=False)
                    if row.content:
                        self._conn.execute(
                            "INSERT OR REPLACE INTO descriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                row.hash,
                                row.backend,
                                row.model,
                                PROMPT_VERSION,
                                inputs_json,
                                texts_json,
                                row.fallback,
                                now,
                            ),
                        )
                    if row.fig_key:
                        self._conn.execute(
                            "INSERT OR REPLACE INTO figures (key, hash, backend, model, inputs, descriptions, "
                            "fallback, updated, inputs_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                row.fig_key,
                                row.hash,
                                row.backend,
                                row.model,
                                inputs_json,
                                texts_json,
                                row.fallback,
                                now,
                                row.inputs_hash,
                            ),
                        )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def figure(self, fig_key: str) -> CachedEntry | None:
        """The latest descriptions stored for a figure key (``"USD0907292/D00001"``), with their inputs hash."""
        row = self._one(
            "SELECT hash, backend, model, descriptions, fallback, inputs, inputs_hash FROM figures WHERE key = ?",
            (fig_key,),
        )
        return _entry(row)

    def figure_keys(self, prefix: str = "", limit: int = 20) -> list[str]:
        """Stored figure keys starting with ``prefix`` (for "did you mean" hints)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._lock:
            rows = self._conn.execute(
                "SELECT key FROM figures WHERE key LIKE ? ESCAPE '\\' ORDER BY key LIMIT ?", (pattern, limit)
            ).fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        """Number of cached results."""
        row = self._one("SELECT COUNT(*) FROM descriptions", ())
        return int(row[0]) if row else 0

    # -- captions ------------------------------------------------------------------------------------------------
    def get_caption(self, key_hash: str) -> str | None:
        row = self._one("SELECT caption FROM captions WHERE hash = ?", (key_hash,))
        return row[0] if row else None

    def put_caption(self, key_hash: str, model: str, caption: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO captions VALUES (?, ?, ?, ?)", (key_hash, model, caption, time.time())
            )


def _entry(row: tuple[Any, ...] | None) -> CachedEntry | None:
    if row is None:
        return None
    key_hash, backend, model, texts, fallback, inputs, *rest = row
    return CachedEntry(key_hash, backend, model, json.loads(texts), fallback, json.loads(inputs), *rest)
