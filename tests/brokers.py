"""Private broker servers for the fault tests: a ``redis-server`` and a ``rabbitmq-server`` of the test's own, on free
ports, with their data under the test's tmp dir, killed (SIGKILL) and restarted by pid. The machine's own Redis and
RabbitMQ are never touched."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the script itself: Debian's wrapper switches user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateRedis:
    """A ``redis-server`` on its own port; ``persist``: append-only (fsync always), else nothing on disk."""

    def __init__(self, workdir: Path, *, persist: bool = False, extra: tuple[str, ...] = ()) -> None:
        if not shutil.which("redis-server"):
            pytest.skip("redis-server not installed")
        self.port, self.dir, self.persist, self.extra = free_port(), workdir, persist, extra
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *aof,
             "--dir", str(self.dir), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t_end = time.monotonic() + 10
        while not port_open(self.port):
            assert time.monotonic() < t_end and self.proc.poll() is None, "redis-server did not start"
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class PrivateRabbit:
    """A ``rabbitmq-server`` node of its own (``pirtest-<port>@localhost``, loopback, no plugins, its database and
    logs under ``workdir``), in its own process group so SIGKILL takes all of it; restarted on the same port and
    database (durable queues and persistent messages survive)."""

    def __init__(self, workdir: Path) -> None:
        if not RABBITMQ_SERVER.is_file():
            pytest.skip(f"{RABBITMQ_SERVER} not installed")
        self.port, self.dist_port, self.dir = free_port(), free_port(), workdir
        for sub in ("home", "mnesia", "log", "gen", "plugins-expand"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        (workdir / "enabled_plugins").write_text("")
        self.node = f"pirtest-{self.port}@localhost"
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        d = self.dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "PIR_"))}
        env.update(
            HOME=str(d / "home"),  # its own Erlang cookie
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(d / "feature_flags"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(d / "plugins-expand"),
            RABBITMQ_GENERATED_CONFIG_DIR=str(d / "gen"),
            RABBITMQ_PID_FILE=str(d / "rabbit.pid"),
            RABBITMQ_CONFIG_FILE=str(d / "none"),
        )
        return env

    def start(self, timeout: float = 120) -> float:
        """Start the node and wait until it accepts AMQP connections; seconds it took (skips the test when it
        cannot start here, with the reason)."""
        from kombu import Connection

        t0 = time.monotonic()
        self._log = open(self.dir / "server.out", "ab")  # noqa: SIM115  (closed in kill)
        self.proc = subprocess.Popen(
            [str(RABBITMQ_SERVER)], env=self.env(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                break
            if port_open(self.port):
                try:
                    with Connection(self.url, connect_timeout=2) as c:
                        c.ensure_connection(max_retries=1)
                    return time.monotonic() - t0
                except Exception:  # noqa: BLE001, S110  (still booting)
                    pass
            time.sleep(0.25)
        tail = (self.dir / "server.out").read_text(errors="replace")[-1500:]
        self.kill()
        pytest.skip(f"a private rabbitmq-server could not be started here within {timeout:.0f} s: {tail}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)
        if self._log is not None:
            self._log.close()
            self._log = None
