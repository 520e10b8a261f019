"""The ``pir`` command line: thin click wrappers, each calling one library function.

One module per command group registers its commands on :data:`pir.cli.app.main`; output formatting lives in
:mod:`pir.cli.output`. Heavy modules (torch, timm, Qdrant, Celery) are imported inside the commands only, so
``pir --help``, ``pir CMD --help`` and usage errors stay fast.
"""

from __future__ import annotations

from pir.cli import backup, bench, ingest, misc, search, serve, train  # noqa: F401  (each module registers its commands)
from pir.cli.app import main

__all__ = ["main"]
