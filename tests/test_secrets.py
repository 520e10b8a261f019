"""Secrets (issue 18): no credential in any log line at any level, and credentials sent the one documented way.

Real parts only: a chat-completions server on 127.0.0.1 that records each request's headers, a private
``redis-server --requirepass`` on a free port (the machine's Redis has no password), a real ``pir worker``
subprocess and the real ``pir`` CLI in subprocesses at ``-vv``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_enrich_openai import ChatServer, good
from tests.workerproc import WorkerProcess

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "pa55-" + uuid.uuid4().hex[:10]  # URL passwords
API_KEY = "sk-" + uuid.uuid4().hex  # API keys
QDRANT_KEY = "qk-" + uuid.uuid4().hex
CAPTION_KEY = "ck-" + uuid.uuid4().hex  # the captioner URL's password
SECRETS = (PASSWORD, API_KEY, QDRANT_KEY, CAPTION_KEY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def chat() -> Iterator[ChatServer]:
    server = ChatServer(good)
    yield server
    server.close()


def _with_userinfo(url: str, user: str, password: str) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


# ------------------------------------------------------------------------------------------- what is sent
def test_url_credentials_are_sent_as_basic_auth_and_never_logged(
    chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    from pir.core.errors import install_log_redaction
    from pir.enrich.http import ChatClient

    install_log_redaction()
    client = ChatClient(_with_userinfo(chat.url, "user", PASSWORD), "m", timeout=5, max_retries=0)
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        client.complete({"messages": [{"role": "user", "content": "Object: chair\nexactly 2 strings"}]})
    client.close()
    (req,) = chat.requests
    expected = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    assert req["headers"]["Authorization"] == expected
    assert any("HTTP Request: POST" in r.getMessage() for r in caplog.records)  # httpx did log the request
    assert PASSWORD not in caplog.text and PASSWORD not in repr(client)


def test_api_key_is_sent_as_bearer(chat: ChatServer) -> None:
    from pir.enrich.http import ChatClient

    client = ChatClient(chat.url, "m", API_KEY, timeout=5, max_retries=0)
    client.complete({"messages": [{"role": "user", "content": "Object: chair\nexactly 2 strings"}]})
    client.close()
    assert chat.requests[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"


def test_url_credentials_and_api_key_together_are_refused_in_one_line(chat: ChatServer, tmp_path: Path) -> None:
    from pir.enrich.http import ChatClient

    with pytest.raises(ValueError, match="keep one") as ei:
        ChatClient(_with_userinfo(chat.url, "user", PASSWORD), "m", API_KEY)
    assert PASSWORD not in str(ei.value) and API_KEY not in str(ei.value) and "user:***@" in str(ei.value)
    assert chat.requests == []


def test_record_redaction_covers_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    from pir.core.errors import install_log_redaction

    install_log_redaction({API_KEY})
    log = logging.getLogger("pir.test_secrets")
    with caplog.at_level(logging.DEBUG):
        log.info("connecting to %s with %s", f"redis://:{PASSWORD}@127.0.0.1:1/0", API_KEY)
        try:
            raise RuntimeError(f"failed on amqp://guest:{PASSWORD}@host// key={API_KEY}")
        except RuntimeError:
            log.exception("boom")
    text = "\n".join(caplog.handler.format(r) for r in caplog.records)
    assert "redis://:***@127.0.0.1:1/0" in text and "amqp://guest:***@host//" in text and "Traceback" in text
    assert PASSWORD not in text and API_KEY not in text


# ------------------------------------------------------------------------- every log line of a real run
class PrivateRedis:
    """``redis-server --requirepass PASSWORD`` on a free port, no persistence; stopped by its pid."""

    def __init__(self, workdir: Path) -> None:
        if not shutil.which("redis-server"):
            pytest.skip("redis-server not installed")
        self.port = _free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--requirepass", PASSWORD, "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t_end = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            assert time.monotonic() < t_end, "redis-server did not start"
            time.sleep(0.05)

    def url(self, db: int) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _pir(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pir.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def _assert_clean(name: str, text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    lines = [ln for ln in text.splitlines() if any(s in ln for s in SECRETS)]
    assert not leaked, f"{name}: secret(s) in the output:\n" + "\n".join(lines[:10])


@pytest.mark.slow  # ~40 s: a worker start-up, an ingest through it, an enrich and info runs at -vv
def test_no_secret_in_any_log_line_with_credentials_in_every_url(tmp_path: Path, chat: ChatServer) -> None:
    from tests.helpers import make_tiny_encoder
    from tests.test_faults import _flat_corpus

    encoder = make_tiny_encoder(tmp_path / "enc")
    corpus = _flat_corpus(tmp_path / "corpus", 4)
    redis = PrivateRedis(tmp_path / "redis")
    caption = ChatServer(lambda n, body: (200, {}, {"choices": [{"message": {"content": "A chair."}}]}, 0.0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIR_")}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO),
        PIR_DATA_DIR=str(tmp_path / "pir"),
        PIR_ENCODER__NAME=str(encoder),
        PIR_ENCODER__NUM_THREADS="1",
        PIR_WORKER__BROKER_URL=redis.url(0),
        PIR_WORKER__RESULT_BACKEND=redis.url(1),
        PIR_WORKER__BATCH_SIZE="2",
        PIR_WORKER__HEARTBEAT_S="0.5",
        PIR_QDRANT__API_KEY=QDRANT_KEY,
        PIR_ENRICH__BACKEND="openai",
        PIR_ENRICH__OPENAI_BASE_URL=_with_userinfo(chat.url, "user", PASSWORD),
        PIR_ENRICH__OPENAI_MODEL="test-model",
        PIR_ENRICH__MAX_RETRIES="0",
        PIR_ENRICH__CAPTION_BASE_URL=_with_userinfo(caption.url, "cap", CAPTION_KEY),
        PIR_ENRICH__CAPTION_MODEL="cap",
    )
    worker = WorkerProcess(
        [sys.executable, "-m", "pir.cli", "-vv", "worker", "--loglevel", "DEBUG"], env, tmp_path / "worker.log"
    )
    outputs: dict[str, str] = {}
    try:
        worker.wait_ready(120)
        r = _pir(["-vv", "ingest", str(corpus), "--queue", "--wait"], env)
        outputs["ingest --queue --wait"] = r.stdout + r.stderr
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        r = _pir(["-vv", "enrich", str(corpus), "--refresh"], env)
        outputs["enrich"] = r.stdout + r.stderr
        assert r.returncode == 0, r.stderr[-3000:]
        assert worker.stop() == 0, worker.text()[-3000:]  # it holds the embedded store that info opens
        r = _pir(["-vv", "info"], env)
        outputs["info"] = r.stdout + r.stderr
        assert r.returncode == 0, r.stderr[-3000:]
        # an API key as well as the URL's user:password: refused in one line, still no secret shown
        r = _pir(["-vv", "enrich", str(corpus), "--refresh"], {**env, "PIR_ENRICH__OPENAI_API_KEY": API_KEY})
        outputs["enrich with key and URL credentials"] = r.stdout + r.stderr
        assert r.returncode == 1 and "keep one" in r.stderr, r.stderr[-3000:]
        # a Qdrant server URL with credentials (nothing listens there): one line naming it, redacted
        qdrant = f"http://user:{PASSWORD}@127.0.0.1:{_free_port()}"
        r = _pir(["-vv", "info"], {**env, "PIR_QDRANT__URL": qdrant})
        outputs["info with a Qdrant URL"] = r.stdout + r.stderr
        assert r.returncode == 1 and "user:***@127.0.0.1" in r.stderr, r.stderr[-3000:]
    finally:
        worker.stop()
        redis.stop()
        caption.close()
    outputs["worker"] = worker.text()
    assert "DEBUG" in outputs["worker"] and "redis://" in outputs["worker"]  # its banner and debug lines are there
    assert len(chat.requests) >= 4 and len(caption.requests) >= 4  # the LLM and the captioner were called
    auth = {r["headers"]["Authorization"] for r in chat.requests}
    assert auth == {"Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()}
    cap_auth = {r["headers"]["Authorization"] for r in caption.requests}
    assert cap_auth == {"Basic " + base64.b64encode(f"cap:{CAPTION_KEY}".encode()).decode()}
    for name, text in outputs.items():
        _assert_clean(name, text)
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))  # kept for a look when it fails
    assert sum(len(t.splitlines()) for t in outputs.values()) > 100, {k: len(v) for k, v in outputs.items()}
