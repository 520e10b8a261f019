"""A broker SIGKILLed and restarted mid-job, with real processes: nothing lost, nothing stored twice, exact counts.

Each test starts its own broker (tests/brokers.py: a private ``redis-server`` without persistence, or a private
``rabbitmq-server`` node), a real ``pir worker`` process and a real ``pir ingest --queue --wait`` process on about
100 synthetic figures (``pir synth``), kills the broker while the job's second batch is in flight and starts it
again a few seconds later on the same port. The ingest must end with exit 0, every figure stored once (count ==
unique ids == expected) and the counters exact (every figure counted once, as new). Measured times go to
``$PIR_FAULTS_LOG`` (default /tmp/pir-faults-measured.jsonl).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import PrivateRabbit, PrivateRedis
from tests.workerproc import REPO, WorkerProcess, worker_env

N_PATENTS = 22  # about 100 figures
BATCH = 16
DOWN_S = 4.0  # seconds the broker stays dead
#: Stated bound from the broker's restart to the job's end (2 cores shared with other test runs).
BOUND_S = 120.0


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    cli = [sys.executable, "-c", "from pir.cli import main; main()"]
    subprocess.run([*cli, "synth", str(out), "--patents", str(N_PATENTS), "--image-size", "512"], check=True,
                   cwd=REPO, capture_output=True, timeout=300)  # fmt: skip
    return out


def _settings(data_dir: Path, encoder: Path, broker: str, backend: str | None) -> Any:
    from pir.core.config import get_settings

    return get_settings(
        data_dir=data_dir,
        qdrant={"url": None},
        encoder={"name": str(encoder), "device": "cpu", "num_threads": 1},
        worker={"broker_url": broker, "result_backend": backend, "batch_size": BATCH, "heartbeat_s": 1.0,
                "task_time_limit": 60, "task_soft_time_limit": 50},
    )  # fmt: skip


def _counts(log: str) -> tuple[int, int]:
    """(embed batches in flight, embed batches succeeded) from a worker's log."""
    received, ok = log.count("] received"), log.count("] succeeded in")
    return received - ok, ok


def _record(name: str, **figures: Any) -> None:
    out = Path(os.environ.get("PIR_FAULTS_LOG", "/tmp/pir-faults-measured.jsonl"))
    try:
        with open(out, "a") as f:
            f.write(json.dumps({"test": name, "at": time.strftime("%H:%M:%S"), **figures}) + "\n")
    except OSError:
        pass


def _status_cli(job_id: str, env: dict[str, str]) -> dict[str, Any]:
    """``pir jobs status JOB --json`` as a process."""
    argv = [sys.executable, "-c", "from pir.cli import main; main()", "jobs", "status", job_id, "--json"]
    res = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=60, text=True)
    assert res.returncode == 0, res.stderr
    return {**json.loads(res.stdout), "stderr": res.stderr}


