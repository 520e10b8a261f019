"""Queued ingest jobs: submit a folder as batches (:func:`submit_ingest`) and follow them (:func:`follow_job`).

The job and worker state in Redis (counters, failures, heartbeats) is in :mod:`pir.workers.state`; this module adds
the submitting and following side. Nothing here is imported by the tasks, so there is no import loop.

Example:
    >>> job = submit_ingest("drawings/", settings)
    >>> follow_job(job.job_id, settings).to_dict()["pending"]
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pir.config import Settings
from pir.errors import JobError, redact_url
from pir.workers import state as _state
from pir.workers.state import *  # noqa: F403 - re-exports the job-state API (pir.workers.state.__all__)
from pir.workers.state import JOB_TTL_S, JobStatus, _now, alive_workers, connect, job_key, read_status, state_url
from pir.workers.state import job_status as job_status

if TYPE_CHECKING:
    from pir.ingest.schema import PatentFigure

log = logging.getLogger(__name__)

#: The job-state API re-exported from :mod:`pir.workers.state`, and this module's own names.
__all__ = [*_state.__all__, "SubmittedJob", "follow_job", "job_status", "submit_ingest"]


@dataclass
class SubmittedJob:
    """A job that was queued."""

    job_id: str
    total: int
    n_batches: int
    read_failures: int = 0


def portable_encoder_name(name: str) -> str:
    """``name`` as an absolute path when it names an existing encoder directory (or file) here; built-in names as is.

    Workers run in another directory (or on another host): a relative ``runs/x`` would be resolved there.
    """
    path = Path(name)
    return str(path.resolve()) if path.exists() else name


def _absolute(figure: PatentFigure) -> PatentFigure:
    """The figure with an absolute image path (workers have another working directory)."""
    if figure.image_path.is_absolute():
        return figure
    return figure.model_copy(update={"image_path": figure.image_path.resolve()})


def _discover(
    app: Any, path: str | Path, settings: Settings, fmt: str | None, reader_options: dict[str, Any] | None
) -> tuple[Path, list[PatentFigure], list[Any]]:
    """(root, figures with absolute paths, read issues); closes ``app`` and raises JobError when nothing is found."""
    from pir.pipeline import discover  # lazy: start-up (PIL, numpy, tqdm)

    root = Path(path).resolve()
    try:
        figures, issues = discover(root, settings, fmt=fmt, **(reader_options or {}))
    except (OSError, ValueError) as e:
        app.close()
        raise JobError(f"{path}: cannot read: {e}") from e
    if not figures:
        app.close()
        detail = f" ({len(issues)} problems, first: {issues[0]})" if issues else ""
        raise JobError(f"{path}: no drawings found{detail}")
    return root, [_absolute(f) for f in figures], issues


def _write_job(client: Any, job_id: str, meta: dict[str, Any], issues: list[Any]) -> None:
    """Store the job's hash and its read failures in Redis (one transaction, with the job TTL)."""
    pipe = client.pipeline(transaction=True)
    pipe.hset(job_key(job_id), mapping=meta)
    if issues:
        pipe.rpush(
            job_key(job_id, "failures"),
            *(json.dumps({"key": "", "path": i.path, "reason": i.reason}) for i in issues),
        )
    for part in (None, "failures"):
        pipe.expire(job_key(job_id, part), JOB_TTL_S)
    pipe.execute()


def _enqueue(
    app: Any, client: Any, job_id: str, batches: list[list[PatentFigure]], options: dict[str, Any], enrich: bool
) -> None:
    """Send one ``enrich | embed`` chain (or ``embed`` alone) per batch; closes ``app``; JobError when it fails."""
    from pir.workers.tasks import EMBED_TASK, ENRICH_TASK  # lazy: start-up (celery, kombu)

    enrich_task, embed_task = app.tasks[ENRICH_TASK], app.tasks[EMBED_TASK]
    try:
        with app.producer_or_acquire() as producer:
            for n, batch in enumerate(batches):
                args = (job_id, n, [f.model_dump(mode="json") for f in batch], options)
                # `.s()`: the chain prepends the enrich result (figure key -> descriptions) to embed's arguments
                sig = (enrich_task.si(*args) | embed_task.s(*args)) if enrich else embed_task.si(None, *args)
                sig.apply_async(producer=producer)
    except Exception as e:
        client.hset(job_key(job_id), "state", f"enqueue failed: {e}")
        raise JobError(f"queueing job {job_id} failed after Redis answered: {e}") from e
    finally:
        app.close()


