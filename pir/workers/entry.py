"""``celery -A pir.workers.entry worker ...``: the Celery app built from the environment (``PIR_`` settings).

Only this entry module builds an app at import; library code calls :func:`pir.workers.app.create_app` itself.
Prefer ``pir worker``, which also checks the pool against the store (one process per embedded Edge store).
"""

from __future__ import annotations

from pir.core.config import get_settings
from pir.workers.app import create_app

app = create_app(get_settings())
