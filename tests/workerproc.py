"""A worker subprocess for the worker and fault tests: its own process group, a log file, ready / stop / kill."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """A ``pir worker`` subprocess in its own process group (so SIGKILL takes all of it)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115  (closed in wait)
        self.proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=REPO, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> float:
        """Wait for Celery's "ready." line; the monotonic time it was seen (fails the test when the worker dies)."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if " ready." in self.text():
                return time.monotonic()
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"worker did not start:\n{self.text()[-3000:]}")

    def stop(self, timeout: float = 60) -> int:
        """Warm shutdown (SIGTERM): finish the current task, close the store, exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait(30)

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait(30)
        self._fh.close()
        return rc