def submit_ingest(
    path: str | Path,
    settings: Settings,
    *,
    fmt: str | None = None,
    reader_options: dict[str, Any] | None = None,
    enrich: bool = True,
    force: bool = False,
) -> SubmittedJob:
    """Discover the figures under ``path`` and queue them as batches (``enrich`` -> ``embed`` per batch).

    Redis is checked before anything is written. The figures travel as metadata with absolute image paths (never
    image bytes), so enrich and embed workers must see the same files at the same paths. The enrich task hands the
    batch's descriptions to the embed task through the chain, so embed workers never need the enrich cache. The job
    carries the encoder (an existing directory as an absolute path), the collection and the ``enrich``/``force``
    flags; workers use their own settings for everything else (data dir, Qdrant url, device).

    Raises:
        JobError: No broker, Redis unreachable, an unreadable path, or no drawings found.
    """
    from pir.pipeline import batched  # lazy: start-up (PIL, numpy, tqdm)
    from pir.workers.app import WorkerConfigError, create_app  # lazy: start-up (celery, kombu)

    client = connect(settings)
    try:
        try:
            app = create_app(settings)
        except WorkerConfigError as e:
            raise JobError(str(e)) from e
        root, figures, issues = _discover(app, path, settings, fmt, reader_options)
        job_id = uuid.uuid4().hex
        batches = list(batched(figures, settings.worker.batch_size))
        options = {
            "encoder": portable_encoder_name(settings.encoder.name),
            "collection": settings.qdrant.collection,
            "enrich": enrich,
            "force": force,
        }
        meta = {
            "path": str(root),
            "collection": options["collection"],
            "encoder": options["encoder"],
            "total": len(figures) + len(issues),
            "n_batches": len(batches),
            "enrich": int(enrich),
            "force": int(force),
            "created": _now(),
            "state": "queueing",
            "done": 0,
            "skipped": 0,
            "failed": len(issues),
            "batches_done": 0,
        }
        _write_job(client, job_id, meta, issues)
        _enqueue(app, client, job_id, batches, options, enrich)
        client.hset(job_key(job_id), "state", "queued")
        return SubmittedJob(
            job_id=job_id, total=len(figures) + len(issues), n_batches=len(batches), read_failures=len(issues)
        )
    finally:
        client.close()


def redelivery_bound_s(settings: Settings) -> float:
    """Seconds, at most, from a worker's death until another running worker starts its unfinished batch.

    RabbitMQ hands the batch out again as soon as the dead worker's connection closes (a killed process: at once;
    a lost host: after two missed AMQP heartbeats, ``2 * 30 s``). Redis hands it out after the visibility timeout
    plus one restore sweep.
    """
    from pir.workers.app import AMQP_HEARTBEAT_S, restore_period  # lazy: start-up (celery, kombu)

    w = settings.worker
    if w.broker_kind == "amqp":
        return 2 * AMQP_HEARTBEAT_S
    return w.redelivery_timeout + restore_period(w.redelivery_timeout)


def stall_hint(client: Any, job_id: str, settings: Settings, idle_s: float) -> str:
    """One line saying why a job has not progressed for ``idle_s`` seconds: no worker alive, or workers alive."""
    workers = alive_workers(client)
    if not workers:
        return (
            f"job {job_id[:8]}: no progress for {idle_s:g} s and no worker is running (no heartbeat in Redis): "
            "start one with `pir worker` (still waiting; Ctrl-C stops waiting, the job stays queued)"
        )
    names = ", ".join(str(w.get("name", "?")) for w in workers[:3]) + (" ..." if len(workers) > 3 else "")
    return (
        f"job {job_id[:8]}: no progress for {idle_s:g} s although {len(workers)} worker(s) are alive ({names}): "
        f"a batch is still running, or a batch of a worker that died is handed out again within "
        f"{redelivery_bound_s(settings):.0f} s of its death (still waiting)"
    )


def follow_job(
    job_id: str,
    settings: Settings,
    *,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    show_progress: bool = True,
    hint_after_s: float | None = 30.0,
) -> JobStatus:
    """Poll a job until nothing is pending (or ``timeout_s`` passed), with a progress bar; returns the last status.

    When nothing progressed (no batch enriched or stored) for ``hint_after_s`` seconds, one hint line says whether
    workers are alive (their heartbeats in Redis) or none is (on stderr with the progress bar, else logged as a
    warning); following goes on. When Redis is lost while following, the workers go on with the job:
    :class:`JobError` says so in one line and names ``pir jobs status JOB``.

    Raises:
        JobError: Redis unreachable or lost, or no such job.
    """
    import redis  # lazy: start-up (redis)
    from tqdm.auto import tqdm  # lazy: start-up (tqdm)

    client = connect(settings)
    t_end = None if timeout_s is None else time.monotonic() + timeout_s
    bar = None
    try:
        status = read_status(client, job_id)
        bar = tqdm(total=status.total, desc=f"job {job_id[:8]}", unit="fig", disable=not show_progress)
        seen = 0
        progress, t_progress, hinted = None, time.monotonic(), False
        while True:
            finished = status.done + status.skipped + status.failed
            bar.update(finished - seen)
            seen = finished
            bar.set_postfix(new=status.done, skipped=status.skipped, failed=status.failed)
            if status.finished or status.state not in ("queued", "queueing", "running", "done"):
                break
            now = time.monotonic()
            if (finished, status.batches_enriched, status.batches_done) != progress:
                progress, t_progress, hinted = (finished, status.batches_enriched, status.batches_done), now, False
            elif hint_after_s is not None and not hinted and now - t_progress >= hint_after_s:
                hinted = True
                hint = stall_hint(client, job_id, settings, hint_after_s)
                if show_progress:
                    bar.write(hint, file=sys.stderr)
                else:
                    log.warning(hint)
            if t_end is not None and now >= t_end:
                break
            time.sleep(poll_s)
            status = read_status(client, job_id)
        return status
    except redis.RedisError as e:
        raise JobError(
            f"lost Redis at {redact_url(state_url(settings))} while following job {job_id} ({type(e).__name__}); "
            f"the job goes on in the workers: follow it with `pir jobs status {job_id}`"
        ) from None
    finally:
        if bar is not None:
            bar.close()
        client.close()
