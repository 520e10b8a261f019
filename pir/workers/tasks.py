"""The Celery tasks: thin wrappers around :func:`pir.pipeline.enrich_batch` and :func:`pir.pipeline.embed_and_upsert`.

Both take ``(job_id, batch, figures, options)``: ``figures`` are ``PatentFigure.model_dump(mode="json")`` dicts
(metadata and image paths, never image bytes), ``options`` the job's ``encoder``, ``collection``, ``enrich`` and
``force``. Per batch the job queues ``enrich_batch`` (queue ``enrich``) chained to ``embed_and_upsert_batch`` (queue
``embed``): the enrich task returns ``{figure key: [descriptions]}`` and the chain passes it to the embed task as its
first argument (``None`` without enrichment), so the descriptions travel in the embed message and embed workers never
read or fill an enrich cache (a redelivered embed message still carries them). Transient errors (Qdrant, LLM server
or Redis unreachable, timeouts) are retried with exponential backoff and jitter; any other error, or retries running
out, records every figure of the batch as failed with the reason, so the job still ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task
from kombu.exceptions import OperationalError

from pir.core.config import Settings
from pir.core.diskspace import check_batch, check_data_dir, check_optimize
from pir.core.errors import JobError
from pir.ingest.schema import PatentFigure
from pir.workers import EMBED_QUEUE, ENRICH_QUEUE
from pir.workers.state import _now, claim_once, read_status, record_batch, record_enriched

log = logging.getLogger(__name__)

ENRICH_TASK = "pir.enrich_batch"
EMBED_TASK = "pir.embed_and_upsert_batch"


class TransientError(RuntimeError):
    """A failure worth retrying (a server answered 5xx/429, or was unreachable)."""


def transient_errors() -> tuple[type[BaseException], ...]:
    """Exception types retried with backoff: connection errors and timeouts of Qdrant, LLM servers and Redis."""
    errs: list[type[BaseException]] = [TransientError, ConnectionError, TimeoutError]
    try:
        import httpx  # lazy: start-up (httpx)

        errs.append(httpx.TransportError)  # connect/read/write errors and timeouts (qdrant-client, OpenAI servers)
    except ImportError:  # pragma: no cover
        pass
    try:
        import redis.exceptions  # lazy: start-up (redis)

        errs += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover
        pass
    try:
        from qdrant_client.http.exceptions import ResponseHandlingException  # lazy: start-up (qdrant_client)

        errs.append(ResponseHandlingException)
    except ImportError:  # pragma: no cover
        pass
    try:
        import openai

        errs += [openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError]
    except ImportError:
        pass
    return tuple(errs)


@contextmanager
def server_errors_as_transient() -> Iterator[None]:
    """Turn a Qdrant server's 5xx/429 answer into :class:`TransientError` (4xx stays a permanent error)."""
    try:
        yield
    except Exception as e:
        status = getattr(e, "status_code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            raise TransientError(f"server answered {status}: {e}") from e
        raise


def _open_store(resources: Any, collection: str, encoder: Any) -> Any:
    """The worker's store; an embedded store held by another process is retried (it is usually released soon)."""
    from pir.search.query import StoreError  # lazy: start-up (numpy)

    try:
        return resources.store(collection, encoder)
    except StoreError as e:
        if "in use by another process" in str(e):
            raise TransientError(str(e)) from e
        raise


def job_settings(settings: Settings, options: dict[str, Any]) -> Settings:
    """The worker's settings with the job's encoder and collection."""
    enc = options.get("encoder") or settings.encoder.name
    coll = options.get("collection") or settings.qdrant.collection
    return settings.model_copy(
        update={
            "encoder": settings.encoder.model_copy(update={"name": enc}),
            "qdrant": settings.qdrant.model_copy(update={"collection": coll}),
        }
    )


class BatchTask(Task):
    """Records the whole batch as failed when the task fails for good (retries exhausted or a permanent error)."""

    stage = "task"
    #: Arguments before ``(job_id, batch, figures, options)`` (the embed task gets the enrich result first).
    leading_args = 0

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        try:
            job_id, batch, figures = args[self.leading_args : self.leading_args + 3]
        except (ValueError, TypeError):
            return
        reason = f"{self.stage} failed: {type(exc).__name__}: {exc}"
        failed = [
            {"key": f"{f.get('patent_id')}/{f.get('figure_id')}", "path": str(f.get("image_path")), "reason": reason}
            for f in figures
        ]
        res = self.app.pir_resources
        if not _state_lost(exc):
            # Redis unreachable is no verdict on the figures: the batch stays pending, `reconcile` submits it again
            options = args[self.leading_args + 3] if len(args) > self.leading_args + 3 else {}
            _record_in_manifest(res, options, job_id, batch, {"ingested": 0, "skipped": 0, "failed": failed})
        try:
            record_batch(res.redis(), job_id, batch, {"failed": failed})
        except Exception:  # noqa: BLE001  (the log is the last resort)
            log.exception("job %s batch %s: could not record the failure (%s)", job_id, batch, reason)


def _state_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis (the job state or the broker) being unreachable."""
    try:
        import redis.exceptions  # lazy: start-up (redis)

        return isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OperationalError)
    except ImportError:  # pragma: no cover
        return False


def _record_in_manifest(res: Any, options: Any, job_id: str, batch: int, result: dict[str, Any]) -> None:
    """Record a batch's result in the job manifest, when this worker sees it (first record wins)."""

    man = res.manifest(options.get("manifest")) if isinstance(options, dict) else None
    if man is None:
        return
    try:
        man.record(job_id, batch, result, _now())
    except Exception as e:  # noqa: BLE001  (Redis still counts the batch)
        log.warning("job %s batch %s: could not record it in the manifest %s: %s", job_id, batch, man.path, e)


def _recorded_before(res: Any, b: _Batch) -> dict[str, Any] | None:
    """The batch's result recorded in the manifest by an earlier run of it (a repeated delivery), or None."""
    man = res.manifest(b.options.get("manifest"))
    if man is None:
        return None
    try:
        return man.result(b.job_id, b.batch)
    except Exception as e:  # noqa: BLE001  (run the batch: idempotent anyway)
        log.warning("job %s: manifest %s unreadable (%s)", b.job_id, man.path, e)
        return None


#: Queue of each task (``task_routes``).
ROUTES = {ENRICH_TASK: {"queue": ENRICH_QUEUE}, EMBED_TASK: {"queue": EMBED_QUEUE}}


def _retry_options(settings: Settings) -> dict[str, Any]:
    """The ``app.task`` options shared by pir's tasks: late acks and automatic retries of transient errors."""
    return dict(
        shared=False,  # tasks close over this app's settings: never hand them to other apps in the process
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=transient_errors(),
        retry_backoff=2,
        retry_backoff_max=300,
        retry_jitter=True,
        max_retries=settings.worker.max_retries,
    )


def register_tasks(app: Celery) -> None:
    """Register pir's tasks on ``app`` (which carries ``pir_settings`` and ``pir_resources``); route them."""
    app.conf.task_routes = ROUTES
    settings: Settings = app.pir_settings  # type: ignore[attr-defined]
    retry = _retry_options(settings)

    class EnrichTask(BatchTask):
        stage = "enrichment"

    class EmbedTask(BatchTask):
        stage = "embedding"
        leading_args = 1

    @app.task(name=ENRICH_TASK, base=EnrichTask, **retry)
    def enrich_batch(
        self: Task, job_id: str, batch: int, figures: list[dict[str, Any]], options: dict[str, Any]
    ) -> dict[str, list[str]]:
        """Enrich one batch; returns ``{figure key: [descriptions]}`` (the chain hands it to the embed task)."""
        return _enrich_batch(_Batch(app, settings, job_id, batch, figures, options))

    @app.task(name=EMBED_TASK, base=EmbedTask, **retry)
    def embed_and_upsert_batch(
        self: Task,
        descriptions: dict[str, list[str]] | None,
        job_id: str,
        batch: int,
        figures: list[dict[str, Any]],
        options: dict[str, Any],
    ) -> dict:
        """Embed one batch and upsert it (skipping figures stored unchanged); record the result in the job.

        ``descriptions`` (figure key -> descriptions) is the enrich task's result, ``None`` without enrichment.
        """
        return _embed_batch(_Batch(app, settings, job_id, batch, figures, options), descriptions)


@dataclass
class _Batch:
    """One queued batch as a task gets it (``job_id``, ``batch``, ``figures``, ``options``), with its app and the
    worker's settings."""

    app: Celery
    worker_settings: Settings
    job_id: str
    batch: int
    figures: list[dict[str, Any]]
    options: dict[str, Any]

    def settings(self) -> Settings:
        """The worker's settings with the job's options (encoder, collection) applied."""
        return job_settings(self.worker_settings, self.options)

    def patent_figures(self) -> list[Any]:
        """The batch's figures as ``PatentFigure`` objects."""
        return [PatentFigure.model_validate(f) for f in self.figures]


def _enrich_batch(b: _Batch) -> dict[str, list[str]]:
    """The enrich task's body (see ``register_tasks``)."""
    from pir.pipeline import batch_descriptions  # lazy: start-up (PIL, numpy, tqdm)
    from pir.pipeline import enrich_batch as run_enrich  # lazy: start-up (PIL, numpy, tqdm)

    if _recorded_before(b.app.pir_resources, b) is not None:  # type: ignore[attr-defined]
        return {}  # stored by an earlier delivery: the embed task only re-records it
    s = b.settings()
    figs = b.patent_figures()
    check_batch(s, len(figs))  # the enrich cache: stop with one line, never a half-written cache
    summary = run_enrich(figs, s)
    descriptions = batch_descriptions(figs, s)
    record_enriched(b.app.pir_resources.redis(), b.job_id, b.batch, summary)  # type: ignore[attr-defined]
    return descriptions


def _embed_batch(b: _Batch, descriptions: dict[str, list[str]] | None) -> dict:
    """The embed task's body (see ``register_tasks``): embed, upsert, record; optimize after the job's last batch."""
    from pir.pipeline import embed_and_upsert  # lazy: start-up (PIL, numpy, tqdm)

    res = b.app.pir_resources  # type: ignore[attr-defined]
    s = b.settings()
    enc = res.encoder(s.encoder.name)
    prior = _recorded_before(res, b)
    if prior is not None:
        # a repeated delivery (worker or broker death after the batch was stored): count the first run, once
        log.info("job %s batch %s: stored by an earlier delivery; recording that result", b.job_id, b.batch)
        client = res.redis()
        record_batch(client, b.job_id, b.batch, prior)
        with server_errors_as_transient():
            _optimize_when_finished(client, b.job_id, s, _open_store(res, s.qdrant.collection, enc))
        n = {k: len(v) if isinstance(v, list) else int(v) for k, v in prior.items() if k != "at"}
        return {"job_id": b.job_id, "batch": b.batch, "repeated": True, **n, "seconds": {}}
    figs = b.patent_figures()
    check_data_dir(s)
    check_batch(s, len(figs), enc.dim)
    with server_errors_as_transient():
        store = _open_store(res, s.qdrant.collection, enc)
        out = embed_and_upsert(
            figs,
            s,
            enc,
            store,
            with_descriptions=bool(b.options.get("enrich", True)),
            force=bool(b.options.get("force", False)),
            descriptions=descriptions,
        )
    for f in out.failed:
        log.warning("job %s: skipped %s (%s): %s", b.job_id, f.key, f.path, f.reason)
    result = {"ingested": len(out.ingested), "skipped": len(out.skipped), "failed": out.to_dict()["failed"]}
    _record_in_manifest(res, b.options, b.job_id, b.batch, result)  # first: Redis may be gone this very moment
    client = res.redis()
    record_batch(client, b.job_id, b.batch, result)
    _optimize_when_finished(client, b.job_id, s, store)
    return {
        "job_id": b.job_id,
        "batch": b.batch,
        "ingested": len(out.ingested),
        "skipped": len(out.skipped),
        "failed": len(out.failed),
        "seconds": out.seconds,
    }


def _optimize_when_finished(client: Any, job_id: str, settings: Settings, store: Any) -> None:
    """Optimize the store once (one worker claims it) when the job's last batch is recorded."""
    try:
        status = read_status(client, job_id, max_failures=0)
    except JobError:  # Redis lost the job (restart without persistence): whoever restores it re-runs the rest
        log.warning("job %s: no state in Redis (lost?); the batch is recorded in the manifest only", job_id)
        return
    if status.finished and status.done and claim_once(client, job_id, "optimize"):
        with server_errors_as_transient():
            check_optimize(settings)
            store.optimize()
        log.info("job %s finished: %d new, %d skipped, %d failed", job_id, status.done, status.skipped, status.failed)
