"""Fault and hostile-input suite (issue 12): nothing lost, nothing stuck, nothing read that should not be.

Bounded in time, 127.0.0.1 only. Redis: databases 8-11 of the local Redis (claimed with a marker key, flushed after),
plus a private ``redis-server`` on a free port that the tests kill and restart. RabbitMQ: vhost ``pir-faults``
(created with ``rabbitmqctl`` when it can be), else the default vhost. Disk-full and read-only cases mount a small
tmpfs (root only; skipped with the reason otherwise) and always unmount it. Every process the tests start is
stopped by its pid.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.workerproc import WorkerProcess, worker_env

REPO = Path(__file__).resolve().parents[1]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
AMQP_PORT = 5672
VHOST = "pir-faults"
N_FIGURES = 16  # 8 batches of 2
SECRET = "S3cr3t-" + uuid.uuid4().hex[:8]


# ----------------------------------------------------------------------------------------------------- helpers
def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _claim_db(dbs: tuple[int, ...] = (8, 9, 10, 11)) -> tuple[Any, int, str]:
    import redis

    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        pytest.skip(f"no Redis at {REDIS_HOST}:{REDIS_PORT} ({e})")
    token = uuid.uuid4().hex
    for db in dbs:
        c = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if c.set("pir-test:claim", token, nx=True, ex=900):
            c.flushdb()
            c.set("pir-test:claim", token, ex=900)
            return c, db, token
    pytest.skip(f"Redis databases {dbs} are all claimed by other test runs")


@pytest.fixture()
def redis_db() -> Iterator[str]:
    """``redis://127.0.0.1:6379/<8..11>``, flushed before and after."""
    c, db, token = _claim_db()
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    if c.get("pir-test:claim") == token.encode():
        c.flushdb()


@pytest.fixture()
def amqp_url() -> Iterator[str]:
    """``amqp://guest:guest@127.0.0.1:5672/<vhost>``; the pir queues are purged before and after."""
    if not _port_open(AMQP_PORT):
        pytest.skip(f"no RabbitMQ at 127.0.0.1:{AMQP_PORT}")
    vhost = "/"
    if shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "add_vhost", VHOST], capture_output=True, timeout=60)
        r = subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"], capture_output=True, timeout=60
        )
        if r.returncode == 0:
            vhost = VHOST
    url = f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/{'' if vhost == '/' else vhost}"
    _purge(url)
    yield url
    _purge(url)


