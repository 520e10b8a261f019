"""Queued ingest with real Celery worker processes on the real Redis at 127.0.0.1:6379 (or a testcontainers Redis).

Each module run claims an empty Redis database (SET NX marker) so parallel runs never share queues or job keys, and
flushes it at the end. Workers are ``python -m pir.cli worker`` subprocesses with a tiny random timm encoder; the
embed worker owns the embedded Qdrant Edge store, so the store is read only after the worker stopped. The main jobs
run on an enrich worker and an embed worker with different data dirs, as on two hosts.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.workerproc import WorkerProcess, worker_env

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REPO = Path(__file__).resolve().parents[1]
N_SYNTH_PATENTS = 10
USPTO_PATENTS = 4


# ----------------------------------------------------------------------------------------------------------- fixtures
def _redis_or_skip() -> Any:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.skip(f"no Redis at {REDIS_HOST}:{REDIS_PORT} ({e})")
    return client


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:6379/<n>`` of a database nobody else uses; flushed afterwards."""
    import redis

    _redis_or_skip()
    token = uuid.uuid4().hex
    for db in random.sample(range(8, 12), 4):  # the faults helper's databases (8-11), shared with test_faults
        c = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if c.dbsize() == 0 and c.set("pir-test:claim", token, nx=True, ex=3600):
            if c.dbsize() == 1:
                break
            c.delete("pir-test:claim")
    else:
        pytest.skip("no empty Redis database (8..11) to claim for the worker tests")
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    if c.get("pir-test:claim") == token.encode():
        c.flushdb()


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ``test_efficientnet`` encoder directory (64 px input): fast to load and to run."""
    import torch

    from pir.encoder.model import EncoderConfig, PreprocessConfig, VisualEncoder, save_encoder_dir

    torch.manual_seed(0)
    cfg = EncoderConfig(
        name="tiny-test-efficientnet",
        backbone="test_efficientnet",
        pretrained="none",
        preprocess=PreprocessConfig(image_size=64),
    )
    return save_encoder_dir(tmp_path_factory.mktemp("encoder"), cfg, VisualEncoder(cfg.backbone, pretrained=False))


@pytest.fixture(scope="module")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pir.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("synth")
    synthesize_corpus(
        out, patents=N_SYNTH_PATENTS, seed=3, image_size=128, classes=["chair", "lamp", "bottle", "table", "mug"]
    )
    return out


@pytest.fixture(scope="module")
def corrupt_corpus(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the synthetic corpus whose second image is not an image; returns (corpus, bad file)."""
    out = tmp_path_factory.mktemp("corrupt") / "corpus"
    shutil.copytree(synth_corpus, out)
    bad = sorted((out / "images").glob("*.png"))[1]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    return out, bad


def _uspto_subset(shared_data: Path, dest: Path, n: int) -> Path:
    """``n`` patent folders of the USPTO sample, copied (symlinks out of the folder would be refused by ingest)."""
    src = shared_data / "impact_uspto_design_raw" / "sample_data"
    if not src.is_dir():
        pytest.skip(f"{src} not found")
    for folder in sorted(p for p in src.iterdir() if p.is_dir())[:n]:
        (dest / folder.name).mkdir(parents=True)
        for f in folder.iterdir():
            shutil.copy2(f, dest / folder.name / f.name)
    return dest


def _settings(data_dir: Path, broker: str | None, encoder: Path, **worker: Any) -> Any:
    from pir.core.config import get_settings

    return get_settings(
        data_dir=data_dir,
        qdrant={"url": None},
        encoder={"name": str(encoder), "device": "cpu"},
        worker={"broker_url": broker, "result_backend": None, "batch_size": 4, **worker},
    )


class Worker(WorkerProcess):
    """``pir worker --loglevel INFO ARGS`` as a subprocess (see :class:`tests.workerproc.WorkerProcess`)."""

    def __init__(self, settings: Any, log: Path, *args: str) -> None:
        argv = [sys.executable, "-c", "from pir.cli import main; main()", "worker", "--loglevel", "INFO", *args]
        super().__init__(argv, worker_env(settings), log)


