"""The bench's own retrieval statistics: per-query values and their bootstrap confidence intervals. The metrics
themselves (shared with training; one copy) are :mod:`pir.core.metrics`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pir.core.metrics import DEFAULT_KS, metric_keys

__all__ = ["CI_LEVEL", "CI_METRICS", "CI_SEED", "N_BOOTSTRAP", "bootstrap_ci", "metric_intervals", "per_query_metrics"]


#: Bootstrap defaults of the bench's confidence intervals: resamples, level, seed.
N_BOOTSTRAP = 1000
CI_LEVEL = 0.95
CI_SEED = 0
#: The headline metrics that carry a confidence interval in the report.
CI_METRICS: tuple[str, ...] = ("map", "recall@10", "mrr@10")


def per_query_metrics(
    ranked_relevance: Sequence[Sequence[bool]], n_relevant: Sequence[int], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per-query ``map`` (AP), ``recall@k`` (hit), ``recall_all@k`` and ``mrr@k`` of ranked lists, as
    :func:`~pir.core.metrics.evaluate_rankings` defines them; NaN for a query without a relevant item (it is skipped
    there). Their mean over the non-NaN queries is that function's ``overall``."""
    ks = tuple(sorted({int(k) for k in ks}))
    n_q = len(ranked_relevance)
    out = {key: np.full(n_q, np.nan) for key in metric_keys(ks)}
    for i, (flags, n_rel) in enumerate(zip(ranked_relevance, n_relevant, strict=True)):
        if n_rel <= 0:
            continue
        rel = np.asarray(flags, dtype=bool).ravel()
        ranks = np.flatnonzero(rel) + 1
        out["map"][i] = float(np.sum(np.arange(1, len(ranks) + 1) / ranks) / n_rel) if len(ranks) else 0.0
        first = int(ranks[0]) if len(ranks) else None
        for k in ks:
            hits = int(np.sum(ranks <= k))
            out[f"recall@{k}"][i] = 1.0 if hits else 0.0
            out[f"recall_all@{k}"][i] = hits / n_rel
            out[f"mrr@{k}"][i] = 1.0 / first if first is not None and first <= k else 0.0
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
    seed: int = CI_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query values (queries resampled with replacement).

    NaN values (queries without a relevant item) are dropped first. The resamples depend only on ``seed`` and the
    number of queries, so rows evaluated on the same queries are resampled alike (a paired comparison).

    Returns:
        ``(low, high)``; ``(nan, nan)`` without values.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if not 0.0 < level < 1.0 or n_resamples < 1:
        raise ValueError(f"need 0 < level < 1 and n_resamples >= 1, got {level}, {n_resamples}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    means = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def metric_intervals(
    per_query: dict[str, np.ndarray],
    metrics: Sequence[str] = CI_METRICS,
    *,
    n_resamples: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
    seed: int = CI_SEED,
) -> dict[str, tuple[float, float]]:
    """:func:`bootstrap_ci` of each metric in ``metrics`` (those present in ``per_query``)."""
    return {
        m: bootstrap_ci(per_query[m], n_resamples=n_resamples, level=level, seed=seed)
        for m in metrics
        if m in per_query
    }
