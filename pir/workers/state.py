"""Job and worker state in Redis: progress counters, failed files, worker heartbeats (no Celery, no torch).

A job's state lives in Redis (the broker's database, or the result backend's when the broker is RabbitMQ) and expires
:data:`JOB_TTL_S` after its last update:

* ``pir:job:<id>``: a hash of the job's metadata (path, collection, encoder, total, number of batches, ...) and
  its counters (``done``, ``skipped``, ``failed``, ``batches_done``);
* ``pir:job:<id>:failures``: a list of ``{key, path, reason}`` JSON entries (unreadable records found at discovery
  and figures that could not be stored);
* ``pir:job:<id>:batches``: one field per finished batch, ``pir:job:<id>:enriched``: one per enriched batch.

A batch is recorded by one atomic Lua script: the first finished run of a batch sets its field and adds to the
counters, a re-delivered copy of it (after a worker crash) finds the field set and changes nothing. So the counts
stay exact, and reading a job's status costs the same for 10 batches as for 100,000.

Redis may forget all of this (a restart without persistence): the job's manifest on disk
(:mod:`pir.workers.manifest`) is the durable copy, and :func:`pir.workers.jobs.reconcile` restores the state from it
(:func:`restore_job`, then :func:`record_batch` for each batch stored).

Each running worker refreshes ``pir:worker:<name>`` (JSON: name, pid, queues, time) every
``worker.heartbeat_s`` seconds with a time-to-live of three beats, so ``--wait`` can tell "no worker" from
"workers alive but no progress" even when a solo worker is too busy to answer Celery's ``ping``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pir.core.config import Settings
from pir.core.errors import JobError, redact_url

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

#: Seconds a job's state is kept in Redis after its last update.
JOB_TTL_S = 7 * 24 * 3600
KEY_PREFIX = "pir:job:"
WORKER_PREFIX = "pir:worker:"
_REDIS_SCHEMES = ("redis", "rediss", "unix")

__all__ = [
    "JOB_TTL_S",
    "JobStatus",
    "Heartbeat",
    "alive_workers",
    "claim_once",
    "connect",
    "job_key",
    "read_status",
    "record_batch",
    "record_enriched",
    "recorded_batches",
    "redis_persistence",
    "restore_job",
    "state_client",
    "state_url",
]


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
    #: ``redis`` (live job state) or ``manifest`` (Redis lost the job: counts from the manifest on disk).
    source: str = "redis"
    #: One line for the reader when something is off (e.g. the job's state in Redis was lost).
    note: str = ""

    @property
    def finished(self) -> bool:
        return self.pending <= 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_key(job_id: str, part: str | None = None) -> str:
    """Redis key of a job (``part``: ``batches`` or ``enriched``)."""
    return f"{KEY_PREFIX}{job_id}" + (f":{part}" if part else "")


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
    import redis  # lazy: start-up (redis)

    return redis.Redis.from_url(
        state_url(settings),
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
    )


#: Seconds :func:`connect` waits for a Redis that answers but is still loading its data set (just restarted with
#: persistence: it refuses every command with ``LOADING`` until its append-only file or snapshot is read back).
LOADING_WAIT_S = 60.0


def connect(settings: Settings, *, queueing: bool = False) -> redis.Redis:
    """A job-state client that answered a ping; a Redis still loading its data set is waited for (up to
    :data:`LOADING_WAIT_S`). ``queueing``: the caller is about to queue a job (the error then says nothing was).

    Raises:
        JobError: No broker configured or Redis unreachable.
    """
    import redis  # lazy: start-up (redis)

    url = state_url(settings)
    client = state_client(settings)
    t_end = time.monotonic() + LOADING_WAIT_S
    while True:
        try:
            client.ping()
            return client
        except redis.BusyLoadingError as e:
            if time.monotonic() < t_end:
                time.sleep(0.1)
                continue
            err: redis.RedisError = e
        except redis.RedisError as e:
            err = e
        client.close()
        raise JobError(
            f"cannot reach Redis at {redact_url(url)} ({err}); start Redis or fix PIR_WORKER__BROKER_URL"
            + (". Nothing was queued." if queueing else "")
        ) from err


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        for f in (result.get("failed") if isinstance(result.get("failed"), list) else [])  # type: ignore[union-attr]  # redis returns a list here
        if isinstance(f, dict)
    ]
    ingested, skipped = _n(result.get("ingested", 0)), _n(result.get("skipped", 0))
    entry = json.dumps(
        {"ingested": ingested, "skipped": skipped, "failed": [json.loads(f) for f in failed], "at": _now()}
    )
    keys = [job_key(job_id), job_key(job_id, "batches"), job_key(job_id, "failures"), job_key(job_id, "enriched")]
    args: list[str | int] = [str(batch), entry, ingested, skipped, JOB_TTL_S, *failed]
    return client.eval(_RECORD_BATCH_LUA, len(keys), *keys, *args) == 1


#: KEYS: meta hash, failures list. ARGV: ttl, then field/value pairs of the meta hash, then "--", then failure JSONs.
_RESTORE_JOB_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local i = 2
while ARGV[i] ~= '--' do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
for j = i + 1, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[j]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if #ARGV > i then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return 1
"""


