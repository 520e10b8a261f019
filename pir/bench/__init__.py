"""Benchmarks: retrieval metrics (and, later, protocols, speed and reports)."""

from __future__ import annotations

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
    "evaluate_embeddings",
    "evaluate_rankings",
    "evaluate_similarity",
    "metric_keys",
    "split_head_tail",
]
