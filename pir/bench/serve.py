"""``pir bench serve``: a bounded load against a live ``pir serve`` on 127.0.0.1, beside the cold CLI ``pir search``.

The server runs as a subprocess (``uvicorn --factory pir.web.app:app_from_env``) and is spoken to over HTTP only, so
this module never imports :mod:`pir.web`. The embedded store admits one process at a time, so the cold CLI runs
first, then the server starts.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pir.core.config import Settings


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these settings (data dir, store, encoder)."""
    env = dict(os.environ)
    env.update(
        PIR_DATA_DIR=str(Path(settings.data_dir).resolve()),
        PIR_ENCODER__NAME=str(settings.encoder.name),
        PIR_ENCODER__DEVICE=settings.encoder.device,
        PIR_QDRANT__COLLECTION=settings.qdrant.collection,
        PIR_QDRANT__URL=settings.qdrant.url or "",
        PIR_IMAGE_SIZE=str(settings.image_size),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    env.update(extra)
    return env


def _pick_queries(settings: Settings, n: int) -> list[Path]:
    """``n`` stored figures' image files (read before the server takes the store)."""
    from pir.search import open_store  # lazy: start-up (qdrant)

    out: list[Path] = []
    with open_store(settings) as store:
        for p in store.scroll(batch_size=64):
            path = p.payload.get("image_path")
            if path and Path(path).is_file():
                out.append(Path(path))
            if len(out) >= n:
                break
    if not out:
        raise ValueError(f"no stored figure with a readable image in {settings.data_dir}: ingest something first")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pir_command() -> list[str]:
    exe = Path(sys.executable).with_name("pir")
    return [str(exe)] if exe.is_file() else [sys.executable, "-c", "from pir.cli import main; main()"]


def _cold_cli(settings: Settings, query: Path, k: int) -> float:
    """Wall seconds of one ``pir search QUERY --k K --json`` in a fresh process."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [*_pir_command(), "search", str(query), "--k", str(k), "--json"],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"cold `pir search` failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}")
    return wall


class _RssSampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        import psutil  # lazy: start-up (psutil)

        self.proc = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.stop = threading.Event()

    def rss(self) -> int:
        import psutil  # lazy: start-up (psutil)

        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def _start_server(settings: Settings, max_concurrent: int) -> tuple[subprocess.Popen, str]:
    """``uvicorn --factory pir.web.app:app_from_env`` on a free loopback port, no API key: (process, base URL)."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "pir.web.app:app_from_env",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    env = _env(settings, PIR_SERVE__MAX_CONCURRENT=str(max_concurrent), PIR_SERVE__HOST="127.0.0.1")
    env.pop("PIR_SERVE__API_KEY", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(client: Any, proc: subprocess.Popen, t_start: float, start_timeout: float) -> None:
    """Poll ``/api/health`` until it answers 200 (RuntimeError when the server exits or the time is up)."""
    import httpx  # lazy: start-up

    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {(proc.stderr.read() or '')[-400:]}")  # type: ignore[union-attr]  # stderr=PIPE
        try:
            if client.get("/api/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.perf_counter() - t_start > start_timeout:
            raise RuntimeError(f"server not up after {start_timeout:g} s")
        time.sleep(0.2)


def _stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _search_once(client: Any, files: list[tuple[str, bytes]], k: int, i: int) -> tuple[float, int]:
    """One multipart search with query drawing ``i`` (mod the number of files): (ms, status; -1 = no answer)."""
    import httpx  # lazy: start-up

    name, data = files[i % len(files)]
    t0 = time.perf_counter()
    try:
        r = client.post("/api/search", files=[("images", (name, data, "image/png"))], data={"k": str(k)})
        code = r.status_code
    except httpx.HTTPError:
        code = -1
    return (time.perf_counter() - t0) * 1e3, code


def _load(
    base: str, files: list[tuple[str, bytes]], k: int, searches: int, clients: int
) -> tuple[list[float], Counter[int], float]:
    """``searches`` searches from ``clients`` concurrent clients: (ms of each 200, status counts, wall s)."""
    import httpx  # lazy: start-up

    lat: list[float] = []
    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def worker(w: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            for i in range(w, searches, clients):
                ms, code = _search_once(client, files, k, i)
                with lock:
                    codes[code] += 1
                    if code == 200:
                        lat.append(ms)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(worker, range(clients)))
    return lat, codes, time.perf_counter() - t0


def _load_figures(lat: list[float], codes: Counter[int], wall: float, clients: int, searches: int) -> dict[str, Any]:
    """The ``load`` section of :func:`bench_serve`'s result."""
    return {
        "clients": clients,
        "searches": searches,
        "ok": len(lat),
        "errors": sum(n for code, n in codes.items() if code != 200),
        "status_codes": {str(c): n for c, n in sorted(codes.items())},
        "p50_ms": round(_pct(lat, 50), 1),
        "p95_ms": round(_pct(lat, 95), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "wall_s": round(wall, 2),
        "searches_per_s": round(len(lat) / wall, 2) if wall > 0 else None,
    }


def _measure_server(
    settings: Settings,
    files: list[tuple[str, bytes]],
    k: int,
    searches: int,
    clients: int,
    max_concurrent: int,
    start_timeout: float,
) -> dict[str, Any]:
    """Start the server, time its start, warm searches (one client) and the load; stop it.

    Returns ``{"server": {...}, "load": {...}, "warm_ms": [...]}``.
    """
    import httpx  # lazy: start-up

    t_start = time.perf_counter()
    proc, base = _start_server(settings, max_concurrent)
    sampler = _RssSampler(proc.pid)
    sampler.start()
    try:
        with httpx.Client(base_url=base, timeout=120) as c:
            _wait_ready(c, proc, t_start, start_timeout)
            ready_s = time.perf_counter() - t_start
            idle_rss = sampler.rss()
            for i in range(len(files)):  # warm-up: first forward passes, caches
                _search_once(c, files, k, i)
            warm = [_search_once(c, files, k, i) for i in range(max(len(files), 10))]  # one client alone
        lat, codes, wall = _load(base, files, k, searches, clients)
    finally:
        sampler.stop.set()
        _stop_server(proc)
    return {
        "server": {
            "ready_s": round(ready_s, 2),
            "idle_rss_mb": round(idle_rss / 2**20, 1),
            "peak_rss_mb": round(sampler.peak / 2**20, 1),
            "max_concurrent": max_concurrent,
            "pid_rss_note": "server process + children, sampled every 50 ms",
        },
        "load": _load_figures(lat, codes, wall, clients, searches),
        "warm_ms": [ms for ms, code in warm if code == 200],
    }


def bench_serve(
    settings: Settings,
    *,
    clients: int = 10,
    searches: int = 300,
    k: int = 10,
    queries: Sequence[str | Path] = (),
    n_queries: int = 8,
    cold_runs: int = 1,
    max_concurrent: int = 2,
    start_timeout: float = 300.0,
) -> dict[str, Any]:
    """Run the bounded load and return the figures (JSON-safe).

    Each search uploads one query drawing (multipart ``POST /api/search``), so encoding is included, as in the CLI.

    Args:
        settings: The store and encoder to serve (the server gets them through ``PIR_*`` env vars).
        clients: Concurrent HTTP clients.
        searches: Total searches across all clients.
        k: Hits per search.
        queries: Query drawings; default ``n_queries`` stored figures.
        cold_runs: Cold ``pir search`` processes timed before the server starts (0 = skip).
        max_concurrent: The server's search slots (``PIR_SERVE__MAX_CONCURRENT``).

    Returns:
        ``{"server": {...}, "load": {p50_ms, p95_ms, errors, ...}, "warm_search_ms": ..., "cold_cli_s": [...]}``.
    """
    if clients < 1 or searches < 1:
        raise ValueError("clients and searches must be at least 1")
    paths = [Path(q) for q in queries] or _pick_queries(settings, n_queries)
    files = [(p.name, p.read_bytes()) for p in paths]
    cold = [_cold_cli(settings, paths[i % len(paths)], k) for i in range(cold_runs)]

    out = _measure_server(settings, files, k, searches, clients, max_concurrent, start_timeout)
    warm_ms = out.pop("warm_ms")
    return {
        **out,
        "warm_search_ms": round(statistics.median(warm_ms), 1) if warm_ms else None,  # median, one client
        "warm_search_p95_ms": round(_pct(warm_ms, 95), 1) if warm_ms else None,
        "cold_cli_s": [round(c, 2) for c in cold],
        "k": k,
        "queries": [p.name for p in paths],
        "encoder": str(settings.encoder.name),
        "data_dir": str(settings.data_dir),
    }
