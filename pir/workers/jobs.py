"""Queued ingest jobs: submit a folder as batches, track progress in Redis, report counts and failed files.

A job's state lives in Redis (the broker's database) and expires :data:`JOB_TTL_S` after its last update:

* ``pir:job:<id>``: a hash of the job's metadata (path, collection, encoder, total, number of batches, ...) and
  its counters (``done``, ``skipped``, ``failed``, ``batches_done``);
* ``pir:job:<id>:failures``: a list of ``{key, path, reason}`` JSON entries (unreadable records found at discovery
  and figures that could not be stored);
* ``pir:job:<id>:batches``: one field per finished batch, ``pir:job:<id>:enriched``: one per enriched batch.

A batch is recorded by one atomic Lua script: the first finished run of a batch sets its field and adds to the
counters, a re-delivered copy of it (after a worker crash) finds the field set and changes nothing. So the counts
stay exact, and reading a job's status costs the same for 10 batches as for 100,000.

Example:
    >>> job = submit_ingest("drawings/", settings)
    >>> job_status(job.job_id, settings).to_dict()["pending"]
"""

from __future__ import annotations

import json
import logging
import sys
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

    from pir.ingest.schema import PatentFigure

log = logging.getLogger(__name__)

#: Seconds a job's state is kept in Redis after its last update.
JOB_TTL_S = 7 * 24 * 3600
KEY_PREFIX = "pir:job:"
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
        figures = [_absolute(f) for f in figures]
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
        client.hset(job_key(job_id), "state", "queued")
        return SubmittedJob(
            job_id=job_id, total=len(figures) + len(issues), n_batches=len(batches), read_failures=len(issues)
        )
    finally:
        client.close()


#: KEYS: meta hash, batches hash, failures list, enriched hash. ARGV: batch, entry JSON, ingested, skipped, ttl,
#: then one JSON string per failed figure. Returns 1 when recorded, 0 when the batch had been recorded before.
_RECORD_BATCH_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'done', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'failed', #ARGV - 5)
redis.call('HINCRBY', KEYS[1], 'batches_done', 1)
for i = 6, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return 1
"""


def record_batch(client: redis.Redis, job_id: str, batch: int | str, result: dict[str, Any]) -> bool:
    """Record a finished batch (``ingested``/``skipped`` counts or lists, ``failed`` list); the first record wins.

    Returns:
        True when this call recorded the batch, False when it had been recorded before (a re-delivered task) or
        the job no longer exists (expired).
    """
    failed = [
        json.dumps({"key": str(f.get("key", "")), "path": str(f.get("path", "")), "reason": str(f.get("reason", ""))})
        for f in result.get("failed", [])
    ]
    ingested, skipped = _n(result.get("ingested", 0)), _n(result.get("skipped", 0))
    entry = json.dumps({"ingested": ingested, "skipped": skipped, "failed": len(failed), "at": _now()})
    keys = [job_key(job_id), job_key(job_id, "batches"), job_key(job_id, "failures"), job_key(job_id, "enriched")]
    args = [str(batch), entry, ingested, skipped, JOB_TTL_S, *failed]
    return client.eval(_RECORD_BATCH_LUA, len(keys), *keys, *args) == 1


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


def read_status(client: redis.Redis, job_id: str, *, max_failures: int | None = None) -> JobStatus:
    """Status of a job from Redis (``max_failures``: list at most this many failed files; all by default).

    Raises:
        JobError: No such job (never submitted, or expired after :data:`JOB_TTL_S`).
    """
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(job_key(job_id))
    if max_failures is None or max_failures > 0:
        pipe.lrange(job_key(job_id, "failures"), 0, -1 if max_failures is None else max_failures - 1)
    pipe.hlen(job_key(job_id, "enriched"))
    *meta_failures, n_enriched = pipe.execute()
    meta, failures = meta_failures[0], (meta_failures[1] if len(meta_failures) > 1 else [])
    if not meta:
        raise JobError(f"no job {job_id!r} in Redis (never submitted, or expired after {JOB_TTL_S // 86400} days)")
    total, done, skipped, failed = (int(meta.get(k, 0)) for k in ("total", "done", "skipped", "failed"))
    batches_done, n_batches = int(meta.get("batches_done", 0)), int(meta.get("n_batches", 0))
    pending = max(0, total - done - skipped - failed)
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
        failed=failed,
        pending=pending,
        failures=[json.loads(f) for f in failures],
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
    hint_after_s: float | None = 30.0,
) -> JobStatus:
    """Poll a job until nothing is pending (or ``timeout_s`` passed), with a progress bar; returns the last status.

    When nothing progressed (no batch enriched or stored) for ``hint_after_s`` seconds, one hint line asks whether a
    worker runs (on stderr with the progress bar, else logged as a warning); following goes on.

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
                hint = (
                    f"job {job_id[:8]}: no progress for {hint_after_s:g} s: is a worker running? start one with "
                    "`pir worker` (still waiting; Ctrl-C stops waiting, the job stays queued)"
                )
                if show_progress:
                    bar.write(hint, file=sys.stderr)
                else:
                    log.warning(hint)
            if t_end is not None and now >= t_end:
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
