"""Background ingest on Celery + Redis: ``enrich`` -> ``embed`` queues, jobs tracked in Redis, ``pir worker``.

Each job's manifest (its batches as figure ids and paths) is kept in ``<data_dir>/jobs.sqlite``
(:mod:`pir.workers.manifest`), so a job survives a broker or Redis that forgets it (``pir jobs resume``).

The same batch functions as the in-process path (:mod:`pir.pipeline`) run inside the tasks, so a queued ingest
stores exactly the points ``pir ingest`` would. Nothing here builds a Celery app at import time: use
:func:`pir.workers.app.create_app` with a :class:`~pir.core.config.Settings` (``celery -A pir.workers.entry`` does that
from the environment).

Example:
    >>> from pir.workers.jobs import submit_ingest, follow_job
    >>> job = submit_ingest("drawings/", settings)       # settings.worker.broker_url = "redis://..."
    >>> follow_job(job.job_id, settings).to_dict()
"""

from __future__ import annotations

__all__ = ["EMBED_QUEUE", "ENRICH_QUEUE", "QUEUES"]

ENRICH_QUEUE = "enrich"
EMBED_QUEUE = "embed"
QUEUES = (ENRICH_QUEUE, EMBED_QUEUE)