def restore_job(client: redis.Redis, job_id: str, meta: dict[str, Any], issues: list[dict[str, str]]) -> bool:
    """Create a job's hash (counters at zero but for the discovery problems) when Redis has none; atomic.

    Returns:
        True when this call created it, False when the job was already there (someone else restored it).
    """
    fields = {**meta, "done": 0, "skipped": 0, "failed": len(issues), "batches_done": 0}
    flat = [str(x) for kv in fields.items() for x in kv]
    failures = [
        json.dumps({"key": "", "path": str(i.get("path", "")), "reason": str(i.get("reason", ""))}) for i in issues
    ]
    keys = [job_key(job_id), job_key(job_id, "failures")]
    return client.eval(_RESTORE_JOB_LUA, len(keys), *keys, JOB_TTL_S, *flat, "--", *failures) == 1


def recorded_batches(client: redis.Redis, job_id: str) -> dict[int, dict[str, Any]]:
    """The batch records in Redis (``ingested``/``skipped`` counts, ``failed`` entries), by batch number."""
    out = {}
    for k, v in client.hgetall(job_key(job_id, "batches")).items():
        try:
            out[int(k)] = json.loads(v)
        except ValueError:
            continue
    return out


def redis_persistence(url: str) -> str | None:
    """A warning when the Redis at ``url`` keeps nothing on disk (no RDB ``save`` rule, ``appendonly no``); None
    when it persists. When ``CONFIG GET`` is refused or Redis cannot be reached, a line saying it could not be
    checked."""
    import redis  # lazy: start-up (redis)

    where = redact_url(url)
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10)
    try:
        save = client.config_get("save").get("save", "")
        aof = client.config_get("appendonly").get("appendonly", "no")
    except redis.ResponseError as e:
        return f"could not check whether Redis at {where} keeps its data on disk (CONFIG GET refused: {e})"
    except redis.RedisError as e:
        return f"could not check whether Redis at {where} keeps its data on disk ({type(e).__name__}: {e})"
    finally:
        client.close()
    if str(save).strip() or str(aof).lower() == "yes":
        return None
    return (
        f"Redis at {where} keeps nothing on disk (save '' and appendonly no): a restart loses its queued batches "
        "and job state; pir's job manifest (<data_dir>/jobs.sqlite) and `pir jobs resume JOB` submit them again, "
        "but for a broker prefer `appendonly yes` (or RabbitMQ)"
    )


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


# ------------------------------------------------------------------------------------------------ worker heartbeats
def worker_key(name: str) -> str:
    """Redis key of a worker's heartbeat."""
    return f"{WORKER_PREFIX}{name}"


def alive_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """The workers whose heartbeat has not expired (each a dict with ``name``, ``pid``, ``queues``, ``at``)."""
    out = []
    for key in client.scan_iter(match=f"{WORKER_PREFIX}*", count=100):
        raw = client.get(key)
        if raw:
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return sorted(out, key=lambda w: str(w.get("name", "")))


class Heartbeat:
    """A daemon thread that keeps ``pir:worker:<name>`` alive while the worker runs; Redis errors are retried."""

    def __init__(self, settings: Settings, name: str, queues: list[str]) -> None:
        self.settings = settings
        self.name = name
        self.info = {"name": name, "pid": os.getpid(), "queues": queues, "broker": settings.worker.broker_kind}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pir-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        period = max(0.2, float(self.settings.worker.heartbeat_s))
        ttl_ms = int(period * 3000) + 500
        client = None
        while not self._stop.is_set():
            try:
                client = client or state_client(self.settings)
                client.set(worker_key(self.name), json.dumps({**self.info, "at": _now()}), px=ttl_ms)
            except Exception as e:  # noqa: BLE001  (Redis down: try again at the next beat)
                log.debug("heartbeat %s: %s", self.name, e)
            self._stop.wait(period)
        if client is not None:
            try:
                client.delete(worker_key(self.name))
                client.close()
            except Exception:  # noqa: BLE001, S110  (the key expires on its own)
                pass

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
