"""Wait, bounded and with one message, for an embedded store that another process holds (no heavy imports).

Qdrant Edge allows one process per store directory; a second ``open`` fails at once ("in use by another process").
An in-process ``pir ingest`` started while e.g. a ``pir search``, a running ``pir serve`` or a worker holds the store
waits up to ``Settings.store_wait_s`` seconds, saying so once, then stops with :class:`~pir.core.errors.StoreBusyError`.

:class:`StoreLock` is pir's own lock beside a store directory (``.<name>.lock``, ``fcntl.flock``): held from before
the store is created (or loaded) until it is closed, so two first ingests into a new data dir, a snapshot and a
restore wait for each other instead of racing on a half-created directory.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pir.core.errors import StoreBusyError

__all__ = ["HOLDERS", "StoreLock", "held_message", "is_busy", "lock_path", "wait_for_store"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_BUSY_MARKERS = ("in use by another process", "WouldBlock", "Resource temporarily unavailable")
#: Who can hold an embedded store (every "held" message names them).
HOLDERS = (
    "another `pir ingest`, `pir search`, `pir snapshot`/`pir restore`, a running `pir serve` (it holds the store "
    "for as long as it runs) or a `pir worker` on the embedded store"
)


def held_message(path: str | Path) -> str:
    """One line: the store at ``path`` is held by another process, who that can be, and what to do."""
    return (
        f"the Qdrant Edge store at {path} is in use by another process ({HOLDERS}): only one may open it at a time. "
        "Stop that process, or run a Qdrant server (settings qdrant.url / PIR_QDRANT__URL) for multi-process use."
    )


def lock_path(store_path: str | Path) -> Path:
    """The lock file of the store directory ``store_path``: ``.<name>.lock`` beside it."""
    p = Path(store_path)
    return p.parent / f".{p.name}.lock"


class StoreLock:
    """An exclusive, non-blocking ``flock`` on :func:`lock_path` of a store directory (released by :meth:`release`
    or when the process ends, however it ends).

    Args:
        store_path: The store directory the lock guards (it need not exist yet).
    """

    def __init__(self, store_path: str | Path) -> None:
        self.store_path = Path(store_path)
        self.path = lock_path(store_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, create: bool = True) -> bool:
        """Take the lock (the lock file and its folder are created when ``create``).

        Returns:
            True when held; False when the lock file does not exist and cannot be created (read-only file system,
            missing folder with ``create=False``): nothing can write there, so nothing is locked.

        Raises:
            StoreBusyError: Another process (or another open store in this process) holds it; the message says
                "in use by another process", so :func:`wait_for_store` waits for it.
        """
        if self._fd is not None:
            return True
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOSPC):
                try:
                    fd = os.open(self.path, os.O_RDONLY)  # an existing lock file on a read-only mount still locks
                except OSError:
                    return False
            else:
                raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreBusyError(held_message(self.store_path)) from None
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        """Release the lock (idempotent); the lock file stays (removing it would race with a waiting process)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is held by another process (as opposed to missing or broken)."""
    text = f"{exc} {exc.__cause__ or ''}"
    return any(m in text for m in _BUSY_MARKERS)


def wait_for_store(
    open_fn: Callable[[], T],
    *,
    timeout_s: float = 60.0,
    poll_s: float = 0.5,
    what: str = "the store",
    notify: Callable[[str], None] | None = None,
) -> T:
    """``open_fn()``, retried while the store is held by another process, for at most ``timeout_s`` seconds.

    ``notify`` receives one line when waiting starts (default: a warning in the log).

    Raises:
        StoreBusyError: Still held after ``timeout_s``.
        Exception: Whatever ``open_fn`` raises for any other reason, at once.
    """
    t_end = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            return open_fn()
        except Exception as e:
            if not is_busy(e):
                raise
            if time.monotonic() >= t_end:
                raise StoreBusyError(
                    f"{what} is still held by another process after waiting {timeout_s:g} s: stop that process "
                    f"({HOLDERS}) or use a Qdrant server (PIR_QDRANT__URL), then run the command again"
                ) from None
            if not told:
                told = True
                msg = f"{what} is held by another process: waiting up to {timeout_s:g} s for it to be released"
                (notify or log.warning)(msg)
            time.sleep(poll_s)
