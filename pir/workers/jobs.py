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
import sqlite3
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pir.core.config import Settings
from pir.core.errors import JobError, redact_url
from pir.workers.manifest import Manifest, manifest_path, open_manifest
from pir.workers.state import (
    JOB_TTL_S,
    JobStatus,
    _now,
    alive_workers,
    connect,
    job_key,
    read_status,
    record_batch,
    recorded_batches,
    restore_job,
    state_url,
)

if TYPE_CHECKING:
    from pir.ingest.schema import PatentFigure

log = logging.getLogger(__name__)

__all__ = [
    "Reconciled",
    "SubmittedJob",
    "follow_job",
    "job_status",
    "reconcile",
    "reconcile_lost_jobs",
    "resume_job",
    "submit_ingest",
]


@dataclass
class SubmittedJob:
    """A job that was queued."""

    job_id: str
    total: int
    n_batches: int
    read_failures: int = 0
    manifest: str = ""


@dataclass
class Reconciled:
    """What :func:`reconcile` did: whether Redis had lost the job (its state was restored from the manifest) and
    which batches were submitted again."""

    job_id: str
    lost: bool
    resubmitted: list[int]
    batches_done: int
    n_batches: int
    manifest: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.line()}

    def line(self) -> str:
        """One line saying what happened."""
        head = f"job {self.job_id}: "
        if self.lost:
            head += (
                "Redis no longer had this job (restarted without keeping its data?); its state was restored from "
                f"the manifest {self.manifest} ({self.batches_done} of {self.n_batches} batches stored) and "
            )
        n = len(self.resubmitted)
        if not n:
            return head + "no batch needed submitting again"
        return head + f"{n} batch{'es' if n != 1 else ''} not stored yet {'were' if n != 1 else 'was'} submitted again"


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
    app: Any,
    client: Any,
    job_id: str,
    batches: list[tuple[int, list[dict[str, Any]]]],
    options: dict[str, Any],
    enrich: bool,
    *,
    close: bool = True,
) -> None:
    """Send one ``enrich | embed`` chain (or ``embed`` alone) per ``(batch number, figure dicts)``; closes ``app``
    (unless ``close`` is false); JobError when it fails."""
    from pir.workers.tasks import EMBED_TASK, ENRICH_TASK  # lazy: start-up (celery, kombu)

    enrich_task, embed_task = app.tasks[ENRICH_TASK], app.tasks[EMBED_TASK]
    try:
        with app.producer_or_acquire() as producer:
            for n, figures in batches:
                args = (job_id, n, figures, options)
                # `.s()`: the chain prepends the enrich result (figure key -> descriptions) to embed's arguments
                sig = (enrich_task.si(*args) | embed_task.s(*args)) if enrich else embed_task.si(None, *args)
                sig.apply_async(producer=producer)
    except Exception as e:
        client.hset(job_key(job_id), "state", f"enqueue failed: {e}")
        raise JobError(f"queueing job {job_id} failed after Redis answered: {e}") from e
    finally:
        if close:
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

    The job's manifest (its batches: figure ids and image paths) is written to ``<data_dir>/jobs.sqlite`` before
    anything is queued, so a broker or Redis that forgets the job cannot lose it (:func:`reconcile`).

    Raises:
        JobError: No broker, Redis unreachable, an unreadable path, or no drawings found.
    """
    from pir.pipeline import batched  # lazy: start-up (PIL, numpy, tqdm)
    from pir.workers.app import WorkerConfigError, create_app  # lazy: start-up (celery, kombu)

    client = connect(settings, queueing=True)
    try:
        try:
            app = create_app(settings)
        except WorkerConfigError as e:
            raise JobError(str(e)) from e
        root, figures, issues = _discover(app, path, settings, fmt, reader_options)
        job_id = uuid.uuid4().hex
        batches = [[f.model_dump(mode="json") for f in b] for b in batched(figures, settings.worker.batch_size)]
        mpath = manifest_path(settings)
        options = {
            "encoder": portable_encoder_name(settings.encoder.name),
            "collection": settings.qdrant.collection,
            "enrich": enrich,
            "force": force,
            "manifest": str(mpath),
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
            "state_url": redact_url(state_url(settings)),
        }
        issue_dicts = [{"path": str(i.path), "reason": str(i.reason)} for i in issues]
        try:
            man = open_manifest(mpath, create=True)
            assert man is not None
            with man:
                man.create_job(job_id, {**meta, "options": options}, issue_dicts, batches)  # state: queueing
                try:
                    _write_job(client, job_id, meta, issues)
                    _enqueue(app, client, job_id, list(enumerate(batches)), options, enrich)
                except BaseException:
                    man.delete_job(job_id)  # it failed, and said so: no worker may resume it later
                    raise
                man.mark_submitted(job_id, range(len(batches)))
                man.set_state(job_id, "queued")
        except (OSError, sqlite3.Error) as e:
            app.close()
            raise JobError(f"{mpath}: cannot write the job manifest ({e}); nothing was queued") from e
        client.hset(job_key(job_id), "state", "queued")
        return SubmittedJob(
            job_id=job_id,
            total=len(figures) + len(issues),
            n_batches=len(batches),
            read_failures=len(issues),
            manifest=str(mpath),
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


def stall_resubmit_s(settings: Settings) -> float:
    """Seconds without progress after which ``--wait`` submits the batches not stored yet again (a broker that lost
    its queue without losing the job state, e.g. a non-durable RabbitMQ queue): longer than any batch can be held
    by a live worker (the hard time limit) plus the redelivery bound, plus a minute."""
    return settings.worker.task_time_limit + redelivery_bound_s(settings) + 60.0


def _options(meta: dict[str, Any], man: Manifest) -> dict[str, Any]:
    opts = dict(meta.get("options") or {})
    opts.setdefault("encoder", meta.get("encoder", ""))
    opts.setdefault("collection", meta.get("collection", ""))
    opts.setdefault("enrich", bool(int(meta.get("enrich", 1))))
    opts.setdefault("force", bool(int(meta.get("force", 0))))
    opts["manifest"] = str(man.path)
    return opts


def _manifest_job(settings: Settings, job_id: str) -> tuple[Manifest, dict[str, Any]] | None:
    """(manifest, job) when this data dir's manifest has the job, else None."""
    man = open_manifest(manifest_path(settings))
    if man is None:
        return None
    job = man.job(job_id)
    if job is None:
        man.close()
        return None
    return man, job


