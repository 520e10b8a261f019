"""A worker subprocess for the worker and fault tests: its own process group, a log file, ready / stop / kill."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def worker_env(s: Any) -> dict[str, str]:
    """The environment of a worker subprocess for settings ``s`` (no PIR_ variable of the caller leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIR_")}
    w = s.worker
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PIR_DATA_DIR=str(s.data_dir),
        PIR_ENCODER__NAME=s.encoder.name,
        PIR_ENCODER__DEVICE="cpu",
        PIR_ENCODER__NUM_THREADS="1",
        PIR_WORKER__BROKER_URL=w.broker_url or "",
        PIR_WORKER__RESULT_BACKEND=w.result_backend or "",
        PIR_WORKER__BATCH_SIZE=str(w.batch_size),
        PIR_WORKER__TASK_TIME_LIMIT=str(w.task_time_limit),
        PIR_WORKER__TASK_SOFT_TIME_LIMIT=str(w.task_soft_time_limit),
        PIR_WORKER__HEARTBEAT_S=str(w.heartbeat_s),
    )
    if w.visibility_timeout is not None:
        env["PIR_WORKER__VISIBILITY_TIMEOUT"] = str(w.visibility_timeout)
    return env


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
