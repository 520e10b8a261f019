"""Queued ingest vs in-process on the same drawings: ``pir ingest --queue`` with 1 and 2 real ``pir worker``
processes against :func:`pir.pipeline.ingest` in this process, in one run (enrichment on, all three vectors).

Each configuration ingests the same figures into a fresh data dir (fresh enrichment and text caches, a fresh Qdrant
Edge store), so every one does the same work:

- ``0``: in-process :func:`pir.pipeline.ingest` (models loaded and warmed in this process first);
- ``1``: one worker consuming both queues (``--queues enrich,embed``, solo pool);
- ``2``: two workers. With the embedded Edge store only one process may own the store, so they split the stages:
  one ``enrich`` worker and one ``embed`` worker (each solo); with a Qdrant server (``qdrant.url``) both consume both
  queues;
- ``1x2``: one worker running two tasks at once (``--pool threads --concurrency 2``): two batches in flight in one
  process that owns the Edge store (pair it with ``encoder.num_threads=1``).

Workers are started and warmed (a one-batch job loads their encoder, text encoder and lexicon) before the clock
starts; the clock runs from :func:`pir.workers.jobs.submit_ingest` (discovery and queueing included) to the job's
last batch recorded, as ``pir ingest --queue --wait`` sees it. The broker is a Redis database this run claims (empty,
marked with a key; flushed at the end). Costs: machine-hours and core-hours per million figures from the measured
images/s, and the CPU seconds the processes really used per figure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pir.bench.speed import bench_figures, per_million, warm_ingest, write_subset
from pir.core.config import Settings
from pir.search import open_store
from pir.workers import EMBED_QUEUE, ENRICH_QUEUE
from pir.workers.jobs import follow_job, portable_encoder_name, submit_ingest

if TYPE_CHECKING:
    import redis

    from pir.encoder.model import ImageEncoder
    from pir.ingest.schema import PatentFigure

log = logging.getLogger(__name__)

#: Redis databases the benchmark may claim (the tests claim 8-11).
BENCH_DBS = (12, 13, 14, 15)
CLAIM_KEY = "pir-bench:claim"
LINKS: dict[str, Any] = {"follow_outside": True}  # reader option: the subset folders hold links to the images


class QueueBenchError(RuntimeError):
    """The queue benchmark cannot run (no Redis, no free database, a worker that does not start)."""


def claim_redis_db(base_url: str = "redis://127.0.0.1:6379") -> tuple[str, redis.Redis, str]:
    """``(url of an empty database, client, token)``: the first of :data:`BENCH_DBS` that is empty, marked as taken.

    Raises:
        QueueBenchError: Redis unreachable, or every benchmark database in use.
    """
    import redis  # lazy: start-up (redis)

    base = base_url.rstrip("/")
    if base.count("/") > 2:  # redis://host:port/db -> redis://host:port
        base = base.rsplit("/", 1)[0]
    token = uuid.uuid4().hex
    for db in BENCH_DBS:
        client = redis.Redis.from_url(f"{base}/{db}", socket_connect_timeout=3)
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=6 * 3600):
                return f"{base}/{db}", client, token
        except redis.RedisError as e:
            raise QueueBenchError(f"no Redis at {base} ({e})") from e
        client.close()
    raise QueueBenchError(f"no empty Redis database among {BENCH_DBS} at {base} for the queue benchmark")


def release_redis_db(client: redis.Redis, token: str) -> None:
    """Flush the claimed database (only if the claim is still this run's) and close the client."""
    try:
        if client.get(CLAIM_KEY) == token.encode():
            client.flushdb()
    finally:
        client.close()


class WorkerProc:
    """A ``pir worker`` subprocess in its own session, logging to a file; stopped warm (SIGTERM), killed if stuck."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._fh = open(log_path, "ab")  # noqa: SIM115  (closed in stop)
        argv = [sys.executable, "-c", "from pir.cli import main; main()", "worker", "--loglevel", "INFO", *args]
        self.proc = subprocess.Popen(argv, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def wait_ready(self, timeout: float = 180) -> None:
        """Wait for Celery's "ready." line.

        Raises:
            QueueBenchError: The worker exited or did not get ready in time.
        """
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if " ready." in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop(timeout=10)
        raise QueueBenchError(f"worker did not start:\n{self.tail()}")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the worker process and its children used so far."""
        try:
            p = psutil.Process(self.proc.pid)
            total = sum(p.cpu_times()[:2])
            for c in p.children(recursive=True):
                total += sum(c.cpu_times()[:2])
            return float(total)
        except psutil.Error:
            return 0.0

    def stop(self, timeout: float = 120) -> int:
        """Warm shutdown (finish the current task, close the store); SIGKILL to its process group after
        ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait(30)
        self._fh.close()
        return rc


def worker_env(settings: Settings, data_dir: Path, broker_url: str) -> dict[str, str]:
    """The environment of a benchmark worker: this run's encoder, text model, enrichment and batch settings, its own
    data dir and the claimed broker (no other ``PIR_`` variable of the caller leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIR_")}
    s = settings
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PIR_DATA_DIR=str(data_dir),
        PIR_ENCODER__NAME=portable_encoder_name(s.encoder.name),
        PIR_ENCODER__DEVICE=str(s.encoder.device),
        PIR_ENCODER__BATCH_SIZE=str(s.encoder.batch_size),
        PIR_TEXT__MODEL=portable_encoder_name(s.text.model),
        PIR_TEXT__BATCH_SIZE=str(s.text.batch_size),
        PIR_ENRICH__BACKEND=s.enrich.backend,
        PIR_ENRICH__LEVEL=s.enrich.level,
        PIR_ENRICH__K=str(s.enrich.k),
        PIR_QDRANT__URL=s.qdrant.url or "",
        PIR_WORKER__BROKER_URL=broker_url,
        PIR_WORKER__RESULT_BACKEND="",
        PIR_WORKER__BATCH_SIZE=str(s.worker.batch_size),
    )
    if s.encoder.num_threads:
        env["PIR_ENCODER__NUM_THREADS"] = str(s.encoder.num_threads)
    return env


def parse_config(spec: int | str) -> tuple[int, int]:
    """``(worker processes, tasks at once per worker)`` of a configuration: ``0``, ``1``, ``2``, ``1x2``.

    Raises:
        ValueError: Not of that form.
    """
    text = str(spec).strip().lower()
    procs, _, threads = text.partition("x")
    try:
        n, t = int(procs), int(threads or 1)
    except ValueError as e:
        raise ValueError(f"queue configuration {spec!r}: expected N (worker processes) or NxT (T tasks each)") from e
    if n < 0 or t < 1 or (n == 0 and t != 1):
        raise ValueError(f"queue configuration {spec!r}: expected N >= 0 worker processes and T >= 1 tasks each")
    return n, t


def worker_layout(n: int, server: bool) -> list[list[str]]:
    """The queues of each of ``n`` workers: one worker takes both; two split enrich / embed on the embedded store
    (one process may own it) or both take both queues on a Qdrant server."""
    both = [ENRICH_QUEUE, EMBED_QUEUE]
    if n == 1:
        return [both]
    if server:
        return [both] * n
    if n == 2:
        return [[ENRICH_QUEUE], [EMBED_QUEUE]]
    raise ValueError(f"{n} workers need a Qdrant server (qdrant.url): the embedded store has one owner process")


def _per_million(ips: float, cpu_s_per_image: float | None) -> dict[str, float | None]:
    """Hours for a million figures at ``ips`` images/s: of this machine, of its cores, and of measured CPU time."""
    cpu = None if cpu_s_per_image is None else round(cpu_s_per_image * 1e6 / 3600, 2)
    return {**per_million(ips), "cpu_hours_measured": cpu}


def _cfg(settings: Settings, data_dir: Path, broker_url: str | None, collection: str) -> Settings:
    return settings.model_copy(
        update={
            "data_dir": data_dir,
            "qdrant": settings.qdrant.model_copy(update={"collection": collection}),
            "worker": settings.worker.model_copy(update={"broker_url": broker_url, "result_backend": None}),
        }
    )


def _stored(settings: Settings) -> dict[str, int]:
    """Points of the settings' collection, and how many carry a ``text`` / ``words`` vector."""
    with open_store(settings) as store:
        pts = list(store.scroll(with_vectors=True))
    return {
        "points": len(pts),
        "with_text_vector": sum(p.text is not None for p in pts),
        "with_words_vector": sum(p.words is not None for p in pts),
    }


def _in_process(settings: Settings, encoder: ImageEncoder, folder: Path, data_dir: Path, enrich: bool) -> dict:
    from pir.pipeline import ingest  # lazy: start-up (torch)

    s = _cfg(settings, data_dir, None, "speed")
    te, _ = warm_ingest(s, enrich)
    cpu0 = time.process_time()
    summary = ingest(folder, s, encoder=encoder, text_encoder=te, enrich=enrich, optimize=False, show_progress=False,
                     reader_options=LINKS)  # fmt: skip
    cpu = time.process_time() - cpu0
    ips = summary.ingested / summary.seconds if summary.seconds > 0 else float("nan")
    cpu_per = cpu / max(1, summary.ingested)
    return {
        "workers": "0",
        "layout": "in-process",
        "ingested": summary.ingested,
        "failed": summary.n_failed,
        "seconds": round(summary.seconds, 2),
        "images_per_s": round(ips, 2),
        "cpu_s_per_image": round(cpu_per, 4),
        "stage_seconds": {k: round(v, 2) for k, v in summary.stage_seconds.items()},
        "per_million_figures": _per_million(ips, cpu_per),
        "stored": _stored(s),
    }


def _queued(
    settings: Settings,
    spec: str,
    folder: Path,
    warm: Path,
    data_dir: Path,
    broker_url: str,
    enrich: bool,
    timeout_s: float,
) -> dict[str, Any]:
    s = _cfg(settings, data_dir, broker_url, "speed")
    n, tasks = parse_config(spec)
    layout = worker_layout(n, settings.qdrant.url is not None)
    pool = ["--pool", "solo"] if tasks == 1 else ["--pool", "threads", "--concurrency", str(tasks)]
    env = worker_env(settings, data_dir, broker_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        WorkerProc(env, data_dir / f"worker{i}.log", "--queues", ",".join(q), *pool,
                   "--hostname", f"pir-bench{i}-{os.getpid()}@localhost")
        for i, q in enumerate(layout)
    ]  # fmt: skip
    try:
        for p in procs:
            p.wait_ready()
        warm_s = _cfg(settings, data_dir, broker_url, "warm")  # loads the workers' models before the clock starts
        warm_job = submit_ingest(warm, warm_s, enrich=enrich, reader_options=LINKS)
        follow_job(warm_job.job_id, s, poll_s=0.1, timeout_s=timeout_s, show_progress=False, hint_after_s=None)
        cpu0 = sum(p.cpu_s() for p in procs)
        t0 = time.perf_counter()
        job = submit_ingest(folder, s, enrich=enrich, reader_options=LINKS)
        status = follow_job(job.job_id, s, poll_s=0.1, timeout_s=timeout_s, show_progress=False, hint_after_s=None)
        seconds = time.perf_counter() - t0
        cpu = sum(p.cpu_s() for p in procs) - cpu0
    finally:
        rcs = [p.stop() for p in procs]
    if not status.finished:
        raise QueueBenchError(f"queued job not finished after {timeout_s:g} s: {status.to_dict()}")
    ips = status.done / seconds if seconds > 0 else float("nan")
    cpu_per = cpu / max(1, status.done)
    return {
        "workers": spec,
        "layout": " + ".join(",".join(q) for q in layout) + ("" if tasks == 1 else f" ({tasks} tasks at once)"),
        "ingested": status.done,
        "failed": status.failed,
        "n_batches": status.n_batches,
        "seconds": round(seconds, 2),
        "images_per_s": round(ips, 2),
        "cpu_s_per_image": round(cpu_per, 4),  # the workers' CPU (this process only submits and polls)
        "per_million_figures": _per_million(ips, cpu_per),
        "worker_exit_codes": rcs,
        "stored": _stored(s),
    }


def measure_queue(
    settings: Settings,
    encoder: ImageEncoder,
    figures: Sequence[PatentFigure],
    work: Path,
    *,
    workers: Sequence[int | str] = (0, 1, 2),
    broker: str | None = None,
    enrich: bool = True,
    timeout_s: float = 7200,
) -> dict[str, Any]:
    """Ingest ``figures`` in-process (``0``) and through 1 / 2 worker processes; images/s, CPU and cost of each.

    Args:
        settings: Encoder, text model, enrichment and ``worker.batch_size`` of every configuration.
        encoder: The loaded encoder of ``settings.encoder.name`` (for the in-process run).
        figures: The drawings (any reader's figures; their metadata is kept, see
            :func:`pir.bench.speed.write_subset`).
        work: A scratch folder (one data dir per configuration).
        workers: Configurations to run, in order (see the module docstring).
        broker: Redis to claim a database on (default: the host of ``worker.broker_url``, else 127.0.0.1:6379).
        enrich: Enrichment on (the settings' level), as ``pir ingest`` does by default.
        timeout_s: Longest wait for one queued job.

    Raises:
        QueueBenchError: No Redis or no free database, a worker that does not start, a job that does not finish.
    """
    folder = write_subset(figures, work / "images")
    warm = write_subset(figures[: settings.worker.batch_size], work / "warm")
    base = broker or settings.worker.broker_url or "redis://127.0.0.1:6379"
    if not base.startswith(("redis://", "rediss://")):
        raise QueueBenchError(f"the queue benchmark needs a Redis broker, not {base!r}")
    load0 = os.getloadavg()
    runs = []
    configs = [str(w).strip().lower() for w in workers]
    for c in configs:
        worker_layout(parse_config(c)[0] or 1, settings.qdrant.url is not None)  # refuse a bad one before any run
    url, client, token = claim_redis_db(base) if any(parse_config(c)[0] > 0 for c in configs) else ("", None, "")
    try:
        for c in configs:
            d = work / f"q{c}"
            if parse_config(c)[0] == 0:
                runs.append(_in_process(settings, encoder, folder, d, enrich))
            else:
                runs.append(_queued(settings, c, folder, warm, d, url, enrich, timeout_s))
            log.info("queue bench: %s", runs[-1])
    finally:
        if client is not None:
            release_redis_db(client, token)
    base_ips = next((r["images_per_s"] for r in runs if r["workers"] == "0"), None)
    for r in runs:
        r["vs_in_process"] = round(r["images_per_s"] / base_ips, 3) if base_ips else None
    out: dict[str, Any] = {
        "n_images": len(figures),
        "batch_size": settings.worker.batch_size,
        "enrich_level": settings.enrich.level if enrich else "off",
        "cpu_count": os.cpu_count(),
        "torch_threads": settings.encoder.num_threads or "default (CPU count)",
        "load_average_before_after": [round(x, 2) for x in (*load0, *os.getloadavg())],
        "runs": runs,
    }
    out["batch_sizing"] = batch_sizing(runs, settings.worker.batch_size)
    return out


def batch_sizing(runs: Sequence[dict[str, Any]], batch_size: int, *, max_overhead: float = 0.02) -> dict[str, Any]:
    """The queue's cost per batch (one worker vs in-process, per batch of ``batch_size``) and the smallest batch that
    keeps it under ``max_overhead`` of the batch's work."""
    base = next((r for r in runs if r["workers"] == "0"), None)
    one = next((r for r in runs if r["workers"] == "1"), None)
    if base is None or one is None or not base["images_per_s"] or not one["images_per_s"]:
        return {}
    per_image = 1 / base["images_per_s"]
    extra = 1 / one["images_per_s"] - per_image  # seconds per image the queue adds
    per_batch = extra * batch_size
    return {
        "queue_s_per_batch": round(per_batch, 3),
        "queue_share": round(extra / per_image, 3),
        "min_batch_for_overhead": None if per_batch <= 0 else int(-(-per_batch // (max_overhead * per_image))),
        "max_overhead": max_overhead,
    }


def queue_markdown(q: dict[str, Any]) -> str:
    """The queue measurement as a markdown table."""
    lines = [
        f"## queued vs in-process ingest ({q['n_images']} drawings, enrichment {q['enrich_level']}, batches of "
        f"{q['batch_size']}, {q['cpu_count']} CPUs, torch threads {q['torch_threads']}, load average "
        f"{q['load_average_before_after']})",
        "",
        "| workers | layout | img/s | vs in-process | CPU s/img | machine-h / 1M | core-h / 1M | stored (text, words) "
        "|",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in q["runs"]:
        c, st = r["per_million_figures"], r["stored"]
        lines.append(
            f"| {r['workers']} | {r['layout']} | {r['images_per_s']} | {r['vs_in_process']} | {r['cpu_s_per_image']} "
            f"| {c['machine_hours']} | {c['core_hours']} | {st['points']} ({st['with_text_vector']}, "
            f"{st['with_words_vector']}) |"
        )
    b = q.get("batch_sizing") or {}
    if b:
        lines += ["", f"queue cost per batch: {b['queue_s_per_batch']} s ({b['queue_share']:.1%} of the work); "
                  f"smallest batch under {b['max_overhead']:.0%}: {b['min_batch_for_overhead']}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def bench_queue(
    settings: Settings,
    *,
    data: str | Path | None = None,
    n_images: int = 2000,
    workers: str | Sequence[int | str] = (0, 1, 2),
    encoder: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    broker: str | None = None,
) -> dict[str, Any]:
    """:func:`measure_queue` on the first ``n_images`` figures of ``data`` (default: the speed benchmark's seeded
    synthetic corpus); writes ``queue.json`` / ``queue.md`` into ``out``.

    ``workers``: configurations, e.g. ``"0,1,2,1x2"`` (see the module docstring).
    """
    from pir.encoder.backbone import set_threads  # lazy: start-up (torch, timm)
    from pir.encoder.model import encoder_for  # lazy: start-up (torch, timm, PIL)

    configs = [c for c in workers.split(",") if c.strip()] if isinstance(workers, str) else list(workers)
    set_threads(settings.encoder.num_threads)
    enc = encoder_for(settings, encoder)
    s = settings if encoder is None else settings.model_copy(
        update={"encoder": settings.encoder.model_copy(update={"name": encoder})}
    )  # fmt: skip
    figures = bench_figures(s, data, n_images, seed)
    root = Path(s.data_dir) / "bench"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pir-queue-", dir=root))
    try:
        result = measure_queue(s, enc, figures, work, workers=configs, broker=broker)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if out is not None:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        (o / "queue.json").write_text(json.dumps(result, indent=2))
        (o / "queue.md").write_text(queue_markdown(result))
    return result