def reconcile(
    job_id: str,
    settings: Settings,
    *,
    force: bool = False,
    client: Any = None,
    manifest: Manifest | None = None,
    app: Any = None,
) -> Reconciled:
    """Bring a job's state in Redis and its queued batches back in line with its manifest.

    Batch results recorded in Redis but not in the manifest are copied to it. When Redis has no state for the job
    (it restarted without persistence, or was flushed), the state is restored from the manifest (counters from the
    batches recorded there) and every batch not recorded is submitted again. With ``force`` (``pir jobs resume``, or
    a job that stopped progressing) the batches not recorded are submitted again even when Redis still has the job:
    a batch that was still queued then runs twice, which stores nothing twice and counts once (the first record of a
    batch wins, in the manifest and in Redis). Restoring is atomic, so two callers never both resubmit. ``app``: the
    Celery app to submit with (a worker's own; default: a new one).

    Raises:
        JobError: Redis unreachable, or the job is not in this data dir's manifest.
    """
    from pir.workers.app import (  # lazy: cycle: pir.workers.app builds tasks that import this module
        WorkerConfigError,
        create_app,
    )

    own = manifest is None
    if own:
        found = _manifest_job(settings, job_id)
        if found is None:
            raise JobError(
                f"no job {job_id!r} in the manifest {manifest_path(settings)}: it was submitted with another data "
                "dir (PIR_DATA_DIR), or never"
            )
        manifest = found[0]
    assert manifest is not None
    own_client = client is None
    try:
        job = manifest.job(job_id)
        if job is None:
            raise JobError(f"no job {job_id!r} in the manifest {manifest.path}")
        if own_client:
            client = connect(settings)
        meta = {k: v for k, v in job["meta"].items() if k != "options"}
        done = set(manifest.results(job_id))
        for b, rec in recorded_batches(client, job_id).items():
            if b not in done and manifest.record(job_id, b, rec, str(rec.get("at", ""))):
                done.add(b)
        lost = restore_job(client, job_id, {**meta, "state": "queued"}, job["issues"])
        if lost:
            for b, rec in manifest.results(job_id).items():
                record_batch(client, job_id, b, rec)
        todo = [(b, figs) for b, figs in manifest.pending(job_id) if b not in done] if (lost or force) else []
        if todo:
            own_app = app is None
            try:
                sender = create_app(settings) if own_app else app
            except WorkerConfigError as e:
                raise JobError(str(e)) from e
            enrich = bool(int(meta.get("enrich", 1)))
            _enqueue(sender, client, job_id, todo, _options(job["meta"], manifest), enrich, close=own_app)
            manifest.mark_submitted(job_id, [b for b, _ in todo])
            client.hset(job_key(job_id), "state", "queued")
        return Reconciled(
            job_id=job_id,
            lost=lost,
            resubmitted=[b for b, _ in todo],
            batches_done=len(set(manifest.results(job_id))),
            n_batches=int(meta.get("n_batches", 0)),
            manifest=str(manifest.path),
        )
    finally:
        if own_client and client is not None:
            client.close()
        if own:
            manifest.close()