def _follow(job_id: str, settings: Any, timeout: float = 120) -> Any:
    from pir.workers.jobs import follow_job

    status = follow_job(job_id, settings, poll_s=0.2, timeout_s=timeout, show_progress=False)
    assert status.finished, f"job {job_id} not finished after {timeout} s: {status.to_dict()}"
    return status


def _points(settings: Any, collection: str) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    from pir.search import open_store

    with open_store(settings, collection=collection) as store:
        return {p.id: (np.asarray(p.vector), p.payload) for p in store.scroll(with_vectors=True)}


def _assert_same_points(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    volatile = {"embedded_at"}
    for pid, (vec, payload) in want.items():
        gvec, gpayload = got[pid]
        np.testing.assert_allclose(gvec, vec, atol=1e-5, err_msg=pid)
        assert {k: v for k, v in gpayload.items() if k not in volatile} == {
            k: v for k, v in payload.items() if k not in volatile
        }


def _in_process(path: Path, settings: Any, collection: str, *, enrich: bool) -> dict:
    from pir.pipeline import ingest

    s = settings.model_copy(update={"qdrant": settings.qdrant.model_copy(update={"collection": collection})})
    ingest(path, s, enrich=enrich, show_progress=False)
    return _points(s, collection)


def _cli_ingest_wait(path: Path, settings: Any, collection: str) -> Any:
    from click.testing import CliRunner

    from pir.cli import main
    from pir.workers.state import JobStatus

    env = {k: v for k, v in worker_env(settings).items() if k.startswith("PIR_")}
    args = ["ingest", str(path), "--queue", "--wait", "--json", "--no-enrich", "--collection", collection]
    res = CliRunner().invoke(main, args, env=env)
    assert res.exit_code == 0, res.output
    first, _, rest = res.stdout.partition("\n")
    assert first.startswith("job ") and "queued" in first
    return JobStatus(**json.loads(rest))


# ------------------------------------------------------------------------- one worker, several jobs, then compare
@pytest.fixture(scope="module")
def queued(
    redis_url: str,
    tiny_encoder: Path,
    synth_corpus: Path,
    corrupt_corpus: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> dict[str, Any]:
    """Run the corrupt job, and the synthetic (enriched) and USPTO jobs when their tests are selected, through an
    embed worker (plus an enrich worker for the enriched job), then stop them.

    The two workers have different data dirs (as on two hosts): the embed worker has no enrich cache of its own.
    """
    from pir.workers.jobs import submit_ingest

    root = tmp_path_factory.mktemp("queued")
    s = _settings(root / "pir", redis_url, tiny_encoder)
    s_enrich = _settings(root / "enrich-host", redis_url, tiny_encoder)
    # Each job runs only when a selected test reads it (the synthetic one, enriched, is in the slow tier; the USPTO
    # one reads ../shared/data and is marked `shared`): the default tier does not pay for what it never checks.
    selected = {item.name for item in request.session.items if "queued" in getattr(item, "fixturenames", ())}
    jobs: dict[str, tuple[Path, str, bool]] = {"corrupt": (corrupt_corpus[0], "corrupt", False)}
    if "test_queued_synthetic_equals_in_process" in selected:
        jobs["synth"] = (synth_corpus, "synth", True)
    if "test_queued_uspto_sample_equals_in_process" in selected:
        try:
            shared = request.getfixturevalue("shared_data")
            jobs["uspto"] = (_uspto_subset(shared, root / "uspto", USPTO_PATENTS), "uspto", False)
        except pytest.skip.Exception:
            pass
    enriched = any(enrich for _, _, enrich in jobs.values())
    enricher = Worker(s_enrich, root / "enrich.log", "--queues", "enrich", "--pool", "solo") if enriched else None
    worker = Worker(s, root / "worker.log", "--queues", "embed")
    try:
        if enricher is not None:
            enricher.wait_ready()
        worker.wait_ready()
        submitted = {}
        for name, (path, coll, enrich) in jobs.items():
            sc = s.model_copy(update={"qdrant": s.qdrant.model_copy(update={"collection": coll})})
            submitted[name] = submit_ingest(path, sc, enrich=enrich)
        statuses = {name: _follow(job.job_id, s) for name, job in submitted.items()}
        # the same folder again, through `pir ingest --queue --wait`: every stored figure is skipped
        statuses["again"] = _cli_ingest_wait(corrupt_corpus[0], s, "corrupt")
    finally:
        rc, rc_enrich = worker.stop(), (enricher.stop() if enricher is not None else 0)
    assert rc == 0, worker.log.read_text(errors="replace")[-3000:]
    assert rc_enrich == 0, enricher.log.read_text(errors="replace")[-3000:]
    return {
        "settings": s,
        "enrich_settings": s_enrich,
        "jobs": jobs,
        "submitted": submitted,
        "status": statuses,
        "root": root,
    }


@pytest.mark.slow  # ~20 s (a real worker and a queued ingest); the default tier stays under 4 minutes
def test_queued_synthetic_equals_in_process(queued: dict[str, Any], tmp_path: Path, tiny_encoder: Path) -> None:
    path, coll, enrich = queued["jobs"]["synth"]
    status = queued["status"]["synth"]
    assert status.state == "done" and status.failed == 0 and status.done == status.total > 0
    assert status.batches_enriched == status.n_batches  # the enrich -> embed chain ran for every batch
    got = _points(queued["settings"], coll)
    assert len(got) == status.total
    want = _in_process(path, _settings(tmp_path / "pir", None, tiny_encoder), coll, enrich=enrich)
    _assert_same_points(got, want)
    assert all(p["descriptions"] for _, p in got.values())  # enrichment reached the payload
    # the descriptions travelled in the task chain: the embed worker never opened an enrich cache of its own
    assert (queued["enrich_settings"].cache_dir / "enrich.sqlite").is_file()
    assert not (queued["settings"].cache_dir / "enrich.sqlite").exists()


@pytest.mark.shared  # the `queued` fixture runs the USPTO job only when this test is selected
def test_queued_uspto_sample_equals_in_process(queued: dict[str, Any], tmp_path: Path, tiny_encoder: Path) -> None:
    if "uspto" not in queued["jobs"]:
        pytest.skip("../shared/data absent: USPTO sample not ingested")
    path, coll, enrich = queued["jobs"]["uspto"]
    status = queued["status"]["uspto"]
    assert status.state == "done" and status.failed == 0 and status.done == status.total > USPTO_PATENTS
    got = _points(queued["settings"], coll)
    want = _in_process(path, _settings(tmp_path / "pir", None, tiny_encoder), coll, enrich=enrich)
    _assert_same_points(got, want)


def test_corrupt_image_fails_alone(queued: dict[str, Any], corrupt_corpus: tuple[Path, Path]) -> None:
    _, bad = corrupt_corpus
    status = queued["status"]["corrupt"]
    assert status.failed == 1 and status.done == status.total - 1 and status.pending == 0
    failure = status.failures[0]
    assert Path(failure["path"]).name == bad.name and failure["reason"] and failure["key"]
    got = _points(queued["settings"], "corrupt")
    assert len(got) == status.total - 1
    assert bad.name not in {Path(p["image_path"]).name for _, p in got.values()}


def test_jobs_status_cli_json(queued: dict[str, Any], redis_url: str) -> None:
    from click.testing import CliRunner

    from pir.cli import main

    job = queued["submitted"]["corrupt"]
    env = {"PIR_WORKER__BROKER_URL": redis_url, "PIR_DATA_DIR": str(queued["root"] / "pir")}
    res = CliRunner().invoke(main, ["jobs", "status", job.job_id, "--json"], env=env)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["job_id"] == job.job_id and d["state"] == "done" and d["total"] == job.total
    assert d["done"] == job.total - 1 and d["failed"] == 1 and d["pending"] == 0
    assert {"key", "path", "reason"} <= set(d["failures"][0])
    res = CliRunner().invoke(main, ["jobs", "status", "no-such-job"], env=env)
    assert res.exit_code != 0 and "no job" in res.output


def test_requeue_via_cli_wait_skips_unchanged(queued: dict[str, Any]) -> None:
    """``pir ingest --queue --wait`` of the same folder again: every stored figure is skipped, the bad file fails."""
    first, status = queued["submitted"]["corrupt"], queued["status"]["again"]
    assert status.job_id != first.job_id and status.total == first.total and status.state == "done"
    assert status.done == 0 and status.skipped == first.total - 1 and status.failed == 1
    assert len(_points(queued["settings"], "corrupt")) == first.total - 1


# --------------------------------------------------------------------------------------------------- fault tests
@pytest.mark.slow  # ~20 s; the fault suite's SIGKILL tests per broker are in the slow tier too
def test_sigkill_mid_batch_then_restart_stores_each_figure_once(
    redis_url: str, tiny_encoder: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    import redis

    from pir.pipeline import discover
    from pir.workers.app import restore_period
    from pir.workers.jobs import submit_ingest
    from pir.workers.state import read_status, state_client

    s = _settings(
        tmp_path / "pir",
        redis_url,
        tiny_encoder,
        batch_size=2,
        visibility_timeout=6,
        task_time_limit=5,
        task_soft_time_limit=4,
    )
    assert restore_period(6) <= 2
    figures, _ = discover(synth_corpus, s)
    w1 = Worker(s, tmp_path / "w1.log")
    w1.wait_ready()
    job = submit_ingest(synth_corpus, s, enrich=False)
    client = state_client(s)
    raw = redis.Redis.from_url(redis_url)
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end:  # wait until some batches are done and one is being processed
        st = read_status(client, job.job_id)
        if st.batches_done >= 1 and raw.hlen("unacked") >= 1:
            break
        time.sleep(0.01)
    w1.kill()
    st = read_status(client, job.job_id)
    assert 0 < st.batches_done < job.n_batches, "the worker finished before it could be killed mid-job"
    w2 = Worker(s, tmp_path / "w2.log")
    try:
        w2.wait_ready()
        status = _follow(job.job_id, s, timeout=90)
    finally:
        assert w2.stop() == 0
    client.close()
    assert status.failed == 0 and status.done + status.skipped == job.total == len(figures)
    got = _points(s, s.qdrant.collection)
    assert len(got) == len(figures)
    assert set(got) == {f.point_id for f in figures}


def test_follow_without_worker_hints_and_message_is_portable(
    redis_url: str,
    tiny_encoder: Path,
    synth_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No worker: following prints one hint and keeps waiting; the queued message holds absolute paths only."""
    import redis

    from pir.workers.app import create_app
    from pir.workers.jobs import follow_job, submit_ingest
    from pir.workers.tasks import EMBED_TASK

    monkeypatch.chdir(tiny_encoder.parent)
    s = _settings(tmp_path / "pir", redis_url, Path(tiny_encoder.name))  # relative encoder dir, as `--encoder runs/x`
    raw = redis.Redis.from_url(redis_url)
    for key in raw.scan_iter(match="pir:worker:*"):  # a worker SIGKILLed by an earlier test leaves its heartbeat (TTL)
        raw.delete(key)
    job = submit_ingest(os.path.relpath(synth_corpus), s)
    try:
        with caplog.at_level(logging.WARNING, logger="pir.workers.jobs"):
            t0 = time.monotonic()
            st = follow_job(job.job_id, s, poll_s=0.1, timeout_s=1.5, show_progress=False, hint_after_s=0.5)
        assert 1.4 < time.monotonic() - t0 < 10  # kept waiting after the hint, until the timeout
        assert st.state == "queued" and st.pending == st.total == job.total and not st.finished
        hints = [r.getMessage() for r in caplog.records if "no progress for 0.5 s" in r.getMessage()]
        assert len(hints) == 1 and "no worker is running" in hints[0] and "`pir worker`" in hints[0]
        follow_job(job.job_id, s, poll_s=0.1, timeout_s=0.6, hint_after_s=0.2)  # with the bar: on stderr
        captured = capsys.readouterr()
        assert "no progress for 0.2 s and no worker is running" in captured.err and "worker" not in captured.out
        encoder = str(tiny_encoder.resolve())
        assert st.encoder == encoder and Path(st.path) == synth_corpus.resolve()
        bodies = [json.loads(base64.b64decode(json.loads(m)["body"])) for m in raw.lrange("enrich", 0, -1)]
        mine = [b for b in bodies if b[0][0] == job.job_id]
        assert len(mine) == job.n_batches
        for args, _, embed in mine:
            assert args[3]["encoder"] == encoder
            assert all(Path(f["image_path"]).is_absolute() and Path(f["image_path"]).is_file() for f in args[2])
            (nxt,) = embed["chain"]  # embed gets the enrich result (descriptions) prepended: not immutable
            assert nxt["task"] == EMBED_TASK and not nxt["immutable"] and nxt["args"] == args
    finally:
        app = create_app(s)
        app.control.purge()  # no worker of a later test may pick these up
        app.close()


def test_redis_unreachable_clear_error_nothing_written(
    redis_url: str, synth_corpus: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    import redis
    from click.testing import CliRunner

    from pir.cli import main

    before = redis.Redis.from_url(redis_url).keys("pir:job:*")
    data_dir = tmp_path / "pir"
    env = {
        "PIR_WORKER__BROKER_URL": "redis://127.0.0.1:1/0",
        "PIR_DATA_DIR": str(data_dir),
        "PIR_ENCODER__NAME": str(tiny_encoder),
    }
    t0 = time.monotonic()
    res = CliRunner().invoke(main, ["ingest", str(synth_corpus), "--queue"], env=env)
    assert res.exit_code != 0
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in res.output and "Nothing was queued" in res.output
    assert time.monotonic() - t0 < 30
    assert not data_dir.exists()
    assert redis.Redis.from_url(redis_url).keys("pir:job:*") == before


def test_no_broker_means_in_process(settings: Any, synth_corpus: Path) -> None:
    from pir.core.errors import JobError
    from pir.workers.jobs import submit_ingest

    with pytest.raises(JobError, match="PIR_WORKER__BROKER_URL"):
        submit_ingest(synth_corpus, settings)


# ------------------------------------------------------------------------------------------- configuration checks
def test_app_reliability_settings(redis_url: str, tiny_encoder: Path, tmp_path: Path) -> None:
    from pir.workers.app import WorkerConfigError, create_app
    from pir.workers.tasks import EMBED_TASK, ENRICH_TASK
    from pir.workers.worker import worker_argv

    s = _settings(tmp_path, redis_url, tiny_encoder)
    app = create_app(s)
    c = app.conf
    assert c.task_serializer == "json" and c.accept_content == ["json"] and c.result_accept_content == ["json"]
    assert c.task_acks_late and c.task_reject_on_worker_lost and c.worker_prefetch_multiplier == 1
    assert c.broker_transport_options["visibility_timeout"] > c.task_time_limit > c.task_soft_time_limit
    assert c.broker_connection_retry_on_startup
    embed, enrich = app.tasks[EMBED_TASK], app.tasks[ENRICH_TASK]
    assert enrich.acks_late and enrich.max_retries == s.worker.max_retries
    assert c.task_routes[EMBED_TASK]["queue"] == "embed" and c.task_routes[ENRICH_TASK]["queue"] == "enrich"
    assert embed.retry_backoff and embed.retry_jitter and ConnectionError in embed.autoretry_for
    assert embed.max_retries == s.worker.max_retries
    app.close()
    with pytest.raises(WorkerConfigError, match="one process only"):
        worker_argv(s, queues=["embed"], pool="prefork", concurrency=2)
    assert "--pool=solo" in worker_argv(s, queues=["enrich", "embed"])
    assert "--pool=prefork" in worker_argv(s, queues=["enrich"], concurrency=2)
    w = s.worker
    bad = s.model_copy(
        update={
            "worker": w.model_copy(update={"visibility_timeout": 60, "task_time_limit": 60, "task_soft_time_limit": 50})
        }
    )
    with pytest.raises(WorkerConfigError, match="visibility_timeout"):
        create_app(bad)
    amqp_only = s.model_copy(update={"worker": w.model_copy(update={"broker_url": "amqp://u:SECRET@127.0.0.1:5672//"})})
    with pytest.raises(WorkerConfigError, match="RESULT_BACKEND") as ei:
        create_app(amqp_only)
    assert "SECRET" not in str(ei.value)


def _compose_cli() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            r = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return cmd
    return None


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    cmd = _compose_cli()
    if cmd is None:
        pytest.skip("no docker compose CLI (plugin or docker-compose) installed")
    r = subprocess.run(
        [*cmd, "-f", str(REPO / "docker-compose.yml"), "--profile", "gpu", "--profile", "cli", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr


def test_docker_compose_file_wiring() -> None:
    """Structure checks that need no docker CLI: services, health checks, persistence, GPU profile, PIR_ wiring."""
    import yaml

    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    svc = doc["services"]
    assert {"qdrant", "redis", "rabbitmq", "worker", "worker-gpu"} <= set(svc)
    assert svc["rabbitmq"]["profiles"] == ["rabbitmq"] and "healthcheck" in svc["rabbitmq"]
    assert svc["qdrant"]["image"].startswith("qdrant/qdrant:v") and "healthcheck" in svc["qdrant"]
    assert any(v.endswith(":/qdrant/storage") for v in svc["qdrant"]["volumes"])
    assert "--appendonly" in svc["redis"]["command"] and "healthcheck" in svc["redis"]
    assert svc["worker-gpu"]["profiles"] == ["gpu"]
    dev = svc["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["driver"] == "nvidia" and "gpu" in dev["capabilities"]
    for name in ("worker", "worker-gpu"):
        env = svc[name]["environment"]
        assert env["PIR_QDRANT__URL"] == "http://qdrant:6333" and "redis://redis:6379" in env["PIR_WORKER__BROKER_URL"]
        assert svc[name]["depends_on"]["qdrant"]["condition"] == "service_healthy"
    from pir.core.config import Settings

    fields = {f"PIR_QDRANT__{k.upper()}" for k in Settings.model_fields["qdrant"].annotation.model_fields}
    fields |= {f"PIR_WORKER__{k.upper()}" for k in Settings.model_fields["worker"].annotation.model_fields}
    fields |= {f"PIR_ENCODER__{k.upper()}" for k in Settings.model_fields["encoder"].annotation.model_fields}
    fields |= {f"PIR_ENRICH__{k.upper()}" for k in Settings.model_fields["enrich"].annotation.model_fields}
    fields |= {"PIR_DATA_DIR"}
    used = {k for k in svc["worker"]["environment"] if k.startswith("PIR_")}
    assert used <= fields, f"unknown PIR_ settings in docker-compose.yml: {sorted(used - fields)}"
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") >= 2 and "\nUSER " in dockerfile


# ------------------------------------------------------------------------------------- testcontainers (Docker only)
@pytest.fixture(scope="module")
def container_redis_url() -> Iterator[str]:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as e:  # noqa: BLE001  (docker.errors.DockerException, requests errors)
        pytest.skip(f"no Docker daemon ({type(e).__name__}); testcontainers Redis variant skipped")
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7.4-alpine") as r:
        yield f"redis://{r.get_container_host_ip()}:{r.get_exposed_port(6379)}/0"


@pytest.mark.docker
def test_queued_ingest_on_container_redis(
    container_redis_url: str, tiny_encoder: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    from pir.workers.jobs import submit_ingest

    s = _settings(tmp_path / "pir", container_redis_url, tiny_encoder)
    w = Worker(s, tmp_path / "worker.log")
    try:
        w.wait_ready()
        job = submit_ingest(synth_corpus, s, enrich=False)
        status = _follow(job.job_id, s)
    finally:
        assert w.stop() == 0
    assert status.done == job.total and len(_points(s, s.qdrant.collection)) == job.total
