"""Benchmarks: protocols (DeepPatent2, DeepPatent lists, any folder), speed and reports. The retrieval metrics are
:mod:`pir.core.metrics` (shared with training); the bench's bootstrap intervals :mod:`pir.bench.metrics`."""

from __future__ import annotations

from typing import Any

__all__ = ["bench_deeppatent", "bench_deeppatent2", "bench_folders", "bench_speed"]


def __getattr__(name: str) -> Any:  # lazy: the runners import torch and the vector stores
    if name in ("bench_deeppatent", "bench_deeppatent2", "bench_folders"):
        from pir.bench import run  # lazy: package face (the runners import torch and the stores)

        return getattr(run, name)
    if name == "bench_speed":
        from pir.bench.speed import bench_speed  # lazy: package face (torch, the stores)

        return bench_speed
    raise AttributeError(name)