#: Seconds a job may stay in state ``queueing`` (being submitted) before a worker treats it as submitted.
QUEUEING_GRACE_S = 300


def reconcile_lost_jobs(settings: Settings, *, client: Any = None, app: Any = None) -> list[Reconciled]:
    """For each job of this data dir's manifest (at most :data:`JOB_TTL_S` old) with batches not stored, whose
    state Redis has lost: restore it and submit those batches (what a worker does every ``worker.reconcile_s``).

    Returns:
        What was done for each job that Redis had lost (an empty list when none was).
    """
    from datetime import UTC, datetime, timedelta

    man = open_manifest(manifest_path(settings))
    if man is None:
        return []
    now = datetime.now(UTC)
    since = (now - timedelta(seconds=JOB_TTL_S)).isoformat(timespec="seconds")
    grace = (now - timedelta(seconds=QUEUEING_GRACE_S)).isoformat(timespec="seconds")
    own_client = client is None
    where = redact_url(state_url(settings))
    out = []
    try:
        client = client or connect(settings)
        for job_id, meta in man.unfinished_jobs(since):
            if meta.get("state") == "queueing" and str(meta.get("created", "")) > grace:
                continue  # still being submitted
            if meta.get("state_url", where) != where:
                continue  # submitted to another Redis
            if client.exists(job_key(job_id)):
                continue
            r = reconcile(job_id, settings, client=client, manifest=man, app=app)
            if r.lost:
                out.append(r)
        return out
    finally:
        man.close()
        if own_client and client is not None:
            client.close()


def resume_job(job_id: str, settings: Settings) -> Reconciled:
    """``pir jobs resume JOB``: submit again every batch of the job that is not stored (see :func:`reconcile`).

    Raises:
        JobError: Redis unreachable, or the job is not in this data dir's manifest.
    """
    return reconcile(job_id, settings, force=True)


def manifest_status(man: Manifest, job: dict[str, Any], job_id: str, note: str = "") -> JobStatus:
    """A job's status from its manifest alone (Redis lost it or cannot be reached)."""
    meta = job["meta"]
    c = man.counts(job_id)
    total, n_batches = int(meta.get("total", 0)), int(meta.get("n_batches", 0))
    failures = [{"key": "", "path": str(i.get("path", "")), "reason": str(i.get("reason", ""))} for i in job["issues"]]
    for r in man.results(job_id).values():
        failures += [f for f in r.get("failed", []) if isinstance(f, dict)]
    pending = max(0, total - c["done"] - c["skipped"] - c["failed"])
    return JobStatus(
        job_id=job_id,
        state="done" if c["batches_done"] >= n_batches and pending == 0 else "interrupted",
        total=total,
        done=c["done"],
        skipped=c["skipped"],
        failed=c["failed"],
        pending=pending,
        failures=failures,
        n_batches=n_batches,
        batches_done=c["batches_done"],
        path=str(meta.get("path", "")),
        collection=str(meta.get("collection", "")),
        encoder=str(meta.get("encoder", "")),
        created=str(meta.get("created", "")),
        source="manifest",
        note=note,
    )


def job_status(job_id: str, settings: Settings) -> JobStatus:
    """Status of a job (counts, pending, failed files with reasons): from Redis, or from this data dir's manifest
    when Redis has lost the job or cannot be reached (``source="manifest"``, with a ``note`` naming
    ``pir jobs resume``).

    Raises:
        JobError: Redis unreachable or without the job, and the job not in the manifest either.
    """
    found = _manifest_job(settings, job_id)
    try:
        try:
            client = connect(settings)
        except JobError as e:
            if found is None:
                raise
            why = f"Redis at {redact_url(state_url(settings))} cannot be reached ({type(e.__cause__).__name__})"
        else:
            try:
                return read_status(client, job_id)
            except JobError:
                if found is None:
                    raise
                why = f"Redis at {redact_url(state_url(settings))} has no state for it (lost in a restart?)"
            finally:
                client.close()
        man, job = found
        st = manifest_status(man, job, job_id)
        left = st.n_batches - st.batches_done
        st.note = f"job {job_id}: {why}; counts from the manifest {man.path}" + (
            f"; `pir jobs resume {job_id}` submits the {left} batch(es) not stored" if left else ""
        )
        return st
    finally:
        if found is not None:
            found[0].close()


#: Seconds between two copies of Redis' batch records to the manifest while following a job.
MIRROR_EVERY_S = 2.0


def _mirror(client: Any, man: Manifest | None, job_id: str) -> None:
    """Copy batch results recorded in Redis to the manifest (a worker on another host cannot write it)."""
    if man is None:
        return
    have = set(man.results(job_id))
    for b, rec in recorded_batches(client, job_id).items():
        if b not in have:
            man.record(job_id, b, rec, str(rec.get("at", "")))


