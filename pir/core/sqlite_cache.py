"""One way to open the on-disk SQLite caches so that several processes (Celery's prefork pool) can share them.

Caches are derivable, so a file that is not a database (or a malformed one) is moved aside, renamed
``NAME.corrupt-YYYYmmdd-HHMMSS``, and rebuilt empty with a WARNING; a cache that cannot be written (read-only file
system, permission denied) is one line naming the folder (:class:`~pir.core.errors.DataDirError`).
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import time
from pathlib import Path

from pir.core.diskspace import ensure_space, ensure_writable

log = logging.getLogger(__name__)

#: Free MB required to open a cache for writing (SQLite fails mid-transaction on a full disk).
CACHE_MIN_FREE_MB = 8
_CORRUPT = ("file is not a database", "malformed", "corrupt")


def open_sqlite(path: str | Path, *, timeout: float = 60.0, isolation_level: str | None = "") -> sqlite3.Connection:
    """Open ``path`` in WAL mode with a busy timeout, creating its folder.

    Raises :class:`~pir.core.errors.DiskSpaceError` (one line) when less than :data:`CACHE_MIN_FREE_MB` is free there,
    :class:`~pir.core.errors.DataDirError` when its folder cannot be written. A corrupt file is moved aside and rebuilt.
    Switching a new database to WAL needs an exclusive lock that SQLite's busy handler does not wait for, so two
    processes creating the same cache at once can get "database is locked"; that step is retried until ``timeout``.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        ensure_writable(p.parent)  # raises DataDirError naming the folder and the reason
        raise
    ensure_space(p.parent, 0, margin_mb=CACHE_MIN_FREE_MB, what=f"the cache {p.name}")
    try:
        return _open(p, timeout, isolation_level)
    except sqlite3.DatabaseError as e:
        if not any(m in str(e).lower() for m in _CORRUPT):
            if isinstance(e, sqlite3.OperationalError) and ("readonly" in str(e) or "unable to open" in str(e)):
                ensure_writable(p.parent)
            raise
        aside = _move_aside(p)
        log.warning(
            "the cache %s was not a usable SQLite database (%s): moved aside to %s and rebuilt empty "
            "(its entries are made again when needed)",
            p,
            e,
            aside.name if aside else "(already moved by another process)",
        )
        return _open(p, timeout, isolation_level)


def _open(p: Path, timeout: float, isolation_level: str | None) -> sqlite3.Connection:
    conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=isolation_level, check_same_thread=False)  # type: ignore[arg-type]  # "" (deferred) is valid
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02 + random.random() * 0.05)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the schema: a torn file fails here
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(p: Path) -> Path | None:
    """Rename ``p`` (and its ``-wal``/``-shm`` files) to ``p.corrupt-<timestamp>``; None when it is already gone."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = p.with_name(f"{p.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = p.with_name(f"{p.name}.corrupt-{stamp}-{n}")
    try:
        os.replace(p, aside)
    except FileNotFoundError:
        return None
    for suffix in ("-wal", "-shm"):
        side = p.with_name(p.name + suffix)
        try:
            os.replace(side, aside.with_name(aside.name + suffix))
        except FileNotFoundError:
            pass
    return aside
