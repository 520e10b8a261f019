"""A queued job's manifest: its batches (figure ids and image paths) and which of them are stored, kept on disk.

Redis (the broker, the job state) may forget everything when it restarts without persistence; the manifest does not.
It is a small SQLite file in the submitting data dir (``<data_dir>/jobs.sqlite``, see :func:`manifest_path`),
written before anything is queued. The path travels in the task options, so an embed worker that sees the same file
(the same host or data dir: always the case with the embedded store) records each finished batch there first, and
a batch run twice (redelivered after a worker or broker death) finds its first result instead of being counted
again. :func:`pir.workers.jobs.reconcile` compares it with Redis and submits the batches that are not stored.

Tables: ``jobs`` (one row per job: path, collection, encoder, totals, discovery problems as JSON) and ``batches``
(one row per batch: the figures as ``PatentFigure`` JSON, how often it was submitted, its result once recorded;
the first result recorded wins).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pir.core.config import Settings

MANIFEST_NAME = "jobs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, created TEXT NOT NULL, meta TEXT NOT NULL, issues TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS batches (
    job_id TEXT NOT NULL, batch INTEGER NOT NULL, figures TEXT NOT NULL, submitted INTEGER NOT NULL DEFAULT 0,
    result TEXT, done_at TEXT, PRIMARY KEY (job_id, batch)
);
"""


def manifest_path(settings: Settings) -> Path:
    """Where the manifests of jobs submitted with these settings live: ``<data_dir>/jobs.sqlite`` (absolute)."""
    return (Path(settings.data_dir) / MANIFEST_NAME).resolve()


class Manifest:
    """The manifest file (thread-safe; one connection per instance). Use :func:`open_manifest`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------------- writing
    def create_job(
        self, job_id: str, meta: dict[str, Any], issues: list[dict[str, str]], batches: Iterable[list[dict[str, Any]]]
    ) -> None:
        """Write a job and its batches (numbered from 0) in one transaction."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO jobs (job_id, created, meta, issues) VALUES (?, ?, ?, ?)",
                (job_id, str(meta.get("created", "")), json.dumps(meta), json.dumps(issues)),
            )
            self._conn.executemany(
                "INSERT INTO batches (job_id, batch, figures) VALUES (?, ?, ?)",
                ((job_id, n, json.dumps(figs)) for n, figs in enumerate(batches)),
            )

    def delete_job(self, job_id: str) -> None:
        """Forget a job (its submission failed)."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM batches WHERE job_id = ?", (job_id,))
            self._conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def set_state(self, job_id: str, state: str) -> None:
        """Set the job's ``state`` (``queueing`` while it is being submitted, then ``queued``)."""
        with self._lock, self._conn:
            row = self._conn.execute("SELECT meta FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is not None:
                meta = {**json.loads(row[0]), "state": state}
                self._conn.execute("UPDATE jobs SET meta = ? WHERE job_id = ?", (json.dumps(meta), job_id))

    def mark_submitted(self, job_id: str, batches: Iterable[int]) -> None:
        """Count one more submission of each batch."""
        with self._lock, self._conn:
            self._conn.executemany(
                "UPDATE batches SET submitted = submitted + 1 WHERE job_id = ? AND batch = ?",
                ((job_id, int(b)) for b in batches),
            )

    def record(self, job_id: str, batch: int | str, result: dict[str, Any], at: str = "") -> bool:
        """Record a batch's result (``ingested``/``skipped`` counts, ``failed`` entries); the first record wins.

        Returns:
            True when this call recorded it; False when it was recorded before or the batch is unknown.
        """
        with self._lock, self._conn:
            cur = self._conn.execute(
                "UPDATE batches SET result = ?, done_at = ? WHERE job_id = ? AND batch = ? AND result IS NULL",
                (json.dumps(result), at, job_id, int(batch)),
            )
            return cur.rowcount == 1

    # ------------------------------------------------------------------------------------------------- reading
    def job(self, job_id: str) -> dict[str, Any] | None:
        """``{"meta": ..., "issues": [...]}`` of a job, or None when this manifest does not have it."""
        with self._lock:
            row = self._conn.execute("SELECT meta, issues FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else {"meta": json.loads(row[0]), "issues": json.loads(row[1])}

    def unfinished_jobs(self, since: str = "") -> list[tuple[str, dict[str, Any]]]:
        """``(job id, meta)`` of the jobs created at or after ``since`` (ISO time) with batches not recorded."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT j.job_id, j.meta FROM jobs j WHERE j.created >= ? AND EXISTS "
                "(SELECT 1 FROM batches b WHERE b.job_id = j.job_id AND b.result IS NULL) ORDER BY j.created",
                (since,),
            ).fetchall()
        return [(j, json.loads(m)) for j, m in rows]

    def result(self, job_id: str, batch: int | str) -> dict[str, Any] | None:
        """The recorded result of a batch, or None (not recorded, or unknown)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT result FROM batches WHERE job_id = ? AND batch = ?", (job_id, int(batch))
            ).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def results(self, job_id: str) -> dict[int, dict[str, Any]]:
        """Every recorded batch result of a job, by batch number."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch, result FROM batches WHERE job_id = ? AND result IS NOT NULL ORDER BY batch", (job_id,)
            ).fetchall()
        return {int(b): json.loads(r) for b, r in rows}

    def pending(self, job_id: str) -> list[tuple[int, list[dict[str, Any]]]]:
        """``(batch, figures)`` of every batch without a recorded result, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch, figures FROM batches WHERE job_id = ? AND result IS NULL ORDER BY batch", (job_id,)
            ).fetchall()
        return [(int(b), json.loads(f)) for b, f in rows]

    def batch_figures(self, job_id: str, batches: Iterable[int]) -> list[tuple[int, list[dict[str, Any]]]]:
        """``(batch, figures)`` of the given batches (unknown ones left out)."""
        out = []
        with self._lock:
            for b in batches:
                row = self._conn.execute(
                    "SELECT figures FROM batches WHERE job_id = ? AND batch = ?", (job_id, int(b))
                ).fetchone()
                if row is not None:
                    out.append((int(b), json.loads(row[0])))
        return out

    def submissions(self, job_id: str) -> dict[int, int]:
        """How often each batch was submitted."""
        with self._lock:
            rows = self._conn.execute("SELECT batch, submitted FROM batches WHERE job_id = ?", (job_id,)).fetchall()
        return {int(b): int(n) for b, n in rows}

    def counts(self, job_id: str) -> dict[str, int]:
        """``done``/``skipped``/``failed`` figures and ``batches_done`` from the recorded results (plus discovery
        problems in ``failed``)."""
        job = self.job(job_id) or {"issues": []}
        out = {"done": 0, "skipped": 0, "failed": len(job["issues"]), "batches_done": 0}
        for r in self.results(job_id).values():
            out["done"] += _n(r.get("ingested", 0))
            out["skipped"] += _n(r.get("skipped", 0))
            out["failed"] += _n(r.get("failed", []))
            out["batches_done"] += 1
        return out

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _n(v: Any) -> int:
    return len(v) if isinstance(v, list | tuple) else int(v)


def open_manifest(path: str | Path, *, create: bool = False) -> Manifest | None:
    """Open the manifest at ``path``; None when it does not exist (and ``create`` is false).

    Raises:
        pir.core.errors.DiskSpaceError: Creating it with less than a few MB free.
    """
    from pir.core.sqlite_cache import open_sqlite  # lazy: only opening the manifest needs it

    p = Path(path)
    if not create:
        if not p.is_file():
            return None
        # an existing manifest: no free-space check (reading must work on a full disk; a write then fails alone)
        conn = sqlite3.connect(str(p), timeout=30.0, isolation_level="", check_same_thread=False)  # type: ignore[call-overload]  # "" (deferred) is a valid isolation level
        conn.execute("PRAGMA busy_timeout = 30000")
        return Manifest(p, conn)
    conn = open_sqlite(p, timeout=30.0, isolation_level="")
    conn.executescript(_SCHEMA)
    conn.commit()
    return Manifest(p, conn)
