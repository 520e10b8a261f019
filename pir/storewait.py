"""Wait, bounded and with one message, for an embedded store that another process holds (no heavy imports).

Qdrant Edge allows one process per store directory; a second ``open`` fails at once ("in use by another process").
An in-process ``pir ingest`` started while e.g. a ``pir search`` or a worker holds the store waits up to
``Settings.store_wait_s`` seconds, saying so once, then stops with :class:`~pir.errors.StoreBusyError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from pir.errors import StoreBusyError

__all__ = ["is_busy", "wait_for_store"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_BUSY_MARKERS = ("in use by another process", "WouldBlock", "Resource temporarily unavailable")


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
                    "(another `pir ingest`, `pir search` or a `pir worker` on the embedded store) or use a Qdrant "
                    "server (PIR_QDRANT__URL), then run the command again"
                ) from None
            if not told:
                told = True
                msg = f"{what} is held by another process: waiting up to {timeout_s:g} s for it to be released"
                (notify or log.warning)(msg)
            time.sleep(poll_s)
