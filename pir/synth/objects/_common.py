"""Small sampling helpers shared by the object families."""

from __future__ import annotations

from typing import Any

import numpy as np


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng: np.random.Generator, items: list[Any], p: list[float] | None = None) -> Any:
    return items[int(rng.choice(len(items), p=p))]