def _purge(url: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        ch = conn.channel()
        for q in ("enrich", "embed"):
            try:
                ch.queue_purge(q)
            except Exception:  # noqa: BLE001, S112  (queue not declared yet)
                ch = conn.channel()


class RedisServer:
    """A private ``redis-server`` on a free port (append-only, fsync always) that a test may kill and restart."""

    def __init__(self, workdir: Path) -> None:
        if not shutil.which("redis-server"):
            pytest.skip("redis-server not installed")
        self.port = _free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t_end = time.monotonic() + 10
        while not _port_open(self.port):
            assert time.monotonic() < t_end, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis")
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")


def _draw(path: Path, seed: int, size: int = 96) -> Path:
    """A small line drawing (random rectangles and lines on white), different per seed."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    for _ in range(6):
        (x0, x1), (y0, y1) = sorted(rng.integers(4, size - 4, 2)), sorted(rng.integers(4, size - 4, 2))
        d.rectangle((int(x0), int(y0), int(x1), int(y1)), outline=0, width=2)
        d.line(tuple(int(v) for v in rng.integers(0, size, 4)), fill=0, width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _flat_corpus(root: Path, n: int, first: int = 0, size: int = 96) -> Path:
    """``n`` drawings named ``USD09<i>_1.png`` (patent USD09...., figure 1)."""
    for i in range(first, first + n):
        _draw(root / f"USD09{i:05d}_1.png", seed=i, size=size)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # large sheets: decoding and trimming them makes a batch last long enough (~0.1 s) to be killed in the middle
    return _flat_corpus(tmp_path_factory.mktemp("corpus") / "drawings", N_FIGURES, size=1600)


def _settings(data_dir: Path, encoder: Path, broker: str | None = None, backend: str | None = None, **kw: Any) -> Any:
    from pir.core.config import get_settings

    worker = {"broker_url": broker, "result_backend": backend, "batch_size": 2, "heartbeat_s": 0.5}
    worker.update(kw.pop("worker", {}))
    return get_settings(
        data_dir=data_dir,
        qdrant={"url": None},
        encoder={"name": str(encoder), "device": "cpu", "num_threads": 1},
        worker=worker,
        **kw,
    )


_WORKER = "from pir.core.config import get_settings; from pir.workers.worker import run_worker; import sys; "
_WORKER += "run_worker(get_settings(), queues=sys.argv[1].split(','), loglevel='INFO')"


class Worker(WorkerProcess):
    """A pir worker subprocess on ``queues`` (see :class:`tests.workerproc.WorkerProcess`), with batch counts."""

    def __init__(self, s: Any, log: Path, queues: str = "enrich,embed") -> None:
        super().__init__([sys.executable, "-c", _WORKER, queues], worker_env(s), log)

    def counts(self) -> tuple[int, int]:
        """(batches received, batches succeeded) according to the worker's log."""
        t = self.text()
        received, ok = t.count("] received"), t.count("] succeeded in")
        return received - ok, ok


def _points(s: Any) -> dict[str, dict[str, Any]]:
    from pir.search import open_store

    with open_store(s) as store:
        return {p.id: p.payload for p in store.scroll()}


def _record(name: str, **figures: Any) -> None:
    """Append measured figures to tests' fault log (read into the issue's closing note)."""
    out = Path(os.environ.get("PIR_FAULTS_LOG", "/tmp/pir-faults-measured.jsonl"))
    try:
        with open(out, "a") as f:
            f.write(json.dumps({"test": name, "at": time.strftime("%H:%M:%S"), **figures}) + "\n")
    except OSError:
        pass


# ------------------------------------------------------------------------------- 1. prompt redelivery (SIGKILL)
def _kill_mid_batch_then_resume(s: Any, corpus: Path, tmp_path: Path, bound_s: float, name: str) -> None:
    from pir.pipeline import discover
    from pir.workers.jobs import follow_job, redelivery_bound_s, submit_ingest
    from pir.workers.state import read_status, state_client

    assert redelivery_bound_s(s) <= bound_s
    figures, _ = discover(corpus, s)
    w1 = Worker(s, tmp_path / "w1.log")
    w1.wait_ready()
    job = submit_ingest(corpus, s, enrich=False)
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end:  # one batch done and the next one taken: kill the worker in the middle of it
        in_flight, ok = w1.counts()
        if ok >= 1 and in_flight >= 1:
            break
        time.sleep(0.002)
    w1.kill()
    t_kill = time.monotonic()
    in_flight, ok = w1.counts()
    recorded = read_status(state_client(s), job.job_id).batches_done
    assert in_flight >= 1 and ok < job.n_batches, f"no batch in flight when killed:\n{w1.text()[-2000:]}"
    # almost always the killed batch was not recorded yet (it must be redelivered); rarely the kill falls between
    # recording and acknowledging it (it is redelivered later and changes nothing)
    mid_batch = recorded == ok
    w2 = Worker(s, tmp_path / "w2.log")
    try:
        t_ready = w2.wait_ready()
        status = follow_job(job.job_id, s, poll_s=0.1, timeout_s=bound_s + 60, show_progress=False)
        t_done = time.monotonic()
    finally:
        assert w2.stop() == 0, w2.text()[-3000:]
    assert status.finished and status.failed == 0, status.to_dict()
    assert status.done + status.skipped == job.total == len(figures)
    got = _points(s)
    assert set(got) == {f.point_id for f in figures}  # each figure stored once (deterministic ids)
    unique_figures = len({(p["patent_id"], p["figure_id"]) for p in got.values()})  # measured on the payloads
    assert unique_figures == len(got) == job.total
    assert t_done - t_ready <= bound_s, f"redelivered after {t_done - t_ready:.1f} s, bound {bound_s} s"
    _record(
        name,
        broker=s.worker.broker_kind,
        kill_to_done_s=round(t_done - t_kill, 2),
        new_worker_ready_to_done_s=round(t_done - t_ready, 2),
        bound_s=bound_s,
        batches=job.n_batches,
        batches_done_by_killed_worker=recorded,
        killed_before_recording=mid_batch,
        stored=len(got),
        unique_figures=unique_figures,
        total=job.total,
    )


@pytest.mark.slow  # ~40 s: two worker start-ups on 2 busy cores
def test_sigkill_mid_batch_rabbitmq(
    amqp_url: str, redis_db: str, tiny_encoder: Path, corpus: Path, tmp_path: Path
) -> None:
    """RabbitMQ redelivers a killed worker's batch as soon as its connection closes."""
    s = _settings(tmp_path / "pir", tiny_encoder, amqp_url, redis_db)
    assert s.worker.broker_kind == "amqp"
    _kill_mid_batch_then_resume(s, corpus, tmp_path, bound_s=60, name="sigkill_rabbitmq")


@pytest.mark.slow  # ~40 s: two worker start-ups on 2 busy cores
def test_sigkill_mid_batch_redis(redis_db: str, tiny_encoder: Path, corpus: Path, tmp_path: Path) -> None:
    """Redis: the visibility timeout is derived from the batch time limit (3 s here: 13 s + a 3 s sweep)."""
    s = _settings(tmp_path / "pir", tiny_encoder, redis_db, worker={"task_time_limit": 3, "task_soft_time_limit": 2})
    assert s.worker.visibility_timeout is None and s.worker.redelivery_timeout == 13
    _kill_mid_batch_then_resume(s, corpus, tmp_path, bound_s=30, name="sigkill_redis")


def test_redis_visibility_timeout_derived_from_time_limit() -> None:
    """Minutes, not hours: the default batch limit gives an 11-minute redelivery on Redis."""
    from pir.core.config import get_settings
    from pir.workers.app import restore_period, transport_options
    from pir.workers.jobs import redelivery_bound_s

    s = get_settings(worker={"broker_url": "redis://127.0.0.1:6379/8"})
    w = s.worker
    opts = transport_options(w)
    assert w.task_time_limit < opts["visibility_timeout"] <= 15 * 60
    assert restore_period(opts["visibility_timeout"]) <= 10
    assert redelivery_bound_s(s) <= 15 * 60
    amqp = get_settings(worker={"broker_url": "amqp://guest:guest@127.0.0.1:5672//", "result_backend": "redis://x/8"})
    assert transport_options(amqp.worker) == {} and redelivery_bound_s(amqp) <= 60


# ------------------------------------------------------------------------------------- --wait tells the truth
@pytest.mark.slow  # ~7 s: a real worker process started and stopped; the default tier stays under 4 minutes
def test_wait_says_no_worker_vs_workers_alive(
    redis_db: str, tiny_encoder: Path, corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pir.workers.app import create_app
    from pir.workers.jobs import follow_job, submit_ingest

    s = _settings(tmp_path / "pir", tiny_encoder, redis_db)
    job = submit_ingest(corpus, s, enrich=False)  # embed queue only
    try:
        with caplog.at_level(logging.WARNING, logger="pir.workers.jobs"):
            follow_job(job.job_id, s, poll_s=0.1, timeout_s=1.0, show_progress=False, hint_after_s=0.3)
        (hint,) = [r.getMessage() for r in caplog.records if "no progress" in r.getMessage()]
        assert "no worker is running" in hint and "`pir worker`" in hint
        caplog.clear()
        enricher = Worker(s, tmp_path / "enrich.log", queues="enrich")  # alive, but never takes an embed batch
        try:
            enricher.wait_ready()
            time.sleep(1.0)  # a heartbeat or two
            with caplog.at_level(logging.WARNING, logger="pir.workers.jobs"):
                st = follow_job(job.job_id, s, poll_s=0.1, timeout_s=1.0, show_progress=False, hint_after_s=0.3)
        finally:
            assert enricher.stop() == 0
        (hint,) = [r.getMessage() for r in caplog.records if "no progress" in r.getMessage()]
        assert "1 worker(s) are alive" in hint and "no worker" not in hint and st.pending == job.total
    finally:
        app = create_app(s)
        app.control.purge()
        app.close()


# -------------------------------------------------------------------- 5. Redis lost during --wait: one line
def test_redis_lost_while_following_is_one_line(
    own_redis: RedisServer, tiny_encoder: Path, corpus: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from pir.cli import main
    from pir.core.errors import JobError
    from pir.workers.jobs import follow_job, submit_ingest

    s = _settings(tmp_path / "pir", tiny_encoder, own_redis.url)
    job = submit_ingest(corpus, s, enrich=False)
    threading.Timer(0.8, own_redis.kill).start()
    t0 = time.monotonic()
    with pytest.raises(JobError) as ei:
        follow_job(job.job_id, s, poll_s=0.1, timeout_s=20, show_progress=False, reconnect_s=1.0)
    assert time.monotonic() - t0 < 15
    msg = str(ei.value)
    # the truth: it waited for Redis, and names the manifest and the one command that resubmits what is missing
    assert "\n" not in msg and f"pir jobs resume {job.job_id}" in msg and "did not come back within 1 s" in msg
    assert "goes on" not in msg and "jobs.sqlite" in msg
    assert ei.value.__cause__ is None and ei.value.__suppress_context__
    # the same through the CLI: `pir ingest --queue --wait` prints one Error line, no traceback
    own_redis.start()
    env = {k: v for k, v in worker_env(s).items() if k.startswith("PIR_")}
    env["PIR_WORKER__RECONNECT_S"] = "1"
    threading.Timer(2.0, own_redis.kill).start()
    res = CliRunner().invoke(main, ["ingest", str(corpus), "--queue", "--wait", "--no-enrich"], env=env)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "Error: lost Redis" in res.output and "pir jobs resume" in res.output


@pytest.mark.slow
def test_redis_restart_mid_job_nothing_lost(
    own_redis: RedisServer, tiny_encoder: Path, corpus: Path, tmp_path: Path
) -> None:
    """Redis (append-only) killed and restarted mid-job: the worker reconnects, the job completes exactly."""
    from pir.workers.jobs import follow_job, submit_ingest

    s = _settings(
        tmp_path / "pir", tiny_encoder, own_redis.url, worker={"task_time_limit": 3, "task_soft_time_limit": 2}
    )
    w = Worker(s, tmp_path / "w.log")
    try:
        w.wait_ready()
        job = submit_ingest(corpus, s, enrich=False)
        t_end = time.monotonic() + 60
        while w.counts()[1] < 1 and time.monotonic() < t_end:
            time.sleep(0.005)
        own_redis.kill()
        t_kill = time.monotonic()
        time.sleep(2.0)
        own_redis.start()
        status = follow_job(job.job_id, s, poll_s=0.2, timeout_s=90, show_progress=False)
        t_done = time.monotonic()
    finally:
        assert w.stop() == 0, w.text()[-3000:]
    assert status.finished and status.failed == 0 and status.done + status.skipped == job.total, status.to_dict()
    got = _points(s)
    unique_figures = len({(p["patent_id"], p["figure_id"]) for p in got.values()})  # measured on the payloads
    assert len(got) == N_FIGURES == unique_figures
    _record("redis_restart", broker="redis", restart_to_done_s=round(t_done - t_kill, 2), stored=len(got),
            unique_figures=unique_figures, total=job.total, done=status.done, skipped=status.skipped)  # fmt: skip
    # exact counters: a batch run again after the restart is counted once, as new (issue 18: it was skipped=2)
    assert (status.done, status.skipped) == (N_FIGURES, 0), status.to_dict()


# ----------------------------------------------------------------------------- 2. disk full, read-only data dir
@contextmanager
def _tmpfs(path: Path, size: str, *, ro: bool = False) -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (disk-full / read-only data dir cases)")
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if ro else ""), "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


_INGEST = textwrap.dedent(
    """
    import json, sys
    from pir.core.config import get_settings
    from pir.pipeline import ingest
    data, corpus, enc, free = sys.argv[1:5]
    s = get_settings(data_dir=data, qdrant={"url": None}, encoder={"name": enc, "device": "cpu"},
                     worker={"broker_url": None, "batch_size": 4}, min_free_mb=float(free))
    try:
        r = ingest(corpus, s, enrich=False, show_progress=False)
        print(json.dumps({"ok": True, "ingested": r.ingested, "skipped": r.skipped, "count": r.store_count}))
    except Exception as e:
        print(json.dumps({"ok": False, "type": type(e).__name__, "msg": str(e)}))
    """
)


def _ingest_subprocess(data: Path, corpus: Path, encoder: Path, min_free_mb: float) -> dict[str, Any]:
    """In-process ingest in a child process (a SIGBUS there must not kill the test run)."""
    r = subprocess.run(
        [sys.executable, "-c", _INGEST, str(data), str(corpus), str(encoder), str(min_free_mb)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert r.returncode == 0, f"ingest died with exit {r.returncode} (SIGBUS = -7/135):\n{r.stderr[-2000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # ~7 s: a real ingest onto a full tmpfs; the default tier stays under 4 minutes
def test_disk_full_tmpfs_stops_with_one_line(tmp_path: Path, tiny_encoder: Path, corpus: Path) -> None:
    """A 2 MB data dir: one line naming the data dir and the space needed; never SIGBUS."""
    with _tmpfs(tmp_path / "small", "2m") as mnt:
        out = _ingest_subprocess(mnt / "pir", corpus, tiny_encoder, 256)
    assert out["ok"] is False and out["type"] == "DiskSpaceError", out
    assert str(mnt / "pir") in out["msg"] and "needs" in out["msg"] and "free" in out["msg"] and "\n" not in out["msg"]


@pytest.mark.slow
def test_disk_full_stop_then_resume_nothing_lost(tmp_path: Path, tiny_encoder: Path) -> None:
    """Fill the disk between two ingests: the second stops before writing; after freeing space the store opens
    again with the first ingest intact, and the second resumes to the exact count."""
    first = _flat_corpus(tmp_path / "a", 6)
    second = _flat_corpus(tmp_path / "b", 6, first=100)
    margin = 128  # MB; a new appendable segment of the embedded store takes about 100 MB on tmpfs
    with _tmpfs(tmp_path / "disk", "400m") as mnt:
        data = mnt / "pir"
        out = _ingest_subprocess(data, first, tiny_encoder, margin)
        assert out == {"ok": True, "ingested": 6, "skipped": 0, "count": 6}, out
        ballast = mnt / "ballast"
        with open(ballast, "wb") as f:  # leave about 8 MB
            os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(mnt).free - (8 << 20))
        out = _ingest_subprocess(data, second, tiny_encoder, margin)
        assert out["ok"] is False and out["type"] == "DiskSpaceError" and str(data) in out["msg"], out
        ballast.unlink()
        out = _ingest_subprocess(data, second, tiny_encoder, margin)
        assert out == {"ok": True, "ingested": 6, "skipped": 0, "count": 12}, out
        out = _ingest_subprocess(data, first, tiny_encoder, margin)  # nothing lost, nothing duplicated
        assert out == {"ok": True, "ingested": 0, "skipped": 6, "count": 12}, out
        from pir.core.config import get_settings

        got = _points(get_settings(data_dir=data, qdrant={"url": None}, worker={"broker_url": None}))
        unique_figures = len({(p["patent_id"], p["figure_id"]) for p in got.values()})  # measured in the store
        assert len(got) == unique_figures == 12
    _record("disk_full_resume", stored=len(got), unique_figures=unique_figures, total=12)


@pytest.mark.slow
def test_store_open_on_full_disk_is_one_line(tmp_path: Path, tiny_encoder: Path) -> None:
    """`pir info` / `pir search` over an existing store with ~1 MB free: they work (from a private copy of the
    store, issue 18), never SIGBUS; an ingest is one line."""
    with _tmpfs(tmp_path / "disk", "400m") as mnt:
        data = mnt / "pir"
        out = _ingest_subprocess(data, _flat_corpus(tmp_path / "a", 4), tiny_encoder, 128)
        assert out["ok"] and out["count"] == 4, out
        with open(mnt / "ballast", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(mnt).free - (1 << 20))
        outputs = []
        for cmd in (["info", "--json"], ["search", "--text", "chair", "--json"]):
            r = subprocess.run(
                [sys.executable, "-c", "from pir.cli import main; main()", "--data-dir", str(data), *cmd],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=REPO,
            )
            assert r.returncode == 0, f"{cmd}: exit {r.returncode} (SIGBUS = -7)\n{r.stderr[-1500:]}"
            assert "Traceback" not in r.stderr and "private copy" in r.stderr, r.stderr
            outputs.append(json.loads(r.stdout))
        assert outputs[0]["count"] == 4 and outputs[1], outputs
        out = _ingest_subprocess(data, tmp_path / "a", tiny_encoder, 128)  # a writer stops with one line
        assert out["ok"] is False and out["type"] == "DiskSpaceError" and str(data) in out["msg"], out
        (mnt / "ballast").unlink()
        out = _ingest_subprocess(data, tmp_path / "a", tiny_encoder, 128)  # opens again, nothing lost
        assert out == {"ok": True, "ingested": 0, "skipped": 4, "count": 4}, out


def test_read_only_data_dir_is_one_line(tmp_path: Path, tiny_encoder: Path, corpus: Path) -> None:
    from click.testing import CliRunner

    from pir.cli import main
    from pir.core.errors import DataDirError
    from pir.pipeline import ingest

    with _tmpfs(tmp_path / "ro", "1m", ro=True) as mnt:
        s = _settings(mnt / "pir", tiny_encoder)
        with pytest.raises(DataDirError, match="read-only"):
            ingest(corpus, s, enrich=False, show_progress=False)
        env = {"PIR_DATA_DIR": str(mnt / "pir"), "PIR_ENCODER__NAME": str(tiny_encoder), "PIR_WORKER__BROKER_URL": ""}
        res = CliRunner().invoke(main, ["ingest", str(corpus), "--no-enrich"], env=env)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "read-only" in lines[0] and str(mnt / "pir") in lines[0]


# ---------------------------------------------------------------------------------------------- 3. confinement
def _opened_paths() -> tuple[list[str], Any]:
    """Record every path Python opens (audit hook; enabled only inside the returned switch)."""
    seen: list[str] = []
    on = {"v": False}

    def hook(event: str, args: tuple) -> None:
        if on["v"] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            seen.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)
    return seen, on


_AUDIT = _opened_paths()


@pytest.fixture()
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A folder whose sidecar and links point outside it, and the outside folder."""
    outside = tmp_path / "outside"
    _draw(outside / "x.png", 1)
    _draw(outside / "dir" / "USD0900077_1.png", 2)
    root = tmp_path / "corpus"
    _draw(root / "ok.png", 3)
    (root / "sub").mkdir()
    _draw(root / "sub" / "inner.png", 4)
    rows = [
        {"file": "ok.png", "patent_id": "D900001"},
        {"file": "../outside/x.png", "patent_id": "D900002"},
        {"file": str(outside / "x.png"), "patent_id": "D900003"},
        {"file": "link.png", "patent_id": "D900004"},
        {"file": "linkdir/USD0900077_1.png", "patent_id": "D900005"},
        {"file": "sub/../sub/inner.png", "patent_id": "D900006"},
    ]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "link.png").symlink_to(outside / "x.png")
    (root / "linkdir").symlink_to(outside / "dir", target_is_directory=True)
    return root, outside


def test_confinement_sidecar_paths_and_symlinks(hostile: tuple[Path, Path]) -> None:
    from pir.ingest.readers import read_figures
    from pir.ingest.schema import ReadIssue

    root, outside = hostile
    seen, on = _AUDIT
    issues: list[ReadIssue] = []
    seen.clear()
    on["v"] = True
    try:
        figs = list(read_figures(root, issues=issues))
    finally:
        on["v"] = False
    assert sorted(f.patent_id for f in figs) == ["USD0900001", "USD0900006"]
    refused = {i.path: i.reason for i in issues}
    assert len(refused) == 4 and all("outside the ingest folder" in r for r in refused.values()), refused
    assert any("link.png" in p for p in refused) and any("linkdir" in p for p in refused)
    assert not [p for p in seen if os.path.realpath(p).startswith(str(outside))], seen  # never opened
    allowed = list(read_figures(root, follow_outside=True))
    assert len(allowed) == 6


def test_confinement_symlinked_sidecar_and_folders(tmp_path: Path) -> None:
    from pir.ingest.readers import read_figures
    from pir.ingest.schema import ReadIssue

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jsonl"
    secret.write_text(json.dumps({"file": "/etc/hostname"}) + "\n")
    _draw(outside / "cls" / "a.png", 5)
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "metadata.jsonl").symlink_to(secret)
    issues: list[ReadIssue] = []
    assert list(read_figures(root, issues=issues)) == []
    assert len(issues) == 1 and "metadata.jsonl" in issues[0].path and "refused" in issues[0].reason
    # class-per-folder layout whose class folder is a symlink to elsewhere
    root2 = tmp_path / "classes"
    _draw(root2 / "chair" / "b.png", 6)
    (root2 / "lamp").symlink_to(outside / "cls", target_is_directory=True)
    issues = []
    figs = list(read_figures(root2, issues=issues))
    assert [f.image_path.name for f in figs] == ["b.png"]
    assert len(issues) == 1 and issues[0].path.endswith("lamp")  # the linked folder, not the files in it


def test_confinement_uspto_xml_symlink_not_opened(tmp_path: Path) -> None:
    """A grant folder whose XML is a symlink to a file outside: never opened, reported."""
    from pir.ingest.readers import read_figures
    from pir.ingest.schema import ReadIssue

    target = tmp_path / "outside" / "passwd.xml"
    target.parent.mkdir()
    target.write_text("<us-patent-grant>secret</us-patent-grant>")
    root = tmp_path / "grants" / "USD0900100-20200101"
    root.mkdir(parents=True)
    (root / "USD0900100-20200101.XML").symlink_to(target)
    _draw(root / "USD0900100-20200101-D00001.TIF", 7)
    seen, on = _AUDIT
    issues: list[ReadIssue] = []
    seen.clear()
    on["v"] = True
    try:
        figs = list(read_figures(tmp_path / "grants", "uspto_raw", issues=issues))
    finally:
        on["v"] = False
    assert figs == [] and any("refused" in i.reason for i in issues)
    assert str(target) not in {os.path.realpath(p) for p in seen}


# ------------------------------------------------------------------------------------------------ 4. collisions
def test_collision_with_stored_point_is_reported_not_overwritten(tmp_path: Path, tiny_encoder: Path) -> None:
    from pir.pipeline import ingest

    s = _settings(tmp_path / "pir", tiny_encoder)
    a = tmp_path / "a"
    _draw(a / "USD0901234_1.png", 10)
    _draw(a / "USD0901235_1.png", 11)
    b = tmp_path / "b"
    _draw(b / "USD0901234_1.png", 12)  # another drawing claiming the same patent/figure
    first = ingest(a, s, enrich=False, show_progress=False)
    assert first.ingested == 2
    second = ingest(b, s, enrich=False, show_progress=False)
    assert second.ingested == 0 and len(second.failed) == 1
    reason = second.failed[0].reason
    assert (
        "conflict" in reason
        and str(a / "USD0901234_1.png") in reason
        and second.failed[0].path.endswith("b/USD0901234_1.png")
    )
    got = _points(s)
    assert len(got) == second.store_count == 2
    assert {p["image_path"] for p in got.values()} == {str(a / "USD0901234_1.png"), str(a / "USD0901235_1.png")}


def test_collision_in_one_run_uspto(shared_data: Path, tmp_path: Path, tiny_encoder: Path) -> None:
    """A grant folder whose XML claims another grant's number: a conflict naming both files; counts match the store."""
    import re

    from pir.pipeline import ingest

    src = shared_data / "impact_uspto_design_raw" / "sample_data"
    folders = sorted(p for p in src.iterdir() if p.is_dir())[:2]
    root = tmp_path / "grants"
    for f in folders:
        shutil.copytree(f, root / f.name)
    xml_a = next((root / folders[0].name).glob("*.[xX][mM][lL]"))
    xml_b = next((root / folders[1].name).glob("*.[xX][mM][lL]"))
    num_a = re.search(r"<publication-reference>.*?<doc-number>(.*?)</doc-number>", xml_a.read_text(), re.S).group(1)
    text_b = xml_b.read_text()
    m = re.search(r"(<publication-reference>.*?<doc-number>)(.*?)(</doc-number>)", text_b, re.S)
    xml_b.write_text(text_b[: m.start(2)] + num_a + text_b[m.end(2) :])
    s = _settings(tmp_path / "pir", tiny_encoder)
    summary = ingest(root, s, enrich=False, show_progress=False)
    conflicts = [i for i in summary.read_issues if "conflict" in i.reason]
    assert conflicts, summary.read_issues
    assert all(folders[0].name in c.reason and folders[1].name in c.path for c in conflicts)
    assert summary.ingested == summary.store_count == len(_points(s))
    _record("collision_uspto", discovered=summary.discovered, conflicts=len(conflicts), stored=summary.store_count)


# ------------------------------------------------------------------------------------------------ 6. redaction
def test_info_json_and_public_settings_hide_broker_password(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pir.cli import main
    from pir.core.config import get_settings

    url = f"redis://:{SECRET}@127.0.0.1:6379/8"
    s = get_settings(worker={"broker_url": url}, enrich={"openai_base_url": f"http://u:{SECRET}@127.0.0.1:9/v1"})
    assert SECRET not in json.dumps(s.public_dict()) and ":***@127.0.0.1" in json.dumps(s.public_dict())
    env = {"PIR_WORKER__BROKER_URL": url, "PIR_DATA_DIR": str(tmp_path / "pir")}
    res = CliRunner().invoke(main, ["info", "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output and "redis://:***@127.0.0.1:6379/8" in res.output


def test_llm_base_url_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    from pir.enrich.base import EnrichError
    from pir.enrich.http import ChatClient

    port = _free_port()  # nothing listens there: connection refused, retried with warnings
    client = ChatClient(f"http://user:{SECRET}@127.0.0.1:{port}/v1", "m", timeout=2, max_retries=2, backoff=0.01)
    with caplog.at_level(logging.DEBUG), pytest.raises(EnrichError) as ei:
        client.complete({"messages": [{"role": "user", "content": "hi"}]})
    client.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and all(":***@127.0.0.1" in w for w in warnings)
    assert SECRET not in caplog.text and SECRET not in str(ei.value) and SECRET not in repr(client)


# -------------------------------------------------------------------------- 7. usage errors, held store, --k
def test_k_must_be_at_least_one() -> None:
    from click.testing import CliRunner

    from pir.cli import main

    for k in ("0", "-1"):
        res = CliRunner().invoke(main, ["search", "--text", "chair", "--k", k])
        assert res.exit_code == 2 and "--k" in res.output, res.output


def test_light_modules_import_no_heavy_packages() -> None:
    code = (
        "import sys; import pir.core.errors, pir.core.diskspace, pir.core.storewait; "
        "import pir.ingest.registry, pir.ingest.formats; "
        "print(sorted(m for m in ('torch', 'timm', 'celery', 'qdrant_edge', 'PIL') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


_HOLD = textwrap.dedent(
    """
    import sys, time
    from pir.core.config import get_settings
    from pir.search import open_store
    s = get_settings(data_dir=sys.argv[1], qdrant={"url": None})
    st = open_store(s)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    st.close()
    """
)


@pytest.mark.slow  # ~6 s: a second process holding the store; the default tier stays under 4 minutes
def test_in_process_ingest_waits_for_held_store(
    tmp_path: Path, tiny_encoder: Path, corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pir.core.errors import StoreBusyError
    from pir.pipeline import ingest

    s = _settings(tmp_path / "pir", tiny_encoder)
    ingest(corpus, s, enrich=False, show_progress=False, optimize=False)  # the store exists

    def hold(seconds: float) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(s.data_dir), str(seconds)], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        return p

    holder = hold(3)
    try:
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pir.core.storewait"):
            out = ingest(corpus, s.model_copy(update={"store_wait_s": 60}), enrich=False, show_progress=False)
        waited = time.monotonic() - t0
    finally:
        holder.wait(30)
    assert out.skipped == N_FIGURES and out.store_count == N_FIGURES and waited >= 1
    assert any("held by another process: waiting up to 60 s" in r.getMessage() for r in caplog.records)
    holder = hold(20)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError, match="still held by another process after waiting 1 s"):
            ingest(corpus, s.model_copy(update={"store_wait_s": 1}), enrich=False, show_progress=False)
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait(30)
