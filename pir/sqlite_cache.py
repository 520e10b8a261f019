"""One way to open the on-disk SQLite caches so that several processes (Celery's prefork pool) can share them."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from pir.diskspace import ensure_space

#: Free MB required to open a cache for writing (SQLite fails mid-transaction on a full disk).
CACHE_MIN_FREE_MB = 8


def open_sqlite(path: str | Path, *, timeout: float = 60.0, isolation_level: str | None = "") -> sqlite3.Connection:
    """Open ``path`` in WAL mode with a busy timeout, creating its folder.

    Raises :class:`~pir.errors.DiskSpaceError` (one line) when less than :data:`CACHE_MIN_FREE_MB` is free there.
    Switching a new database to WAL needs an exclusive lock that SQLite's busy handler does not wait for, so two
    processes creating the same cache at once can get "database is locked"; that step is retried until ``timeout``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ensure_space(p.parent, 0, margin_mb=CACHE_MIN_FREE_MB, what=f"the cache {p.name}")
    conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=isolation_level, check_same_thread=False)  # type: ignore[arg-type]  # "" (deferred) is valid
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.02 + random.random() * 0.05)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn
