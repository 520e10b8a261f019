"""The in-process-or-queue choice for ``pir ingest``: one library call for the CLI (and any other front end)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pir.core.config import Settings


def ingest_or_submit(
    path: str | Path,
    settings: Settings,
    *,
    queue: bool = False,
    wait: bool = False,
    on_submitted: Callable[[Any], None] | None = None,
    **options: Any,
) -> Any:
    """Ingest ``path`` in this process (an ``IngestSummary``), or queue it on the Celery workers.

    Queued: returns the ``SubmittedJob``, or with ``wait`` the job's final ``JobStatus`` (``on_submitted`` sees the
    job first, e.g. to print its id). ``options`` are those of :func:`pir.pipeline.ingest` (``fmt``,
    ``reader_options``, ``enrich``, ``force``, ...).
    """
    if not queue:
        from pir.pipeline import ingest  # lazy: start-up (torch)

        return ingest(path, settings, **options)
    from pir.workers.jobs import follow_job, submit_ingest  # lazy: start-up (celery, redis)

    job = submit_ingest(path, settings, **options)
    if on_submitted is not None:
        on_submitted(job)
    return follow_job(job.job_id, settings) if wait else job


def n_failed(result: Any) -> int:
    """Failed figures of an ingest summary or a job status."""
    d = result.to_dict() if hasattr(result, "to_dict") else {}
    return int(d.get("n_failed", d.get("failed", 0)) or 0)
