"""Jobs that survive their broker (issue 18): the manifest, reconcile, exact counters, the persistence warning.

Real parts only: private ``redis-server`` processes on free ports (killed and restarted by pid; the machine's Redis is
never touched), the real embedded store and a tiny random encoder, the real task body. No worker process here
(those are in ``tests/test_broker_restart.py``, slow tier).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.brokers import PrivateRedis

N_FIGURES = 8  # 4 batches of 2


@pytest.fixture()
def volatile_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    srv = PrivateRedis(tmp_path / "redis-volatile").start()
    yield srv
    srv.kill()


@pytest.fixture()
def aof_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    srv = PrivateRedis(tmp_path / "redis-aof", persist=True).start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image, ImageDraw

    root = tmp_path_factory.mktemp("corpus") / "drawings"
    root.mkdir()
    for i in range(N_FIGURES):
        rng = np.random.default_rng(i)
        img = Image.new("L", (64, 64), 255)
        d = ImageDraw.Draw(img)
        for _ in range(4):
            d.line(tuple(int(v) for v in rng.integers(0, 64, 4)), fill=0, width=2)
        img.save(root / f"USD09{i:05d}_1.png")
    return root


def _settings(data_dir: Path, encoder: Path, broker: str) -> Any:
    from pir.core.config import get_settings

    return get_settings(
        data_dir=data_dir,
        qdrant={"url": None},
        encoder={"name": str(encoder), "device": "cpu", "num_threads": 1},
        worker={"broker_url": broker, "result_backend": None, "batch_size": 2},
    )


def _queued_batches(url: str, queue: str = "embed") -> list[tuple[str, int]]:
    """(job id, batch) of every message waiting in ``queue`` of the Redis broker at ``url``."""
    import base64

    import redis

    c = redis.Redis.from_url(url)
    out = []
    for raw in c.lrange(queue, 0, -1):
        body = json.loads(base64.b64decode(json.loads(raw)["body"]))
        args = body[0]
        out.append((args[1], args[2]) if args[0] is None else (args[0], args[1]))  # embed alone: (None, job, batch)
    return out


# ---------------------------------------------------------------------------------------------------- manifest
def test_manifest_first_record_wins_and_counts(tmp_path: Path) -> None:
    from pir.workers.manifest import open_manifest

    assert open_manifest(tmp_path / "none.sqlite") is None  # never created by a reader
    man = open_manifest(tmp_path / "jobs.sqlite", create=True)
    assert man is not None
    figs = [[{"patent_id": "P1", "figure_id": str(i), "image_path": f"/x/{i}.png"}] for i in range(3)]
    man.create_job("j1", {"total": 4, "n_batches": 3, "created": "now"}, [{"path": "/x/bad", "reason": "bad"}], figs)
    man.mark_submitted("j1", [0, 1, 2])
    assert man.record("j1", 1, {"ingested": 1, "skipped": 0, "failed": []})
    assert not man.record("j1", 1, {"ingested": 0, "skipped": 1, "failed": []})  # a repeated delivery
    assert not man.record("j1", 7, {"ingested": 1})  # no such batch
    assert man.result("j1", 1) == {"ingested": 1, "skipped": 0, "failed": []}
    assert [b for b, _ in man.pending("j1")] == [0, 2] and man.pending("j1")[0][1] == figs[0]
    assert man.counts("j1") == {"done": 1, "skipped": 0, "failed": 1, "batches_done": 1}
    assert man.submissions("j1") == {0: 1, 1: 1, 2: 1}
    man.close()
    with open_manifest(tmp_path / "jobs.sqlite") as again:  # on disk: a new process sees the same
        assert again.job("j1")["issues"] == [{"path": "/x/bad", "reason": "bad"}]
        assert again.result("j1", 1)["ingested"] == 1


# ---------------------------------------------------------------------------------------------------- reconcile
def test_redis_lost_job_status_from_manifest_then_missing_batches_resubmitted_once(
    volatile_redis: PrivateRedis, tiny_encoder: Path, corpus: Path, tmp_path: Path
) -> None:
    """Redis without persistence restarted: status comes from the manifest; reconcile restores the job and submits
    exactly the batches not stored, once."""
    from click.testing import CliRunner

    from pir.cli import main
    from pir.workers.jobs import follow_job, reconcile, submit_ingest
    from pir.workers.manifest import manifest_path, open_manifest
    from pir.workers.state import read_status, record_batch, state_client

    s = _settings(tmp_path / "pir", tiny_encoder, volatile_redis.url)
    job = submit_ingest(corpus, s, enrich=False)
    assert job.n_batches == 4 and Path(job.manifest) == manifest_path(s) and Path(job.manifest).is_file()
    assert sorted(_queued_batches(volatile_redis.url)) == [(job.job_id, b) for b in range(4)]
    client = state_client(s)
    # batch 0 stored by a worker that recorded it in Redis only (another host); batch 2 by one that sees the manifest
    assert record_batch(client, job.job_id, 0, {"ingested": 2, "skipped": 0, "failed": []})
    with open_manifest(job.manifest) as man:
        assert man.record(job.job_id, 2, {"ingested": 2, "skipped": 0, "failed": []})
    follow_job(job.job_id, s, poll_s=0.05, timeout_s=0.3, show_progress=False)  # copies Redis' records to the manifest
    client.close()

    volatile_redis.kill()  # SIGKILL; restarted empty: queue and job state are gone
    volatile_redis.start()
    assert _queued_batches(volatile_redis.url) == []
    env = {"PIR_WORKER__BROKER_URL": volatile_redis.url, "PIR_DATA_DIR": str(s.data_dir)}
    res = CliRunner().invoke(main, ["jobs", "status", job.job_id, "--json"], env=env)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["source"] == "manifest" and d["state"] == "interrupted" and d["batches_done"] == 2
    assert d["done"] == 4 and d["pending"] == 4 and f"pir jobs resume {job.job_id}" in d["note"]
    assert "has no state" in d["note"]

    r = reconcile(job.job_id, s)
    assert r.lost and r.resubmitted == [1, 3] and r.batches_done == 2
    assert sorted(_queued_batches(volatile_redis.url)) == [(job.job_id, 1), (job.job_id, 3)]
    client = state_client(s)
    st = read_status(client, job.job_id)
    assert (st.done, st.skipped, st.failed, st.batches_done, st.pending) == (4, 0, 0, 2, 4)
    again = reconcile(job.job_id, s)  # Redis has the job again: nothing more is submitted
    assert not again.lost and again.resubmitted == []
    assert len(_queued_batches(volatile_redis.url)) == 2
    with open_manifest(job.manifest) as man:
        assert man.submissions(job.job_id) == {0: 1, 1: 2, 2: 1, 3: 2}
    # `pir jobs resume` submits the not-stored batches again even when Redis still has them (a forced reconcile)
    res = CliRunner().invoke(main, ["jobs", "resume", job.job_id], env=env)
    assert res.exit_code == 0 and "2 batches not stored yet were submitted again" in res.output, res.output
    assert len(_queued_batches(volatile_redis.url)) == 4
    client.close()


def test_worker_side_reconcile_restores_only_lost_jobs_of_this_redis(
    volatile_redis: PrivateRedis, tiny_encoder: Path, corpus: Path, tmp_path: Path
) -> None:
    """What a worker does every ``worker.reconcile_s``: restore the jobs Redis lost, once; leave alone the jobs still
    being submitted and those submitted to another Redis."""
    from pir.workers.jobs import reconcile_lost_jobs, submit_ingest
    from pir.workers.manifest import open_manifest

    s = _settings(tmp_path / "pir", tiny_encoder, volatile_redis.url)
    job = submit_ingest(corpus, s, enrich=False)
    other = submit_ingest(corpus, s, enrich=False)
    busy = submit_ingest(corpus, s, enrich=False)
    with open_manifest(job.manifest) as man:
        man.set_state(busy.job_id, "queueing")  # as while `pir ingest --queue` is still sending it
        meta = man.job(other.job_id)["meta"]
        man._conn.execute(  # submitted with another broker URL
            "UPDATE jobs SET meta = ? WHERE job_id = ?",
            (json.dumps({**meta, "state_url": "redis://elsewhere:6379/0"}), other.job_id),
        )
        man._conn.commit()
    assert reconcile_lost_jobs(s) == []  # Redis has them all
    volatile_redis.kill()
    volatile_redis.start()
    (r,) = reconcile_lost_jobs(s)
    assert r.job_id == job.job_id and r.lost and r.resubmitted == [0, 1, 2, 3]
    assert sorted(_queued_batches(volatile_redis.url)) == [(job.job_id, b) for b in range(4)]
    assert reconcile_lost_jobs(s) == []  # restored: nothing more


def test_stalled_job_whose_queue_was_lost_is_resubmitted_once(
    volatile_redis: PrivateRedis, tiny_encoder: Path, corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker lost its queue but Redis kept the job state (e.g. a non-durable RabbitMQ queue): after
    ``resubmit_after_s`` without progress, ``--wait`` submits the batches not stored again, once, and says so."""
    import logging

    import redis

    from pir.workers.jobs import follow_job, submit_ingest
    from pir.workers.manifest import open_manifest

    s = _settings(tmp_path / "pir", tiny_encoder, volatile_redis.url)
    job = submit_ingest(corpus, s, enrich=False)
    with open_manifest(job.manifest) as man:
        assert man.record(job.job_id, 1, {"ingested": 2, "skipped": 0, "failed": []})  # one batch stored
    redis.Redis.from_url(volatile_redis.url).delete("embed")  # the queued messages are gone, the job state is not
    with caplog.at_level(logging.WARNING, logger="pir.workers.jobs"):
        st = follow_job(job.job_id, s, poll_s=0.05, timeout_s=1.0, show_progress=False, resubmit_after_s=0.7)
    assert not st.finished
    lines = [r.getMessage() for r in caplog.records if "submitted again" in r.getMessage()]
    assert len(lines) == 1 and "3 batches not stored yet were submitted again (no progress for 0.7 s)" in lines[0]
    assert sorted(_queued_batches(volatile_redis.url)) == [(job.job_id, b) for b in (0, 2, 3)]
    with open_manifest(job.manifest) as man:
        assert man.submissions(job.job_id) == {0: 2, 1: 1, 2: 2, 3: 2}


