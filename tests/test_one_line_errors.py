"""Issue 18: the tracebacks a fault probe found become one line (exit 1), a warning, or a 4xx / an INFO line.

Real parts: the ``pir`` CLI (click's runner, in process), real encoder directories with damaged weights, real SQLite
files that are not databases, a read-only tmpfs (root only, else skipped) or a data dir under a file, and a real
uvicorn server that a raw socket talks to.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pir.cli import main
from tests.test_faults import _draw, _flat_corpus, _free_port, _tmpfs


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path, corpus: Path) -> Path:
    """A data dir holding the corpus, ingested with the undamaged encoder (search needs a collection)."""
    data = tmp_path_factory.mktemp("stored") / "pir"
    res = _run(["--data-dir", str(data), "ingest", str(corpus), "--encoder", str(encoder_dir), "--no-enrich"])
    assert res.exit_code == 0, res.output
    return data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _flat_corpus(tmp_path_factory.mktemp("corpus") / "drawings", 3)


def _run(args: list[str], env: dict[str, str] | None = None) -> Any:
    base = {"PIR_WORKER__BROKER_URL": "", "PIR_QDRANT__URL": "", "PIR_ENCODER__NUM_THREADS": "1"}
    return CliRunner().invoke(main, args, env={**base, **(env or {})})


def _one_error(res: Any) -> str:
    """The single ``Error:`` line of a run that exited 1 without a traceback."""
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, res.output
    return lines[0]


def _damaged(src: Path, dst: Path, how: str) -> Path:
    import shutil

    shutil.copytree(src, dst)
    w = dst / "model.safetensors"
    if how == "corrupt":
        w.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(range(256)))
    elif how == "empty":
        w.write_bytes(b"")
    elif how == "shape":  # config says 16 dims, weights hold 32
        cfg = json.loads((dst / "config.json").read_text())
        cfg["embed_dim"] = 16
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


# -------------------------------------------------------------------------------------------- encoder weights
@pytest.mark.parametrize("how", ["corrupt", "empty", "shape"])
def test_damaged_encoder_weights_are_one_line_on_search_and_ingest(
    how: str, encoder_dir: Path, corpus: Path, stored: Path, tmp_path: Path
) -> None:
    enc = _damaged(encoder_dir, tmp_path / f"enc-{how}", how)
    for args in (
        ["--data-dir", str(tmp_path / "pir"), "ingest", str(corpus), "--encoder", str(enc), "--no-enrich"],
        ["--data-dir", str(stored), "search", str(next(corpus.iterdir())), "--encoder", str(enc)],
    ):
        line = _one_error(_run(args))
        assert str(enc / "model.safetensors") in line, line
        assert ("do not fit" in line and "size mismatch" in line) if how == "shape" else "not readable" in line


# ----------------------------------------------------------------------------------------------- SQLite caches
def test_corrupt_enrich_cache_is_moved_aside_and_rebuilt_on_enrich_and_ingest(
    encoder_dir: Path, corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "pir"
    cache = data / "cache" / "enrich.sqlite"
    for args in (
        ["--data-dir", str(data), "enrich", str(corpus)],
        ["--data-dir", str(data), "ingest", str(corpus), "--encoder", str(encoder_dir)],
    ):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(b"this is not a database\n" * 100)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pir.core.sqlite_cache"):
            res = _run(args)
        assert res.exit_code == 0, (args, res.output, res.exception)
        warnings = [r.getMessage() for r in caplog.records if r.name == "pir.core.sqlite_cache"]
        assert len(warnings) == 1 and "moved aside" in warnings[0] and str(cache) in warnings[0], warnings
        with sqlite3.connect(cache) as conn:  # rebuilt: a real cache holding this run's descriptions
            assert conn.execute("SELECT COUNT(*) FROM figures").fetchone()[0] == 3
        asides = sorted(
            p for p in cache.parent.glob("enrich.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))
        )
        assert asides and asides[-1].read_bytes().startswith(b"this is not a database")
        for p in cache.parent.glob("enrich.sqlite.corrupt-*"):
            p.unlink()


def test_other_sqlite_caches_are_rebuilt_too(tmp_path: Path) -> None:
    from pir.bench.cache import EmbeddingCache
    from pir.encoder.text import TextEmbeddingCache

    for cls, name in ((TextEmbeddingCache, "text.sqlite"), (EmbeddingCache, "bench.sqlite")):
        path = tmp_path / name
        path.write_bytes(b"\x00garbage" * 512)
        cache = cls(path)
        assert len(list(tmp_path.glob(f"{name}.corrupt-*"))) == 1
        (cache.close if hasattr(cache, "close") else lambda: None)()
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] >= 1


# ----------------------------------------------------------------------------------------- read-only data dir
def test_enrich_on_a_data_dir_under_a_file_is_one_line(corpus: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_error(_run(["--data-dir", str(blocker / "pir"), "enrich", str(corpus)]))
    assert "data dir" in line and str(blocker) in line, line


def test_enrich_on_a_read_only_data_dir_is_one_line(corpus: Path, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "1m", ro=True) as mnt:
        line = _one_error(_run(["--data-dir", str(mnt / "pir"), "enrich", str(corpus)]))
    assert "read-only" in line and str(mnt) in line, line


# ------------------------------------------------------------------------------------- unreachable Qdrant
def test_info_with_an_unreachable_qdrant_url_is_one_line_naming_it_redacted(tmp_path: Path) -> None:
    url = f"http://admin:hunter2-pw@127.0.0.1:{_free_port()}"
    line = _one_error(_run(["--data-dir", str(tmp_path / "pir"), "info"], {"PIR_QDRANT__URL": url}))
    assert "cannot reach the Qdrant server at http://admin:***@127.0.0.1:" in line and "hunter2" not in line, line


# ------------------------------------------------------------------------------------------ CLI validation
def test_text_is_capped_and_min_score_must_be_finite() -> None:
    res = _run(["search", "--text", "chair " * 100])
    assert res.exit_code == 2 and "--text" in res.output and "at most 500" in res.output, res.output
    for opt, value in (("--min-score", "nan"), ("--min-score", "inf"), ("--text-weight", "nan")):
        res = _run(["search", "--text", "chair", opt, value])
        assert res.exit_code == 2 and opt in res.output and "finite" in res.output, res.output


def test_duplicate_sidecar_rows_name_both(tmp_path: Path) -> None:
    from pir.ingest.readers import read_figures
    from pir.ingest.schema import ReadIssue

    root = tmp_path / "c"
    _draw(root / "a.png", 1)
    _draw(root / "b.png", 2)
    rows = [{"file": f, "patent_id": "D900001", "figure_id": "1"} for f in ("a.png", "b.png")]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    issues: list[ReadIssue] = []
    assert len(list(read_figures(root, issues=issues))) == 1
    (dup,) = [i for i in issues if "duplicate" in i.reason]
    assert dup.path.endswith("metadata.jsonl:2") and "metadata.jsonl:1" in dup.reason, dup


def test_symlinked_folder_outside_is_reported_once_without_its_file_names(tmp_path: Path) -> None:
    from pir.ingest.readers import read_figures
    from pir.ingest.schema import ReadIssue

    outside = tmp_path / "outside" / "cls"
    for i, name in enumerate(("private-a.png", "private-b.png")):
        _draw(outside / name, 20 + i)
    root = tmp_path / "classes"
    _draw(root / "chair" / "b.png", 6)
    (root / "lamp").symlink_to(outside, target_is_directory=True)
    issues: list[ReadIssue] = []
    figs = list(read_figures(root, issues=issues))
    assert [f.image_path.name for f in figs] == ["b.png"]
    text = json.dumps([(i.path, i.reason) for i in issues])
    assert len(issues) == 1 and issues[0].path == str(root / "lamp") and "private-" not in text, issues


# ------------------------------------------------------------------------------------------- pir serve (real)
class Served:
    """``pir -v serve`` in a subprocess on a free port (its log in a file); stopped by its pid."""

    def __init__(self, data: Path, encoder: Path, log: Path, host: str = "127.0.0.1", **serve: str) -> None:
        import os
        import subprocess
        import sys

        self.port = _free_port()
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIR_")}
        env.update(PIR_DATA_DIR=str(data), PIR_ENCODER__NAME=str(encoder), PIR_ENCODER__NUM_THREADS="1")
        env.update({f"PIR_SERVE__{k.upper()}": v for k, v in serve.items()})
        self._fh = open(log, "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pir.cli", "-v", "serve", "--host", host, "--port", str(self.port)],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
        self.host = host.strip("[]")
        import time

        t_end = time.monotonic() + 120
        while "Uvicorn running" not in self.text() and "Application startup complete" not in self.text():
            assert self.proc.poll() is None and time.monotonic() < t_end, self.text()[-3000:]
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def connect(self) -> Any:
        import socket

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect((self.host, self.port))
        return s

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait(10)
        self._fh.close()


@pytest.fixture(scope="module")
def served(stored: Path, encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = Served(
        stored, encoder_dir, tmp_path_factory.mktemp("serve") / "serve.log", header_timeout="2", body_timeout="3"
    )
    yield srv
    srv.stop()


def _closed_within(sock: Any, seconds: float) -> tuple[bool, bytes, float]:
    """Read until the server closes the connection or ``seconds`` pass: (closed, bytes read, seconds taken)."""
    import time

    t0 = time.monotonic()
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        return True, data, time.monotonic() - t0
    except TimeoutError:
        return False, data, time.monotonic() - t0
    except ConnectionResetError:
        return True, data, time.monotonic() - t0


def _wait_for(srv: Served, needle: str, seconds: float = 10) -> None:
    import time

    t_end = time.monotonic() + seconds
    while needle not in srv.text() and time.monotonic() < t_end:
        time.sleep(0.1)


def test_client_dropping_mid_upload_is_one_info_line(served: Served, corpus: Path) -> None:
    png = next(corpus.iterdir()).read_bytes()
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png
    )
    before = served.text()
    sock = served.connect()
    head = (
        f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {len(body) + 100_000}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[: len(body) // 2])
    import time

    time.sleep(0.5)
    sock.close()  # gone mid-upload
    _wait_for(served, "client disconnected")
    after = served.text()[len(before) :]
    assert "INFO pir.web.app: client disconnected during POST /api/search" in after, after
    assert "ERROR" not in after and "Traceback" not in after and "internal error" not in after, after
    import httpx

    assert httpx.get(f"http://127.0.0.1:{served.port}/api/health", timeout=10).status_code == 200  # still serving


def test_slow_clients_are_timed_out(served: Served) -> None:
    """Two stalled clients at once (their timeouts run side by side): headers never finished, closed by the header
    timeout (2 s); headers complete but the body never comes, 408 within the body timeout (3 s), then closed."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    stalled_headers = served.connect()
    stalled_headers.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    stalled_body = served.connect()
    stalled_body.sendall(
        b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        b"Content-Length: 5000\r\n\r\n--XyZ\r\n"
    )
    with ThreadPoolExecutor(2) as ex:
        headers = ex.submit(_closed_within, stalled_headers, 15)
        body = ex.submit(_closed_within, stalled_body, 30)
        (closed, _, took), (closed_b, data, took_b) = headers.result(), body.result()
    stalled_headers.close()
    stalled_body.close()
    assert closed and took < 6, (closed, took)
    assert data.startswith(b"HTTP/1.1 408") and b"within 3 s" in data, data[:300]
    assert closed_b and took_b < 15, (closed_b, took_b)
    assert httpx.get(f"http://127.0.0.1:{served.port}/api/health", timeout=10).status_code == 200  # still serving


