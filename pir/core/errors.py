"""User-facing error types, importable without torch, celery, qdrant or PIL (the CLI maps them to one line).

Every class derives from :class:`PirUserError`, so ``except PirUserError`` in the CLI turns all of them into
``Error: <message>`` and exit code 1 without importing the heavy modules that raise them. Messages are complete
sentences that name the path, URL (passwords redacted) or setting at fault and say what to do.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "DataDirError",
    "DiskSpaceError",
    "EncoderLoadError",
    "JobError",
    "PirError",
    "PirUserError",
    "StoreBusyError",
    "WorkerConfigError",
    "install_log_redaction",
    "redact_text",
    "redact_url",
    "settings_secrets",
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


class EncoderLoadError(PirUserError, ValueError):
    """An encoder directory whose weights cannot be read (corrupt, empty) or do not fit its ``config.json``."""


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


# ------------------------------------------------------------------------------------------- secrets in logs
#: ``scheme://user:password@`` or ``scheme://token@`` inside any text (a log line, an error message, a traceback).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s\"'<>]*)@")
#: Secrets shorter than this are not searched for as plain text (``a`` would redact every ``a``); URL userinfo
#: is redacted whatever its length.
_MIN_SECRET = 4


def _userinfo_sub(m: re.Match[str]) -> str:
    user, sep, _password = m.group("userinfo").partition(":")
    return f"{m.group('scheme')}{user}:***@" if sep else f"{m.group('scheme')}***@"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL's userinfo (``user:***@``; a lone ``token@`` becomes ``***@``) and every one of
    ``secrets`` (also percent-decoded) replaced. Safe on any string; used for every log record and error line."""
    if not text:
        return text
    out = _USERINFO.sub(_userinfo_sub, text) if "://" in text else text
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in out:
            out = out.replace(secret, "***")
    return out


def settings_secrets(*trees: Any) -> set[str]:
    """Every secret value of pydantic settings trees: ``SecretStr`` fields (API keys) and the userinfo of every URL
    (as written and percent-decoded). Duck-typed (``model_dump``) so this module imports no settings."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if hasattr(v, "get_secret_value"):
            walk_str(str(v.get_secret_value()), key=True)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str) and "://" in v:
            walk_str(v)

    def walk_str(s: str, key: bool = False) -> None:
        if key:
            if len(s.strip()) >= _MIN_SECRET:
                found.add(s.strip())
            return
        for m in _USERINFO.finditer(s):
            user, sep, password = m.group("userinfo").partition(":")
            for part in (password,) if sep else (user,):
                for form in (part, unquote(part)):
                    if len(form) >= _MIN_SECRET:
                        found.add(form)

    for tree in trees:
        walk(tree.model_dump() if hasattr(tree, "model_dump") else tree)
    return found


class _Redaction:
    """The secrets every log record is cleaned of (process-wide, as logging itself is)."""

    lock = threading.Lock()
    secrets: frozenset[str] = frozenset()
    installed = False


def _redacted_record_class(base: type[logging.LogRecord]) -> type[logging.LogRecord]:
    class RedactedLogRecord(base):  # type: ignore[valid-type, misc]
        """A record whose message, exception text and stack are redacted when formatted."""

        def getMessage(self) -> str:  # noqa: N802  (logging's name)
            return redact_text(super().getMessage(), _Redaction.secrets)

        @property
        def exc_text(self) -> str | None:
            return self.__dict__.get("_exc_text")

        @exc_text.setter
        def exc_text(self, value: str | None) -> None:
            self.__dict__["_exc_text"] = redact_text(value, _Redaction.secrets) if value else value

        @property
        def stack_info(self) -> str | None:
            return self.__dict__.get("_stack_info")

        @stack_info.setter
        def stack_info(self, value: str | None) -> None:
            self.__dict__["_stack_info"] = redact_text(value, _Redaction.secrets) if value else value

    return RedactedLogRecord


def install_log_redaction(secrets: Iterable[str] = ()) -> None:
    """Redact every log record of this process from now on, whichever handler prints it (Celery and uvicorn
    install their own): URL userinfo always, and ``secrets`` (added to those of earlier calls).

    Done with a log-record factory rather than a handler filter, so handlers added later (Celery's worker hijacks
    the root logger) are covered too, and so are exception tracebacks (``exc_text``) and stacks.
    """
    with _Redaction.lock:
        _Redaction.secrets = _Redaction.secrets | {s for s in secrets if s and len(s) >= _MIN_SECRET}
        if _Redaction.installed:
            return
        factory = logging.getLogRecordFactory()
        cls = _redacted_record_class(logging.LogRecord)

        def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
            if factory is logging.LogRecord:
                return cls(*args, **kwargs)
            record = factory(*args, **kwargs)  # someone else's factory: redact its record's message in place
            record.msg, record.args = redact_text(record.getMessage(), _Redaction.secrets), None
            return record

        logging.setLogRecordFactory(make)
        _Redaction.installed = True