def test_resume_unknown_job_is_one_line(volatile_redis: PrivateRedis, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pir.cli import main

    env = {"PIR_WORKER__BROKER_URL": volatile_redis.url, "PIR_DATA_DIR": str(tmp_path / "pir")}
    res = CliRunner().invoke(main, ["jobs", "resume", "nope"], env=env)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "no job 'nope' in the manifest" in res.output and len(res.output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------- exact counters
def test_batch_run_again_after_redis_outage_counts_once(
    aof_redis: PrivateRedis, tiny_encoder: Path, corpus: Path, tmp_path: Path
) -> None:
    """The batch is stored, then Redis dies before the batch is recorded (the task is retried): the second run
    finds the first run's result in the manifest and counts it once, as new, not as skipped."""
    import redis

    from pir.workers.app import create_app
    from pir.workers.jobs import submit_ingest
    from pir.workers.manifest import open_manifest
    from pir.workers.state import read_status, state_client
    from pir.workers.tasks import _Batch, _embed_batch

    s = _settings(tmp_path / "pir", tiny_encoder, aof_redis.url)
    job = submit_ingest(corpus, s, enrich=False)
    with open_manifest(job.manifest) as man:
        ((b0, figures),) = man.pending(job.job_id)[:1]
        options = json.loads(json.dumps(man.job(job.job_id)["meta"]["options"]))
    app = create_app(s)
    try:
        batch = _Batch(app, s, job.job_id, b0, figures, options)
        aof_redis.kill()  # Redis is down while the batch is embedded and stored
        with pytest.raises(redis.ConnectionError):
            _embed_batch(batch, None)  # stored, recorded in the manifest, not in Redis: Celery would retry
        aof_redis.start()  # append-only: the job hash is back, without this batch
        app.pir_resources.close()  # a fresh process picks the retry up (store closed and reopened)
        again = _embed_batch(batch, None)
        assert again.get("repeated") is True and again["ingested"] == 2
        st = read_status(state_client(s), job.job_id)
        assert (st.done, st.skipped, st.batches_done) == (2, 0, 1), st.to_dict()
        # without the manifest, the same retry counts the figures as skipped: the test would catch that
        app.pir_resources.close()
        blind = _Batch(app, s, job.job_id, 1, man_figures(job.manifest, job.job_id, 1), {**options, "manifest": None})
        first = _embed_batch(blind, None)
        assert first["ingested"] == 2
        client = state_client(s)
        client.hdel(f"pir:job:{job.job_id}:batches", "1")  # its record lost: the retry runs it all again
        second = _embed_batch(blind, None)
        assert second["skipped"] == 2 and second["ingested"] == 0
    finally:
        app.pir_resources.close()
        app.close()


def man_figures(path: str, job_id: str, batch: int) -> list[dict[str, Any]]:
    from pir.workers.manifest import open_manifest

    with open_manifest(path) as man:
        return man.batch_figures(job_id, [batch])[0][1]


# ------------------------------------------------------------------------------------------ persistence warning
def test_worker_warns_when_redis_keeps_nothing_on_disk(
    volatile_redis: PrivateRedis, aof_redis: PrivateRedis, tmp_path: Path
) -> None:
    from pir.core.config import get_settings
    from pir.workers.state import redis_persistence
    from pir.workers.worker import persistence_warnings

    msg = redis_persistence(volatile_redis.url)
    assert msg is not None and "keeps nothing on disk" in msg and "pir jobs resume" in msg
    assert redis_persistence(aof_redis.url) is None
    refused = PrivateRedis(tmp_path / "redis-noconfig", extra=("--rename-command", "CONFIG", "")).start()
    try:
        msg = redis_persistence(refused.url)
        assert msg is not None and msg.startswith("could not check") and "CONFIG GET refused" in msg
    finally:
        refused.kill()
    s = get_settings(worker={"broker_url": volatile_redis.url, "result_backend": aof_redis.url})
    (line,) = persistence_warnings(s)
    assert line.startswith("broker: ") and str(volatile_redis.port) in line
    s = get_settings(worker={"broker_url": aof_redis.url, "result_backend": volatile_redis.url})
    (line,) = persistence_warnings(s)
    assert line.startswith("job state: ")


# --------------------------------------------------------------------------------------- a Redis still loading
def test_redis_loading_its_data_after_a_restart_is_waited_for(tmp_path: Path) -> None:
    """Redis with append-only files answers ``LOADING`` to every command while it reads its data back after a
    restart: connecting (``pir jobs status``, ``--wait``, reconcile) waits for it instead of calling Redis
    unreachable (and "Nothing was queued" is said only by a submission)."""
    import time

    import redis

    from pir.core.config import get_settings
    from pir.core.errors import JobError
    from pir.workers.state import connect

    # about 3 s of loading (key-load-delay: a Redis debug setting, per command read back); Redis answers clients
    # (LOADING) only between every 1024 commands it loads, so more than 1024 of them
    n_keys, delay_us = 4096, 700
    srv = PrivateRedis(tmp_path / "redis", persist=True, extra=("--key-load-delay", str(delay_us))).start()
    try:
        c = redis.Redis.from_url(srv.url)
        pipe = c.pipeline()
        for i in range(n_keys):  # one command each: the delay applies per command read back from the AOF
            pipe.set(f"k{i}", i)
        pipe.execute()
        c.close()
        srv.kill()
        srv.start()  # returns as soon as the port is open: Redis is still loading
        s = get_settings(worker={"broker_url": srv.url, "result_backend": None})
        with pytest.raises(redis.BusyLoadingError):
            redis.Redis.from_url(srv.url).ping()  # what connect() used to turn into "cannot reach Redis"
        t0 = time.monotonic()
        client = connect(s)
        took = time.monotonic() - t0
        assert client.dbsize() == n_keys and 0.2 < took < 30, took
        client.close()
    finally:
        srv.kill()
    with pytest.raises(JobError) as err:
        connect(get_settings(worker={"broker_url": f"redis://127.0.0.1:{srv.port}/0", "result_backend": None}))
    assert "cannot reach Redis" in str(err.value) and "Nothing was queued" not in str(err.value)
