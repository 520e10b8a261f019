"""``pir serve``: the examiner's web page and a JSON API over the search library, in one warm process.

Heavy imports (FastAPI, torch via the encoder) happen only when :func:`create_app` / :func:`serve` are used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`pir.web.app.create_app`."""
    from pir.web.app import create_app as _create_app  # lazy: package face (FastAPI, torch)

    return _create_app(*args, **kwargs)


def serve(*args: Any, **kwargs: Any) -> None:
    """See :func:`pir.web.app.serve`."""
    from pir.web.app import serve as _serve  # lazy: package face (FastAPI, uvicorn, torch)

    _serve(*args, **kwargs)