def _poll_until_done(job_id: str, env: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """``pir jobs status`` every second until the job is done (or ``timeout``); every status seen."""
    seen = []
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        seen.append(_status_cli(job_id, env))
        if seen[-1]["state"] == "done":
            break
        time.sleep(1.0)
    return seen


def _restart_mid_job(
    name: str, s: Any, corpus: Path, tmp_path: Path, kill: Any, start: Any, *, wait: bool = True
) -> dict[str, Any]:
    """Run the job; kill the broker while batch 2 is in flight, start it again after DOWN_S; check and measure.

    ``wait``: ``pir ingest --queue --wait`` follows (and reconciles); else ``pir ingest --queue`` returns at once and
    the job is followed with ``pir jobs status`` (the worker reconciles)."""
    from pir.pipeline import discover
    from pir.search import open_store

    figures, _ = discover(corpus, s)
    expected = {f.point_id for f in figures}
    env = worker_env(s)
    env["PIR_WORKER__RECONNECT_S"] = "120"
    env["PIR_WORKER__RECONCILE_S"] = "2"
    seen: list[dict[str, Any]] = []
    argv = [sys.executable, "-c", "from pir.cli import main; main()"]
    worker = WorkerProcess([*argv, "worker", "--loglevel", "INFO"], env, tmp_path / "worker.log")
    ingest_log = tmp_path / "ingest.err"
    try:
        worker.wait_ready(120)
        t0 = time.monotonic()
        with open(ingest_log, "wb") as err:
            ingest = subprocess.Popen(
                [*argv, "ingest", str(corpus), "--queue", *(["--wait"] if wait else []), "--no-enrich", "--json"],
                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=err,
            )  # fmt: skip
            t_end = time.monotonic() + 120
            while time.monotonic() < t_end:  # the first batch stored and the second one taken
                in_flight, ok = _counts(worker.text())
                if ok >= 1 and in_flight >= 1:
                    break
                assert not wait or ingest.poll() is None, "the ingest ended before the broker could be killed"
                time.sleep(0.01)
            in_flight, ok = _counts(worker.text())
            kill()
            t_kill = time.monotonic()
            assert ok >= 1 and in_flight >= 1, (
                f"no batch in flight when the broker was killed:\n{worker.text()[-3000:]}"
            )
            time.sleep(DOWN_S)
            start()
            t_up = time.monotonic()
            out, _ = ingest.communicate(timeout=BOUND_S + 60)
            if not wait:
                job_id = out.decode().split()[1].rstrip(":")
                seen = _poll_until_done(job_id, env, BOUND_S)
                out += json.dumps(seen[-1]).encode()
            t_done = time.monotonic()
    finally:
        if "ingest" in locals() and ingest.poll() is None:
            ingest.kill()
        rc_worker = worker.stop(60)
    err_text = ingest_log.read_text(errors="replace")
    assert ingest.returncode == 0, f"ingest exit {ingest.returncode}:\n{err_text[-3000:]}\n{worker.text()[-3000:]}"
    assert rc_worker == 0, worker.text()[-3000:]
    first, _, rest = out.decode().partition("\n")
    assert first.startswith("job ") and "queued" in first and "pir jobs resume" in first
    status = json.loads(rest)
    with open_store(s) as store:
        ids = [p.id for p in store.scroll()]
    measured = {
        "broker": s.worker.broker_kind,
        "batches": status["n_batches"],
        "batches_done_before_kill": ok,
        "down_s": DOWN_S,
        "kill_to_done_s": round(t_done - t_kill, 1),
        "restart_to_done_s": round(t_done - t_up, 1),
        "submit_to_done_s": round(t_done - t0, 1),
        "bound_s": BOUND_S,
        "stored": len(ids),
        "unique": len(set(ids)),
        "expected": len(expected),
        "done": status["done"],
        "skipped": status["skipped"],
        "failed": status["failed"],
    }
    _record(name, **measured)
    print(name, measured)
    print("\n".join(ln for ln in err_text.replace("\r", "\n").splitlines() if "%|" not in ln))
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected, measured
    # exact counters: a fresh store, so every figure counted once, as new (a re-run batch is not counted again)
    assert (status["done"], status["skipped"], status["failed"], status["pending"]) == (len(expected), 0, 0, 0)
    assert status["state"] == "done" and status["batches_done"] == status["n_batches"]
    assert t_done - t_up <= BOUND_S, measured
    return {"measured": measured, "stderr": err_text, "worker_log": worker.text(), "status": status, "seen": seen}


@pytest.mark.slow  # ~60-90 s: a worker start, ~100 figures, a broker restart
def test_redis_without_persistence_killed_mid_job_loses_nothing(
    tiny_encoder: Path, synth: Path, tmp_path: Path
) -> None:
    """Redis (broker + job state) keeps nothing on disk: restarted, it has forgotten the queue and the job. The
    waiting ingest restores the job from its manifest and submits the batches not stored; the batch that was in
    flight is counted once."""
    srv = PrivateRedis(tmp_path / "redis").start()
    try:
        s = _settings(tmp_path / "pir", tiny_encoder, srv.url, None)
        got = _restart_mid_job("redis_no_persistence_restart", s, synth, tmp_path, srv.kill, srv.start)
    finally:
        srv.kill()
    assert "keeps nothing on disk" in got["worker_log"]  # the worker warned at start
    # two reconcilers race after the restart: the waiting ingest, and the worker's loop (every RECONCILE_S); the one
    # that finds the job lost restores it and says so, the other then finds it restored
    restored = [t for t in (got["stderr"], got["worker_log"]) if "Redis no longer had this job" in t]
    assert restored and "submitted again" in restored[0], (got["stderr"][-2000:], got["worker_log"][-3000:])
    assert "lost Redis" in got["stderr"]


@pytest.mark.slow  # ~60-90 s: a worker start, ~100 figures, a broker restart
def test_redis_without_persistence_no_wait_worker_restores_the_job(
    tiny_encoder: Path, synth: Path, tmp_path: Path
) -> None:
    """The same without anyone waiting: `pir ingest --queue` returned at once; the worker (it shares the data dir and
    so the manifest) restores the job Redis forgot and submits its missing batches; `pir jobs status` tells the
    truth meanwhile (from the manifest while Redis has no state for the job)."""
    srv = PrivateRedis(tmp_path / "redis").start()
    try:
        s = _settings(tmp_path / "pir", tiny_encoder, srv.url, None)
        got = _restart_mid_job("redis_no_persistence_restart_no_wait", s, synth, tmp_path, srv.kill, srv.start,
                               wait=False)  # fmt: skip
    finally:
        srv.kill()
    assert "Redis no longer had this job" in got["worker_log"]  # the worker's reconcile said what it did
    for st in got["seen"]:  # never "no job": either live state, or the manifest with the command to run
        assert st["source"] in ("redis", "manifest")
        if st["source"] == "manifest":
            assert "pir jobs resume" in st["note"] and st["state"] == "interrupted"


@pytest.mark.slow  # ~90-150 s: two RabbitMQ starts, a worker start, ~100 figures
def test_rabbitmq_killed_mid_job_loses_nothing(tiny_encoder: Path, synth: Path, tmp_path: Path) -> None:
    """RabbitMQ (durable queues, persistent messages) killed and restarted: the queued batches and the one in
    flight (unacknowledged) come back; job state in a private Redis with append-only."""
    rabbit = PrivateRabbit(tmp_path / "rabbit")
    state = PrivateRedis(tmp_path / "redis", persist=True).start()
    try:
        rabbit.start()
        s = _settings(tmp_path / "pir", tiny_encoder, rabbit.url, state.url)
        got = _restart_mid_job("rabbitmq_restart", s, synth, tmp_path, rabbit.kill, rabbit.start)
    finally:
        rabbit.kill()
        state.kill()
    assert "keeps nothing on disk" not in got["worker_log"]
