"""Queued ingest jobs: submit a folder as batches, track progress in Redis, report counts and failed files.

A job's state lives in Redis (the broker's database) under ``pir:job:<id>`` and expires after :data:`JOB_TTL_S`:

* ``pir:job:<id>``: a hash of the job's metadata (path, collection, encoder, total, number of batches, ...);
* ``pir:job:<id>:batches``: one field per finished batch (``"0"``, ``"1"``, ...; ``"read"`` for metadata problems
  found at discovery) holding ``{"ingested": n, "skipped": n, "failed": [{key, path, reason}, ...]}``;
* ``pir:job:<id>:enriched``: one field per batch whose enrichment finished.

A batch's result is written with ``HSETNX``: the first finished run of a batch counts, a re-delivered copy of it
(after a worker crash) does not count twice. The counts are sums over those fields, so they stay exact.

Example:
    >>> job = submit_ingest("drawings/", settings)
    >>> job_status(job.job_id, settings).to_dict()["pending"]
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pir.config import Settings

if TYPE_CHECKING:
    import redis

#: Seconds a job's state is kept in Redis after its last update.
JOB_TTL_S = 7 * 24 * 3600
KEY_PREFIX = "pir:job:"
READ_BATCH = "read"
_REDIS_SCHEMES = ("redis", "rediss", "unix")


class JobError(RuntimeError):
    """A job problem the user can act on: no broker configured, Redis unreachable, unknown job, nothing to ingest."""


@dataclass
class SubmittedJob:
    """A job that was queued."""

    job_id: str
    total: int
    n_batches: int
    read_failures: int = 0


@dataclass
class JobStatus:
    """Progress of a job. ``pending = total - done - skipped - failed``; ``total`` counts unreadable records too."""

    job_id: str
    state: str  # queued | running | done
    total: int
    done: int
    skipped: int
    failed: int
    pending: int
    failures: list[dict[str, str]] = field(default_factory=list)
    n_batches: int = 0
    batches_done: int = 0
    batches_enriched: int = 0
    path: str = ""
    collection: str = ""
    encoder: str = ""
    created: str = ""

    @property
    def finished(self) -> bool:
        return self.pending <= 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_key(job_id: str, part: str | None = None) -> str:
    """Redis key of a job (``part``: ``batches`` or ``enriched``)."""
    return f"{KEY_PREFIX}{job_id}" + (f":{part}" if part else "")


def redact_url(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def state_url(settings: Settings) -> str:
    """URL of the Redis that holds job state: the broker's, else the result backend's.

    Raises:
        JobError: No broker configured, or neither URL is a Redis URL.
    """
    w = settings.worker
    if not w.broker_url:
        raise JobError(
            "no Celery broker configured: set PIR_WORKER__BROKER_URL (e.g. redis://127.0.0.1:6379/0) and start "
            "`pir worker`; to ingest in this process instead, run `pir ingest PATH` without --queue"
        )
    for url in (w.broker_url, w.result_backend):
        if url and urlsplit(url).scheme in _REDIS_SCHEMES:
            return url
    raise JobError(
        f"job state needs Redis: the broker {redact_url(w.broker_url)} is not a redis:// URL; set "
        "PIR_WORKER__RESULT_BACKEND to a redis:// URL"
    )


def state_client(settings: Settings) -> redis.Redis:
    """A Redis client for the job state (decoded strings, short connect timeout)."""
    import redis

    return redis.Redis.from_url(
        state_url(settings),
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
    )


def connect(settings: Settings) -> redis.Redis:
    """A job-state client that answered a ping.

    Raises:
        JobError: No broker configured or Redis unreachable.
    """
    import redis

    url = state_url(settings)
    client = state_client(settings)
    try:
        client.ping()
    except redis.RedisError as e:
        client.close()
        raise JobError(
            f"cannot reach Redis at {redact_url(url)} ({e}); start Redis or fix PIR_WORKER__BROKER_URL. "
            "Nothing was queued."
        ) from e
    return client


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    image bytes), so workers must see the same files at the same paths. The job carries the encoder name, the
    collection and the ``enrich``/``force`` flags; workers use their own settings for everything else (data dir,
    Qdrant url, device).

    Raises:
        JobError: No broker, Redis unreachable, an unreadable path, or no drawings found.
    """
    from pir.pipeline import batched, discover
    from pir.workers.app import WorkerConfigError, create_app
    from pir.workers.tasks import EMBED_TASK, ENRICH_TASK

    client = connect(settings)
    try:
        try:
            app = create_app(settings)
        except WorkerConfigError as e:
            raise JobError(str(e)) from e
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
        job_id = uuid.uuid4().hex
        batches = list(batched(figures, settings.worker.batch_size))
        options = {
            "encoder": settings.encoder.name,
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
        }
        pipe = client.pipeline(transaction=True)
        pipe.hset(job_key(job_id), mapping=meta)
        if issues:
            failed = [{"key": "", "path": i.path, "reason": i.reason} for i in issues]
            pipe.hset(
                job_key(job_id, "batches"), READ_BATCH, json.dumps({"ingested": 0, "skipped": 0, "failed": failed})
            )
        for part in (None, "batches", "enriched"):
            pipe.expire(job_key(job_id, part), JOB_TTL_S)
        pipe.execute()
        enrich_task, embed_task = app.tasks[ENRICH_TASK], app.tasks[EMBED_TASK]
        try:
            with app.producer_or_acquire() as producer:
                for n, batch in enumerate(batches):
                    args = (job_id, n, [f.model_dump(mode="json") for f in batch], options)
                    sig = (enrich_task.si(*args) | embed_task.si(*args)) if enrich else embed_task.si(*args)
                    sig.apply_async(producer=producer)
        except Exception as e:
            client.hset(job_key(job_id), "state", f"enqueue failed: {e}")
            raise JobError(f"queueing job {job_id} failed after Redis answered: {e}") from e
        finally:
            app.close()
        client.hset(job_key(job_id), "state", "queued")
        return SubmittedJob(
            job_id=job_id, total=len(figures) + len(issues), n_batches=len(batches), read_failures=len(issues)
        )
    finally:
        client.close()


