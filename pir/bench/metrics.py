"""Retrieval metrics for the benchmarks: a re-export of :mod:`pir.metrics` (shared with training; one copy)."""

from __future__ import annotations

from pir.metrics import (
    DEFAULT_KS,
    RetrievalReport,
    average_precision,
    evaluate_embeddings,
    evaluate_rankings,
    evaluate_similarity,
    metric_keys,
    split_head_tail,
)

__all__ = [
    "DEFAULT_KS",
    "RetrievalReport",
    "average_precision",
    "evaluate_embeddings",
    "evaluate_rankings",
    "evaluate_similarity",
    "metric_keys",
    "split_head_tail",
]
