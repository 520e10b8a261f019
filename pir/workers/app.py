"""The Celery app, built from :class:`~pir.config.Settings` (never at import time).

Reliability settings (see ../shared/qdrant-edge-and-celery.md §5 for what was measured):

* JSON only (no pickle), ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after its
  task finished, so a worker killed mid-batch leaves it in Redis and another worker runs it again; tasks are
  idempotent (deterministic point ids, skip-if-unchanged), so a second run overwrites instead of duplicating.
* ``worker_prefetch_multiplier=1``: a worker reserves one batch at a time.
* Redis ``visibility_timeout`` (seconds before an unacknowledged message is handed out again) must exceed the
  longest task; :func:`create_app` refuses a ``visibility_timeout`` not above ``task_time_limit``. The sweep that
  restores such messages runs every :func:`restore_period` seconds (about 100 s at the default 7200 s, about 2 s in
  tests that use a few seconds).
* Hard and soft time limits (the hard limit is enforced by the prefork pool only), retries with exponential backoff
  and jitter for transient errors (declared in :mod:`pir.workers.tasks`), ``broker_connection_retry_on_startup``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from kombu import Queue

from pir.config import Settings, WorkerSettings
from pir.workers import EMBED_QUEUE, ENRICH_QUEUE

log = logging.getLogger(__name__)


class WorkerConfigError(ValueError):
    """Worker settings that cannot work (no broker, visibility timeout too short, Edge store shared by processes)."""


def restore_settings(visibility_timeout: int) -> tuple[int, int]:
    """``(unacked_restore_interval, unacked_restore_throttle)`` for a visibility timeout.

    kombu sweeps the unacknowledged messages every ``interval * throttle`` seconds (10 x 10 = 100 s by default); a
    short visibility timeout (tests, short tasks) gets a proportionally short sweep.
    """
    interval = max(1, min(10, visibility_timeout // 4))
    throttle = max(1, min(10, visibility_timeout // 600))
    return interval, throttle


def restore_period(visibility_timeout: int) -> int:
    """Seconds between two sweeps that hand out unacknowledged messages again."""
    interval, throttle = restore_settings(visibility_timeout)
    return interval * throttle


def transport_options(w: WorkerSettings) -> dict[str, Any]:
    """kombu Redis transport options for the broker."""
    interval, throttle = restore_settings(w.visibility_timeout)
    return {
        "visibility_timeout": w.visibility_timeout,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": throttle,
    }


def check_worker_settings(w: WorkerSettings) -> None:
    """Refuse settings that would lose or duplicate work.

    Raises:
        WorkerConfigError: No broker, or a visibility timeout that is not longer than the task time limit.
    """
    if not w.broker_url:
        raise WorkerConfigError(
            "no Celery broker configured: set PIR_WORKER__BROKER_URL (e.g. redis://127.0.0.1:6379/0); "
            "without a broker use plain `pir ingest PATH` (in-process)"
        )
    if w.visibility_timeout <= w.task_time_limit:
        raise WorkerConfigError(
            f"worker.visibility_timeout ({w.visibility_timeout} s) must be longer than worker.task_time_limit "
            f"({w.task_time_limit} s), or a long task is handed to a second worker while it still runs"
        )
    if w.task_soft_time_limit >= w.task_time_limit:
        raise WorkerConfigError(
            f"worker.task_soft_time_limit ({w.task_soft_time_limit} s) must be below worker.task_time_limit "
            f"({w.task_time_limit} s)"
        )


def create_app(settings: Settings) -> Celery:
    """A Celery app for pir's queues, configured from ``settings.worker``, with the pir tasks registered.

    The app carries ``app.pir_settings`` and ``app.pir_resources`` (the per-process encoder, store and Redis client
    of a worker; nothing is loaded until a worker process needs it).

    Raises:
        WorkerConfigError: See :func:`check_worker_settings`.
    """
    from pir.workers.resources import WorkerResources
    from pir.workers.tasks import register_tasks

    w = settings.worker
    check_worker_settings(w)
    app = Celery("pir", broker=w.broker_url, backend=w.result_backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=w.task_time_limit,
        task_soft_time_limit=w.task_soft_time_limit,
        task_track_started=True,
        task_ignore_result=w.result_backend is None,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        broker_transport_options=transport_options(w),
        result_backend_transport_options={"visibility_timeout": w.visibility_timeout},
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue=ENRICH_QUEUE,
        task_queues=[Queue(ENRICH_QUEUE), Queue(EMBED_QUEUE)],
        enable_utc=True,
    )
    app.pir_settings = settings  # type: ignore[attr-defined]
    app.pir_resources = WorkerResources(settings)  # type: ignore[attr-defined]
    register_tasks(app)
    _connect_signals(app)
    return app


def consumes_embed(app: Celery) -> bool:
    """Whether this worker process consumes the ``embed`` queue (and so needs the encoder)."""
    queues = app.amqp.queues
    names = set((queues.consume_from or queues).keys())
    return not names or EMBED_QUEUE in names


def _connect_signals(app: Celery) -> None:
    """Load the encoder in each worker process after the fork (never in the parent); close the store on shutdown."""

    def on_process_init(**_: Any) -> None:
        # prefork children and the solo pool send this in the process that runs the tasks; threads load lazily
        if consumes_embed(app):
            try:
                app.pir_resources.preload()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001  (the first task reports it as the batch's failure)
                log.exception("could not preload the encoder; tasks will try again")

    def on_shutdown(**_: Any) -> None:
        app.pir_resources.close()  # type: ignore[attr-defined]

    uid = f"pir-{id(app)}"
    signals.worker_process_init.connect(on_process_init, weak=False, dispatch_uid=f"{uid}-init")
    signals.worker_process_shutdown.connect(on_shutdown, weak=False, dispatch_uid=f"{uid}-pshutdown")
    signals.worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid=f"{uid}-shutdown")
