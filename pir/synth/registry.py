"""The object-family registry: class name -> (parameter sampler, part builder).

Adding an object family is one new module in :mod:`pir.synth.objects` that calls :func:`register`, plus one import
line in ``pir/synth/objects/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pir.synth.catalog import CLASSES
from pir.synth.geometry import Primitive

ParamSampler = Callable[[np.random.Generator], dict[str, Any]]
PartBuilder = Callable[[dict[str, Any]], list[Primitive]]

_BUILDERS: dict[str, tuple[ParamSampler, PartBuilder]] = {}


def register(cls: str, params: ParamSampler, parts: PartBuilder) -> None:
    """Register an object class (its parameter sampler and 3-D part builder)."""
    _BUILDERS[cls] = (params, parts)


def builders() -> dict[str, tuple[ParamSampler, PartBuilder]]:
    """All registered object classes (importing :mod:`pir.synth`, which imports :mod:`pir.synth.objects`, registers the
    built-in ones)."""
    return _BUILDERS


def sample_params(cls: str, rng: np.random.Generator) -> dict[str, Any]:
    """Sample the parameters of one object (one synthetic patent) of class ``cls``."""
    if cls not in builders():
        raise ValueError(f"unknown object class {cls!r}; known: {', '.join(CLASSES)}")
    return builders()[cls][0](rng)


def build_object(cls: str, params: dict[str, Any]) -> list[Primitive]:
    """The 3-D parts of an object of class ``cls`` with ``params``."""
    if cls not in builders():
        raise ValueError(f"unknown object class {cls!r}; known: {', '.join(CLASSES)}")
    return builders()[cls][1](params)
