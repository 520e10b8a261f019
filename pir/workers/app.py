"""The Celery app, built from :class:`~pir.core.config.Settings` (never at import time).

Brokers: Redis (``redis://``) and RabbitMQ (``amqp://``); job state and worker heartbeats always live in Redis (the
broker, or ``worker.result_backend`` when the broker is RabbitMQ). Reliability settings (see
../shared/qdrant-edge-and-celery.md §5 for what was measured):

* JSON only (no pickle), ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after its
  task finished, so a batch of a worker killed mid-batch is run again by another worker; tasks are idempotent
  (deterministic point ids, skip-if-unchanged), so a second run overwrites instead of duplicating.
* RabbitMQ redelivers a dead worker's unacknowledged batch as soon as its connection closes (at once for a killed
  process; within ``2 * AMQP_HEARTBEAT_S`` for a lost host). Its ``consumer_timeout`` (30 min by default) must exceed
  ``task_time_limit``.
* Redis hands an unacknowledged batch out again after the ``visibility_timeout``, derived from the batch's hard time
  limit (``task_time_limit`` + 10 %, at least 10 s: 660 s by default) unless set explicitly, and must exceed it;
  the sweep that restores such messages runs every :func:`restore_period` seconds (10 s at the default).
* ``worker_prefetch_multiplier=1``: a worker reserves one batch at a time.
* Hard and soft time limits (the hard limit is enforced by the prefork pool only), retries with exponential backoff
  and jitter for transient errors (declared in :mod:`pir.workers.tasks`), ``broker_connection_retry_on_startup``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery, signals
from kombu import Queue

from pir.core.config import Settings, WorkerSettings
from pir.core.errors import WorkerConfigError, redact_url
from pir.workers import EMBED_QUEUE, ENRICH_QUEUE
from pir.workers.resources import WorkerResources
from pir.workers.state import Heartbeat
from pir.workers.tasks import register_tasks

log = logging.getLogger(__name__)

__all__ = ["AMQP_HEARTBEAT_S", "WorkerConfigError", "create_app", "restore_period", "transport_options"]

#: Seconds between AMQP heartbeats: RabbitMQ drops a silent (lost) worker's connection after two missed beats.
AMQP_HEARTBEAT_S = 30
SUPPORTED_BROKERS = ("redis", "amqp")


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
    """kombu transport options for the broker (Redis: visibility timeout and restore sweep; RabbitMQ: none)."""
    if w.broker_kind != "redis":
        return {}
    vt = w.redelivery_timeout
    interval, throttle = restore_settings(vt)
    return {"visibility_timeout": vt, "unacked_restore_interval": interval, "unacked_restore_throttle": throttle}


def check_worker_settings(w: WorkerSettings) -> None:
    """Refuse settings that would lose or duplicate work.

    Raises:
        WorkerConfigError: No broker, an unsupported broker, no Redis for the job state, time limits out of order,
            or a Redis visibility timeout that is not longer than the task time limit.
    """
    if not w.broker_url:
        raise WorkerConfigError(
            "no Celery broker configured: set PIR_WORKER__BROKER_URL (redis://127.0.0.1:6379/0 or "
            "amqp://guest:guest@127.0.0.1:5672//); without a broker use plain `pir ingest PATH` (in-process)"
        )
    if w.broker_kind not in SUPPORTED_BROKERS:
        raise WorkerConfigError(f"unsupported broker {redact_url(w.broker_url)}: use redis:// or amqp:// (RabbitMQ)")
    state = [u for u in (w.broker_url, w.result_backend) if u and u.split("://", 1)[0] in ("redis", "rediss", "unix")]
    if not state:
        raise WorkerConfigError(
            f"job state needs Redis: the broker {redact_url(w.broker_url)} is not Redis, so set "
            "PIR_WORKER__RESULT_BACKEND to a redis:// URL"
        )
    if w.task_soft_time_limit >= w.task_time_limit:
        raise WorkerConfigError(
            f"worker.task_soft_time_limit ({w.task_soft_time_limit} s) must be below worker.task_time_limit "
            f"({w.task_time_limit} s)"
        )
    if w.broker_kind == "redis" and w.redelivery_timeout <= w.task_time_limit:
        raise WorkerConfigError(
            f"worker.visibility_timeout ({w.redelivery_timeout} s) must be longer than worker.task_time_limit "
            f"({w.task_time_limit} s), or a long task is handed to a second worker while it still runs "
            "(leave it unset to derive it from the time limit)"
        )


def create_app(settings: Settings) -> Celery:
    """A Celery app for pir's queues, configured from ``settings.worker``, with the pir tasks registered.

    The app carries ``app.pir_settings`` and ``app.pir_resources`` (the per-process encoder, store and Redis client
    of a worker; nothing is loaded until a worker process needs it).

    Raises:
        WorkerConfigError: See :func:`check_worker_settings`.
    """
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
        result_backend_transport_options={"visibility_timeout": w.redelivery_timeout},
        broker_heartbeat=AMQP_HEARTBEAT_S,
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


def _reconcile_loop(app: Celery, period: float, stop: threading.Event) -> None:
    """Every ``period`` seconds: restore the jobs of this worker's data dir that Redis lost, submit their batches
    not stored (``app.pir_reconcile``: :func:`pir.workers.jobs.reconcile_lost_jobs`, set by
    :func:`pir.workers.worker.run_worker`); errors are logged and tried again later."""
    reconcile = app.pir_reconcile  # type: ignore[attr-defined]
    while not stop.wait(period):
        try:
            for r in reconcile(app.pir_settings, app=app):  # type: ignore[attr-defined]
                log.warning("%s", r.line())
        except Exception as e:  # noqa: BLE001  (Redis down, manifest busy: next round)
            log.debug("reconciling lost jobs: %s", e)


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

    def on_ready(sender: Any = None, **_: Any) -> None:
        queues = app.amqp.queues
        names = sorted((queues.consume_from or queues).keys())
        name = getattr(sender, "hostname", None) or f"pir-{os.getpid()}"
        beat = Heartbeat(app.pir_settings, name, names)  # type: ignore[attr-defined]
        beat.start()
        app.pir_heartbeat = beat  # type: ignore[attr-defined]

        period = float(app.pir_settings.worker.reconcile_s)  # type: ignore[attr-defined]
        if period > 0 and getattr(app, "pir_reconcile", None) is not None:
            stop = threading.Event()
            app.pir_reconciler_stop = stop  # type: ignore[attr-defined]
            loop = threading.Thread(target=_reconcile_loop, args=(app, period, stop), name="pir-reconcile", daemon=True)
            loop.start()

    def on_worker_shutdown(**_: Any) -> None:
        beat = getattr(app, "pir_heartbeat", None)
        if beat is not None:
            beat.stop()
        stop = getattr(app, "pir_reconciler_stop", None)
        if stop is not None:
            stop.set()

    uid = f"pir-{id(app)}"
    signals.worker_process_init.connect(on_process_init, weak=False, dispatch_uid=f"{uid}-init")
    signals.worker_process_shutdown.connect(on_shutdown, weak=False, dispatch_uid=f"{uid}-pshutdown")
    signals.worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid=f"{uid}-shutdown")
    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid=f"{uid}-ready")
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid=f"{uid}-beat")