def test_long_words_are_refused_by_the_api(served: Served) -> None:
    import httpx

    r = httpx.post(f"http://127.0.0.1:{served.port}/api/search", data={"words": "chair " * 20_000}, timeout=30)
    assert r.status_code in (400, 422) and "at most 500" in r.text, r.text[:300]


@pytest.mark.slow  # ~25 s: its own ingest and server start-up
def test_serve_on_ipv6_loopback_in_brackets(corpus: Path, encoder_dir: Path, tmp_path: Path) -> None:
    import socket

    import httpx

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"cannot bind ::1 here ({e})")
    data = tmp_path / "pir"  # its own store: the module's server holds the other one
    res = _run(["--data-dir", str(data), "ingest", str(corpus), "--encoder", str(encoder_dir), "--no-enrich"])
    assert res.exit_code == 0, res.output
    srv = Served(data, encoder_dir, tmp_path / "serve6.log", host="[::1]")
    try:
        r = httpx.get(f"http://[::1]:{srv.port}/api/health", timeout=10)
        assert r.status_code == 200, r.text
        assert f"http://[::1]:{srv.port}/" in srv.text()
    finally:
        srv.stop()


def test_bracketed_host_that_is_not_ipv6_is_one_line(stored: Path) -> None:
    line = _one_error(_run(["--data-dir", str(stored), "serve", "--host", "[localhost]"]))
    assert "brackets are for IPv6" in line, line
