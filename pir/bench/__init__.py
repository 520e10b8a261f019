"""Benchmarks: retrieval metrics, protocols (DeepPatent2, DeepPatent lists, any folder), speed and reports."""

from __future__ import annotations

from typing import Any

from pir.bench.metrics import (
    RetrievalReport,
    average_precision,
    evaluate_embeddings,
    evaluate_rankings,
    evaluate_similarity,
    metric_keys,
    split_head_tail,
)

__all__ = [
    "RetrievalReport",
    "average_precision",
    "bench_deeppatent",
    "bench_deeppatent2",
    "bench_folders",
    "bench_speed",
    "evaluate_embeddings",
    "evaluate_rankings",
    "evaluate_similarity",
    "metric_keys",
    "split_head_tail",
]


def __getattr__(name: str) -> Any:  # lazy: the runners import torch and the vector stores
    if name in ("bench_deeppatent", "bench_deeppatent2", "bench_folders"):
        from pir.bench import run  # lazy: package face (the runners import torch and the stores)

        return getattr(run, name)
    if name == "bench_speed":
        from pir.bench.speed import bench_speed  # lazy: package face (torch, the stores)

        return bench_speed
    raise AttributeError(name)
