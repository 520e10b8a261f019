"""``python -m pir.cli``: the same as the ``pir`` console script."""

from __future__ import annotations

from pir.cli import main

main()