def follow_job(
    job_id: str,
    settings: Settings,
    *,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    show_progress: bool = True,
    hint_after_s: float | None = 30.0,
    reconnect_s: float | None = None,
    resubmit_after_s: float | None = None,
) -> JobStatus:
    """Poll a job until nothing is pending (or ``timeout_s`` passed), with a progress bar; returns the last status.

    When nothing progressed (no batch enriched or stored) for ``hint_after_s`` seconds, one hint line says whether
    workers are alive (their heartbeats in Redis) or none is (on stderr with the progress bar, else logged as a
    warning); following goes on. The job is reconciled with its manifest (this data dir's ``jobs.sqlite``) along the
    way: when Redis comes back without the job, its state is restored and the batches not stored are submitted
    again; when nothing progressed for ``resubmit_after_s`` (default :func:`stall_resubmit_s`), they are submitted
    again too. Each of these says so in one line. When Redis is lost, following waits up to ``reconnect_s``
    (``worker.reconnect_s``) for it to come back.

    Raises:
        JobError: Redis unreachable at the start or gone for longer than ``reconnect_s``, or no such job.
    """
    from tqdm.auto import tqdm  # lazy: start-up (tqdm)

    reconnect = settings.worker.reconnect_s if reconnect_s is None else reconnect_s
    resubmit_after = stall_resubmit_s(settings) if resubmit_after_s is None else resubmit_after_s
    found = _manifest_job(settings, job_id)
    man = found[0] if found else None
    client = connect(settings)
    t_end = None if timeout_s is None else time.monotonic() + timeout_s
    bar = None

    def say(line: str) -> None:
        if bar is not None and show_progress:
            bar.write(line, file=sys.stderr)
        else:
            log.warning(line)

    try:
        status = _read(client, job_id, settings, man, say, reconnect)
        bar = tqdm(total=status.total, desc=f"job {job_id[:8]}", unit="fig", disable=not show_progress)
        seen, mirrored = 0, (0, float("-inf"))
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
                say(stall_hint(client, job_id, settings, hint_after_s))
            if man is not None and now - t_progress >= resubmit_after:
                r = reconcile(job_id, settings, force=True, client=client, manifest=man)
                say(f"{r.line()} (no progress for {resubmit_after:g} s)")
                t_progress = now
            if t_end is not None and now >= t_end:
                break
            time.sleep(poll_s)
            status = _read(client, job_id, settings, man, say, reconnect)
            if man is not None and status.batches_done != mirrored[0] and now - mirrored[1] >= MIRROR_EVERY_S:
                mirrored = (status.batches_done, now)
                _guarded(lambda: _mirror(client, man, job_id))
        return status
    finally:
        if bar is not None:
            bar.close()
        client.close()
        if man is not None:
            man.close()


def _guarded(fn: Any) -> None:
    import redis  # lazy: start-up (redis)

    try:
        fn()
    except (redis.RedisError, sqlite3.Error) as e:
        log.debug("mirroring batch results to the manifest: %s", e)


def _read(
    client: Any, job_id: str, settings: Settings, man: Manifest | None, say: Any, reconnect_s: float
) -> JobStatus:
    """The job's status; waits out a Redis outage (up to ``reconnect_s``) and reconciles a job Redis lost."""
    import redis  # lazy: start-up (redis)

    where = redact_url(state_url(settings))
    t_lost: float | None = None
    while True:
        try:
            try:
                return read_status(client, job_id)
            except JobError:
                if man is None:
                    raise
                r = reconcile(job_id, settings, client=client, manifest=man)
                if r.lost:
                    say(r.line())
                return read_status(client, job_id)
        except redis.RedisError as e:
            now = time.monotonic()
            if t_lost is None:
                t_lost = now
                say(
                    f"job {job_id}: lost Redis at {where} ({type(e).__name__}); waiting up to {reconnect_s:g} s for "
                    "it to come back"
                )
            if now - t_lost >= reconnect_s:
                raise JobError(_lost_message(job_id, where, reconnect_s, man)) from None
            time.sleep(min(1.0, max(0.1, reconnect_s / 20)))


def _lost_message(job_id: str, where: str, reconnect_s: float, man: Manifest | None) -> str:
    head = f"lost Redis at {where} while following job {job_id}; it did not come back within {reconnect_s:g} s. "
    if man is None:
        return head + (
            f"Whether the job goes on depends on the broker; when Redis is back, see `pir jobs status {job_id}` and "
            f"`pir jobs resume {job_id}` from the data dir it was submitted from"
        )
    return head + (
        f"Its batches are kept in the manifest {man.path}: when Redis is back, `pir jobs resume {job_id}` submits "
        f"those not stored yet (`pir jobs status {job_id}` shows what is stored)"
    )