def record_batch(client: redis.Redis, job_id: str, batch: int | str, result: dict[str, Any]) -> bool:
    """Record a finished batch (``ingested``/``skipped`` counts or lists, ``failed`` list); first record wins.

    Returns:
        True when this call recorded the batch, False when it had been recorded before (a re-delivered task).
    """
    failed = [
        {"key": str(f.get("key", "")), "path": str(f.get("path", "")), "reason": str(f.get("reason", ""))}
        for f in result.get("failed", [])
    ]
    entry = {
        "ingested": _n(result.get("ingested", 0)),
        "skipped": _n(result.get("skipped", 0)),
        "failed": failed,
        "at": _now(),
    }
    pipe = client.pipeline(transaction=True)
    pipe.hsetnx(job_key(job_id, "batches"), str(batch), json.dumps(entry))
    for part in (None, "batches", "enriched"):
        pipe.expire(job_key(job_id, part), JOB_TTL_S)
    return bool(pipe.execute()[0])


def record_enriched(client: redis.Redis, job_id: str, batch: int | str, summary: dict[str, Any]) -> bool:
    """Record that a batch's enrichment finished (first record wins)."""
    pipe = client.pipeline(transaction=True)
    pipe.hsetnx(job_key(job_id, "enriched"), str(batch), json.dumps(summary, default=str))
    pipe.expire(job_key(job_id, "enriched"), JOB_TTL_S)
    return bool(pipe.execute()[0])


def claim_once(client: redis.Redis, job_id: str, what: str) -> bool:
    """True for the first caller only (e.g. to optimize the store once when a job finishes)."""
    return bool(client.set(job_key(job_id, f"once:{what}"), _now(), nx=True, ex=JOB_TTL_S))


def _n(v: Any) -> int:
    return len(v) if isinstance(v, list | tuple) else int(v)


def read_status(client: redis.Redis, job_id: str) -> JobStatus:
    """Status of a job from Redis.

    Raises:
        JobError: No such job (never submitted, or expired after :data:`JOB_TTL_S`).
    """
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(job_key(job_id))
    pipe.hgetall(job_key(job_id, "batches"))
    pipe.hlen(job_key(job_id, "enriched"))
    meta, batches, n_enriched = pipe.execute()
    if not meta:
        raise JobError(f"no job {job_id!r} in Redis (never submitted, or expired after {JOB_TTL_S // 86400} days)")
    done = skipped = 0
    failures: list[dict[str, str]] = []
    batches_done = 0
    for name, raw in sorted(
        batches.items(), key=lambda kv: (kv[0] != READ_BATCH, int(kv[0]) if kv[0].isdigit() else 0)
    ):
        entry = json.loads(raw)
        done += int(entry.get("ingested", 0))
        skipped += int(entry.get("skipped", 0))
        failures.extend(entry.get("failed", []))
        batches_done += name != READ_BATCH
    total = int(meta.get("total", 0))
    pending = max(0, total - done - skipped - len(failures))
    n_batches = int(meta.get("n_batches", 0))
    stored_state = meta.get("state", "queued")
    if stored_state not in ("queued", "queueing"):
        state = stored_state
    elif pending == 0 and batches_done >= n_batches:
        state = "done"
    elif batches_done or n_enriched:
        state = "running"
    else:
        state = stored_state
    return JobStatus(
        job_id=job_id,
        state=state,
        total=total,
        done=done,
        skipped=skipped,
        failed=len(failures),
        pending=pending,
        failures=failures,
        n_batches=n_batches,
        batches_done=batches_done,
        batches_enriched=int(n_enriched),
        path=meta.get("path", ""),
        collection=meta.get("collection", ""),
        encoder=meta.get("encoder", ""),
        created=meta.get("created", ""),
    )


def job_status(job_id: str, settings: Settings) -> JobStatus:
    """Status of a job (counts, pending, failed files with reasons).

    Raises:
        JobError: Redis unreachable or no such job.
    """
    client = connect(settings)
    try:
        return read_status(client, job_id)
    finally:
        client.close()


def follow_job(
    job_id: str,
    settings: Settings,
    *,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    show_progress: bool = True,
) -> JobStatus:
    """Poll a job until nothing is pending (or ``timeout_s`` passed), with a progress bar; returns the last status.

    Raises:
        JobError: Redis unreachable or no such job.
    """
    import redis
    from tqdm.auto import tqdm

    client = connect(settings)
    t_end = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        status = read_status(client, job_id)
        bar = tqdm(total=status.total, desc=f"job {job_id[:8]}", unit="fig", disable=not show_progress)
        seen = 0
        while True:
            finished = status.done + status.skipped + status.failed
            bar.update(finished - seen)
            seen = finished
            bar.set_postfix(new=status.done, skipped=status.skipped, failed=status.failed)
            if status.finished or status.state not in ("queued", "queueing", "running", "done"):
                break
            if t_end is not None and time.monotonic() >= t_end:
                break
            time.sleep(poll_s)
            try:
                status = read_status(client, job_id)
            except redis.RedisError as e:
                raise JobError(f"lost Redis while following job {job_id}: {e}") from e
        bar.close()
        return status
    finally:
        client.close()
