"""Saved searches and search history of ``pir serve``: one SQLite file under ``<data_dir>/web/history.sqlite``.

A search is stored as its page URL (the URL holds the whole search state, so reopening it runs the same search).
Rows belong to an owner: a hash of the API key the request came with (``""`` on a server without a key), so a
server shared behind different keys keeps each key's cases apart and never stores a key itself.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

#: Most history rows kept per owner (the oldest go first); saved searches are kept until deleted.
MAX_HISTORY = 200
#: Longest stored URL and name.
MAX_URL, MAX_NAME = 8000, 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('saved', 'history')),
    name TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL,
    hits INTEGER,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS searches_owner ON searches (owner, kind, id);
"""


def owner_of(api_key: str | None) -> str:
    """The owner tag of a request: a short hash of its API key ('' without one)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


def check_url(url: str) -> str:
    """A search page URL of this server (``/?...``), never another site (no open redirect).

    Raises:
        ValueError: anything else.
    """
    url = url.strip()
    if not url.startswith("/?") and url != "/" or len(url) > MAX_URL or "\n" in url or "\\" in url:
        raise ValueError("url: a search page URL of this server (starting with /?) expected")
    return url


def describe(url: str) -> str:
    """A search page URL in a few words for the history page: its drawings, words, filters and marks."""
    p = parse_qs(url.partition("?")[2])

    def many(key: str) -> list[str]:
        return [x.strip() for v in p.get(key, []) for x in v.split(",") if x.strip()]

    def one(key: str) -> str:
        return (p.get(key) or [""])[-1].strip()

    parts: list[str] = []
    if n := len(p.get("q", [])):
        crops = len(p.get("crop", []))
        parts.append(f"{n} drawing{'s' if n > 1 else ''}" + (f" ({crops} cropped)" if crops else ""))
    if one("like"):
        parts.append(f"like {one('like')}")
    if one("words"):
        parts.append(f'"{one("words")}"')
    for key, label in (("cls", "class"), ("viewpoint", "view"), ("exclude", "not")):
        if vals := many(key):
            parts.append(f"{label} {', '.join(vals)}")
    for key in ("after", "before"):
        if one(key):
            parts.append(f"{key} {one(key)}")
    if one("year_from") or one("year_to"):
        parts.append(f"years {one('year_from') or '…'}-{one('year_to') or '…'}")
    if one("min_score"):
        parts.append(f"score >= {one('min_score')}")
    if p.get("pos") or p.get("neg"):
        parts.append(f"{len(p.get('pos', []))} marked relevant, {len(p.get('neg', []))} not")
    text = " · ".join(parts) or "all figures"
    return text if len(text) <= 200 else text[:199] + "…"


class History:
    """Saved searches and history in one SQLite file (a connection per call; safe across threads)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def record(self, owner: str, url: str, hits: int) -> None:
        """Add a search to the owner's history (not twice in a row; the oldest beyond :data:`MAX_HISTORY` go)."""
        url = check_url(url)
        with self._lock, self._connect() as db:
            last = db.execute(
                "SELECT url FROM searches WHERE owner = ? AND kind = 'history' ORDER BY id DESC LIMIT 1", (owner,)
            ).fetchone()
            if last and last["url"] == url:
                return
            db.execute(
                "INSERT INTO searches (owner, kind, url, hits, created) VALUES (?, 'history', ?, ?, ?)",
                (owner, url, hits, time.time()),
            )
            db.execute(
                "DELETE FROM searches WHERE owner = ? AND kind = 'history' AND id NOT IN "
                "(SELECT id FROM searches WHERE owner = ? AND kind = 'history' ORDER BY id DESC LIMIT ?)",
                (owner, owner, MAX_HISTORY),
            )

    def save(self, owner: str, name: str, url: str) -> dict[str, Any]:
        """Save a search under a name; the saved row."""
        url = check_url(url)
        name = " ".join(name.split())[:MAX_NAME] or "search"
        with self._lock, self._connect() as db:
            cur = db.execute(
                "INSERT INTO searches (owner, kind, name, url, created) VALUES (?, 'saved', ?, ?, ?)",
                (owner, name, url, time.time()),
            )
            row = db.execute("SELECT * FROM searches WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _row(row)

    def list(self, owner: str, kind: str, limit: int = 50) -> list[dict[str, Any]]:
        """The owner's saved searches or history, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM searches WHERE owner = ? AND kind = ? ORDER BY id DESC LIMIT ?", (owner, kind, limit)
            ).fetchall()
        return [_row(r) for r in rows]

    def delete(self, owner: str, search_id: int) -> bool:
        """Delete one of the owner's saved searches; False when there is none with that id."""
        with self._lock, self._connect() as db:
            cur = db.execute(
                "DELETE FROM searches WHERE owner = ? AND kind = 'saved' AND id = ?", (owner, int(search_id))
            )
            return cur.rowcount > 0


def _row(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": int(r["id"]),
        "name": str(r["name"]),
        "url": str(r["url"]),
        "summary": describe(str(r["url"])),
        "hits": r["hits"],
        "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(r["created"]))),
    }
