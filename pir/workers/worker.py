"""Start a Celery worker with pir's settings (``pir worker``).

Pool choice: a worker that consumes ``embed`` runs the encoder; torch does its own threading, so the default pool is
``solo`` (one task at a time, in the worker process itself; the encoder is loaded once, after start-up) or
``threads``. Enrichment-only workers default to ``prefork`` (one process per core; LLM calls and the template
enricher are CPU or I/O bound and need no model in the parent). With the embedded Qdrant Edge store (no
``PIR_QDRANT__URL``) only one process may own the store, so ``embed`` is refused with prefork concurrency above 1 or
a second embed worker would fail to open it; use a Qdrant server to run several embed workers.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from pir.core.config import Settings
from pir.core.errors import install_log_redaction, settings_secrets
from pir.workers import EMBED_QUEUE, QUEUES
from pir.workers.app import WorkerConfigError, check_worker_settings, create_app
from pir.workers.jobs import reconcile_lost_jobs
from pir.workers.state import redis_persistence

POOLS = ("solo", "threads", "prefork")
log = logging.getLogger(__name__)


def persistence_warnings(settings: Settings) -> list[str]:
    """One line per Redis this worker uses (broker, result backend) that keeps nothing on disk or could not be
    checked (see :func:`pir.workers.state.redis_persistence`)."""

    w = settings.worker
    urls = [u for u in dict.fromkeys((w.broker_url, w.result_backend)) if u and u.split("://", 1)[0] in
            ("redis", "rediss", "unix")]  # fmt: skip
    roles = {w.broker_url: "broker", w.result_backend: "job state"}
    out = []
    for url in urls:
        msg = redis_persistence(url)
        if msg:
            out.append(f"{roles.get(url, 'Redis')}: {msg}")
    return out


def worker_argv(
    settings: Settings,
    *,
    queues: Sequence[str] = QUEUES,
    concurrency: int | None = None,
    pool: str | None = None,
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> list[str]:
    """The ``celery worker`` arguments for these options, after checking that they can work.

    Raises:
        WorkerConfigError: Unknown queue or pool, no broker, or several processes on the embedded store.
    """
    check_worker_settings(settings.worker)
    queues = [q.strip() for q in queues if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if not queues or unknown:
        raise WorkerConfigError(f"unknown queue(s) {unknown or queues}: choose from {', '.join(QUEUES)}")
    embeds = EMBED_QUEUE in queues
    pool = pool or ("solo" if embeds else "prefork")
    if pool not in POOLS:
        raise WorkerConfigError(f"unknown pool {pool!r}: choose from {', '.join(POOLS)}")
    if pool == "solo":
        if concurrency not in (None, 1):
            raise WorkerConfigError("the solo pool runs one task at a time: drop --concurrency or use --pool threads")
        concurrency = 1
    concurrency = concurrency or (1 if embeds else os.cpu_count() or 1)
    if concurrency < 1:
        raise WorkerConfigError(f"--concurrency must be at least 1, not {concurrency}")
    if embeds and pool == "prefork" and concurrency > 1 and settings.qdrant.url is None:
        raise WorkerConfigError(
            f"the embedded Qdrant Edge store ({settings.store_dir}) can be open in one process only, so the embed "
            f"queue cannot run {concurrency} prefork processes; use --pool solo (or threads), or a Qdrant server "
            "(PIR_QDRANT__URL) for several embed processes"
        )
    name = hostname or f"pir-{'-'.join(queues)}-{os.getpid()}@{socket.gethostname()}"
    return [
        "worker",
        f"--queues={','.join(queues)}",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--hostname={name}",
        "--prefetch-multiplier=1",
        "--without-gossip",
        "--without-mingle",
    ]


def run_worker(settings: Settings, **options: Any) -> None:
    """Run a worker in this process until it is stopped (SIGTERM/SIGINT: finish the current task, then exit).

    ``options`` are those of :func:`worker_argv` (``queues``, ``concurrency``, ``pool``, ``loglevel``, ``hostname``).

    Raises:
        WorkerConfigError: See :func:`worker_argv`.
    """
    argv = worker_argv(settings, **options)
    queues, pool = options.get("queues", QUEUES), options.get("pool")
    if EMBED_QUEUE in queues and pool in (None, "solo", "threads"):
        # no fork follows in these pools: check the device now, so `cuda` without a GPU fails at start
        from pir.encoder.device import DeviceError, resolve_device  # lazy: start-up (torch, numpy)

        try:
            resolve_device(settings.encoder.device)
        except DeviceError as e:
            raise WorkerConfigError(str(e)) from e
    _redact_logs(settings, str(options.get("loglevel", "INFO")))
    for line in persistence_warnings(settings):
        log.warning(line)
    app = create_app(settings)
    app.pir_reconcile = reconcile_lost_jobs  # type: ignore[attr-defined]  # the lost-jobs loop (jobs imports app)
    app.worker_main(argv=argv)


def _redact_logs(settings: Settings, loglevel: str) -> None:
    """Every log record of the worker (and its forked children) without URL passwords or API keys; the loggers
    that print request URLs stay at WARNING below DEBUG."""
    import logging

    install_log_redaction(settings_secrets(settings))
    for name in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(name).setLevel(logging.DEBUG if loglevel.upper() == "DEBUG" else logging.WARNING)
