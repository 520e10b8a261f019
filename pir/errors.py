"""User-facing error types, importable without torch, celery, qdrant or PIL (the CLI maps them to one line).

Every class derives from :class:`PirUserError`, so ``except PirUserError`` in the CLI turns all of them into
``Error: <message>`` and exit code 1 without importing the heavy modules that raise them. Messages are complete
sentences that name the path, URL (passwords redacted) or setting at fault and say what to do.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DataDirError",
    "DiskSpaceError",
    "JobError",
    "PirError",
    "PirUserError",
    "StoreBusyError",
    "WorkerConfigError",
    "redact_url",
]


class PirUserError(Exception):
    """Base of the errors the user can act on (shown as one line, never as a traceback)."""


#: Alias (the lead's CLI notes call it ``PirError``).
PirError = PirUserError


class JobError(PirUserError, RuntimeError):
    """A job problem: no broker configured, Redis unreachable or lost, unknown job, nothing to ingest."""


class WorkerConfigError(PirUserError, ValueError):
    """Worker settings that cannot work (no broker, time limits that contradict each other, unknown pool/queue)."""


class DataDirError(PirUserError, OSError):
    """The data directory cannot be written (read-only file system, permission denied)."""


class DiskSpaceError(PirUserError, OSError):
    """Not enough free space in the data directory for what is about to be written; nothing was written."""


class StoreBusyError(PirUserError, RuntimeError):
    """The embedded store stayed held by another process for longer than the wait allowed."""


def redact_url(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (``redis://:***@host:6379/0``); other URLs unchanged.

    Safe for logs and ``--json`` output. A value that is not a URL is returned as is.
    """
    if not url:
        return url or ""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # a malformed port or netloc: hide everything before the host rather than risk a leak
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
