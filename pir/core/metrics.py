"""Retrieval metrics (mAP, Recall@K, MRR@K), overall and for head/tail classes. Pure numpy.

Definitions (per query, over its gallery after exclusions; R = number of relevant gallery items):

- ``map``: mean of AP, ``AP = (1/R) * sum over relevant ranks r of precision@r`` (all R relevant items, full ranking).
- ``recall@k``: the hit rate / success@k, 1 if any relevant item is in the top k, else 0. This is what the
  DeepPatent / Lo et al. papers report as "Recall@K".
- ``recall_all@k``: fraction of the R relevant items found in the top k (``hits_in_top_k / R``).
- ``mrr@k``: 1 / rank of the first relevant item when it is within the top k, else 0.

Relevance is class-level: a gallery item is relevant when its label equals the query's label. The query's own
figure (same id) is always excluded from its gallery; with ``exclude_same_patent=True`` every gallery item of the
query's patent is excluded too. Excluded items are neither relevant nor ranked (they do not take up rank slots).
Queries with R = 0 after exclusions are skipped from every metric and counted in ``n_skipped_no_relevant``.

Ties in scores are broken deterministically by gallery index (a stable sort: the lower index ranks first).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import numpy as np

__all__ = [
    "RetrievalReport",
    "average_precision",
    "evaluate_embeddings",
    "evaluate_rankings",
    "evaluate_similarity",
    "metric_keys",
    "split_head_tail",
]

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
_CHUNK_ELEMENTS = 2_000_000  # scores ranked per chunk (rows * gallery size); bounds temporary memory to ~100 MB


@dataclass
class RetrievalReport:
    """Aggregated retrieval metrics.

    Attributes:
        overall: Metric name -> mean over all evaluated queries (see :func:`metric_keys`).
        head: Same keys, over queries whose class is a head class (NaN when there are none).
        tail: Same keys, over queries whose class is a tail class (NaN when there are none).
        n_queries: Evaluated queries (those with at least one relevant gallery item).
        n_queries_head: Evaluated queries of head classes.
        n_queries_tail: Evaluated queries of tail classes.
        n_skipped_no_relevant: Queries skipped because no relevant item remained after exclusions.
        ks: Cut-offs used for the @k metrics.
        head_classes: The head classes used for the split (sorted).
    """

    overall: dict[str, float]
    head: dict[str, float]
    tail: dict[str, float]
    n_queries: int
    n_queries_head: int
    n_queries_tail: int
    n_skipped_no_relevant: int
    ks: tuple[int, ...]
    head_classes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; NaN metrics (empty buckets) become ``None``."""

        def clean(d: dict[str, float]) -> dict[str, float | None]:
            return {k: (None if math.isnan(v) else float(v)) for k, v in d.items()}

        return {
            "overall": clean(self.overall),
            "head": clean(self.head),
            "tail": clean(self.tail),
            "n_queries": self.n_queries,
            "n_queries_head": self.n_queries_head,
            "n_queries_tail": self.n_queries_tail,
            "n_skipped_no_relevant": self.n_skipped_no_relevant,
            "ks": list(self.ks),
            "head_classes": list(self.head_classes),
        }


def metric_keys(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """Metric names in report order: ``map``, ``recall@k``..., ``recall_all@k``..., ``mrr@k``...."""
    ks = _check_ks(ks)
    return ["map"] + [f"recall@{k}" for k in ks] + [f"recall_all@{k}" for k in ks] + [f"mrr@{k}" for k in ks]


def split_head_tail(labels: Sequence[str], head_share: float = 0.5) -> set[str]:
    """Head classes of a label list.

    Rule: count figures per class, sort classes by count descending (ties by class name ascending), and take the
    smallest prefix of that order whose figures make up at least ``head_share`` of all figures. Those classes are the
    head; every other class (including classes absent from ``labels``) is tail.
    Example: counts a:5 b:3 c:1 d:1 with ``head_share=0.5`` -> ``{"a"}`` (5/10 >= 0.5).

    Args:
        labels: One class label per figure.
        head_share: Share of figures the head must hold, in (0, 1].

    Returns:
        The set of head classes (empty for an empty list).
    """
    if not 0.0 < head_share <= 1.0:
        raise ValueError(f"head_share must be in (0, 1], got {head_share}")
    counts = Counter(labels)
    total = sum(counts.values())
    head: set[str] = set()
    held = 0
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if held >= head_share * total - 1e-9:
            break
        head.add(name)
        held += n
    return head


def average_precision(ranked_relevance: Sequence[bool], n_relevant: int) -> float:
    """AP of one ranked list: ``(1/n_relevant) * sum over relevant ranks r of precision@r``.

    With a truncated list this is AP@N (relevant items beyond the list contribute 0).

    Args:
        ranked_relevance: Relevance flag of each ranked item, best first.
        n_relevant: Total number of relevant items for the query (the denominator), >= hits in the list.

    Returns:
        AP in [0, 1]; 0.0 when ``n_relevant`` is 0.
    """
    rel = np.asarray(ranked_relevance, dtype=bool).ravel()
    hits = int(rel.sum())
    if hits > n_relevant:
        raise ValueError(f"ranked list holds {hits} relevant items but n_relevant is {n_relevant}")
    if n_relevant <= 0:
        return 0.0
    ranks = np.flatnonzero(rel) + 1
    return float(np.sum(np.arange(1, hits + 1) / ranks) / n_relevant)


class EvalOptions(TypedDict, total=False):
    """Options shared by :func:`evaluate_similarity` and :func:`evaluate_embeddings` (see the former's docstring)."""

    query_ids: Sequence[Hashable] | None
    gallery_ids: Sequence[Hashable] | None
    query_patents: Sequence[Hashable] | None
    gallery_patents: Sequence[Hashable] | None
    exclude_same_patent: bool
    ks: Sequence[int]
    head_classes: set[str] | None
    head_share: float


def evaluate_similarity(
    sim: np.ndarray,
    query_labels: Sequence[str],
    gallery_labels: Sequence[str],
    *,
    chunk_rows: int | None = None,
    **options: Unpack[EvalOptions],
) -> RetrievalReport:
    """Evaluate a (Q, G) score matrix (higher = better) by ranking the whole gallery for every query.

    Args:
        sim: Scores, shape (Q, G).
        query_labels: Class label of each query (Q).
        gallery_labels: Class label of each gallery item (G).
        query_ids: Figure ids of the queries; with ``gallery_ids`` a gallery item with the query's id is excluded.
        gallery_ids: Figure ids of the gallery items.
        query_patents: Patent id of each query (needed with ``exclude_same_patent``).
        gallery_patents: Patent id of each gallery item (needed with ``exclude_same_patent``).
        exclude_same_patent: Exclude all gallery items of the query's patent.
        ks: Cut-offs for the @k metrics.
        head_classes: Head classes; None computes them with :func:`split_head_tail` over ``gallery_labels``
            (query classes absent from the gallery are tail).
        head_share: Share used when computing the head classes.
        chunk_rows: Query rows ranked at once (default: bounded to about 2M scores per chunk).

    Returns:
        The :class:`RetrievalReport`.
    """
    sim = np.asarray(sim)
    if sim.ndim != 2:
        raise ValueError(f"sim must be 2-D (queries, gallery), got shape {sim.shape}")
    n_q, n_g = sim.shape
    rows = chunk_rows or max(1, _CHUNK_ELEMENTS // max(n_g, 1))

    def chunks() -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, n_q, rows):
            yield start, sim[start : start + rows]

    return _evaluate_chunks(chunks(), n_q, n_g, query_labels, gallery_labels, **options)


def evaluate_embeddings(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    query_labels: Sequence[str],
    gallery_labels: Sequence[str],
    *,
    chunk_rows: int | None = None,
    **options: Unpack[EvalOptions],
) -> RetrievalReport:
    """Evaluate embeddings by cosine similarity (dot product of L2-normalised rows), computed chunk by chunk.

    Args:
        query_emb: Query embeddings, shape (Q, D).
        gallery_emb: Gallery embeddings, shape (G, D).
        query_labels: See :func:`evaluate_similarity`; all other arguments are passed through to the same logic.
        gallery_labels: Class label of each gallery item.
        query_ids: Figure ids of the queries.
        gallery_ids: Figure ids of the gallery items.
        query_patents: Patent id of each query.
        gallery_patents: Patent id of each gallery item.
        exclude_same_patent: Exclude all gallery items of the query's patent.
        ks: Cut-offs for the @k metrics.
        head_classes: Head classes (None: computed from ``gallery_labels``).
        head_share: Share used when computing the head classes.
        chunk_rows: Query rows scored and ranked at once.

    Returns:
        The :class:`RetrievalReport`.
    """
    q = _l2_normalise(query_emb, "query_emb")
    g = _l2_normalise(gallery_emb, "gallery_emb")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"embedding sizes differ: query_emb has {q.shape[1]} dims, gallery_emb {g.shape[1]}")
    n_q, n_g = q.shape[0], g.shape[0]
    rows = chunk_rows or max(1, _CHUNK_ELEMENTS // max(n_g, 1))

    def chunks() -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, n_q, rows):
            yield start, q[start : start + rows] @ g.T

    return _evaluate_chunks(chunks(), n_q, n_g, query_labels, gallery_labels, **options)


def evaluate_rankings(
    ranked_relevance: Sequence[Sequence[bool]],
    n_relevant: Sequence[int],
    query_labels: Sequence[str],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    head_classes: set[str] | None = None,
    head_share: float = 0.5,
) -> RetrievalReport:
    """Evaluate ranked result lists, e.g. a truncated top-N per query from a vector store.

    The lists must already exclude the query itself (and same-patent items where wanted). With lists truncated at
    N, ``map`` is AP@N: relevant items below the cut-off add 0 while ``n_relevant`` stays the denominator;
    ``recall_all@k`` likewise divides by ``n_relevant``. Metrics at k <= N equal those of a full ranking.

    Args:
        ranked_relevance: Per query, the relevance flag of each returned item, best first.
        n_relevant: Per query, the total number of relevant gallery items (after exclusions).
        query_labels: Class label of each query (decides head/tail).
        ks: Cut-offs for the @k metrics.
        head_classes: Head classes; None computes them with :func:`split_head_tail` over ``query_labels``.
        head_share: Share used when computing the head classes.

    Returns:
        The :class:`RetrievalReport`.
    """
    ks = _check_ks(ks)
    n_q = len(ranked_relevance)
    n_rel = np.asarray(n_relevant, dtype=np.int64).ravel()
    if len(n_rel) != n_q or len(query_labels) != n_q:
        raise ValueError(
            f"length mismatch: {n_q} ranked lists, {len(n_rel)} n_relevant values, {len(query_labels)} query labels"
        )
    width = max((len(r) for r in ranked_relevance), default=0)
    rel = np.zeros((n_q, width), dtype=bool)
    for i, r in enumerate(ranked_relevance):
        row = np.asarray(r, dtype=bool).ravel()
        rel[i, : len(row)] = row
    hits = rel.sum(axis=1)
    bad = np.flatnonzero(hits > n_rel)
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"query {i}: ranked list holds {int(hits[i])} relevant items but n_relevant is {int(n_rel[i])}"
        )
    ranks = np.broadcast_to(np.arange(1, width + 1, dtype=np.int64), rel.shape)
    per_query = _per_query_metrics(rel, ranks, n_rel, ks)
    if head_classes is None:
        head_classes = split_head_tail(list(query_labels), head_share)
    return _aggregate(per_query, n_rel > 0, list(query_labels), head_classes, ks)


# --- internals ---


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(k) for k in ks)
    if not out or any(k < 1 for k in out):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    return tuple(sorted(set(out)))


def _l2_normalise(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dims), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(~(norms[:, 0] > 0))
    if len(zero):
        raise ValueError(f"{name} has {len(zero)} rows with zero or non-finite norm (first: row {int(zero[0])})")
    return x / norms


def _encode(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Map the values of two sequences to shared integer codes."""
    codes: dict[Hashable, int] = {}
    ca = np.fromiter((codes.setdefault(v, len(codes)) for v in a), dtype=np.int64, count=len(a))
    cb = np.fromiter((codes.setdefault(v, len(codes)) for v in b), dtype=np.int64, count=len(b))
    return ca, cb


def _check_len(name: str, values: Sequence[Any] | None, n: int) -> None:
    if values is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries, expected {n}")


def _per_query_metrics(
    rel_sorted: np.ndarray, ranks: np.ndarray, n_rel: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Metrics per query from ranked relevance flags (best first) and the rank of each position.

    Positions that are excluded items carry ``rel_sorted=False``; ``ranks`` counts only non-excluded positions.
    Queries with ``n_rel == 0`` get NaN.
    """
    n_q = rel_sorted.shape[0]
    denom = np.where(n_rel > 0, n_rel, 1).astype(np.float64)
    cum_rel = np.cumsum(rel_sorted, axis=1, dtype=np.int64)
    prec = np.where(rel_sorted, cum_rel / np.maximum(ranks, 1), 0.0)
    out: dict[str, np.ndarray] = {"map": prec.sum(axis=1) / denom}
    first_rank = np.full(n_q, np.inf)
    if rel_sorted.shape[1]:
        has_hit = rel_sorted.any(axis=1)
        first_pos = rel_sorted.argmax(axis=1)
        first_rank[has_hit] = ranks[np.arange(n_q), first_pos][has_hit]
    for k in ks:
        hits_k = np.sum(rel_sorted & (ranks <= k), axis=1)
        out[f"recall@{k}"] = (hits_k > 0).astype(np.float64)
        out[f"recall_all@{k}"] = hits_k / denom
        out[f"mrr@{k}"] = np.where(first_rank <= k, 1.0 / first_rank, 0.0)
    skipped = n_rel <= 0
    for v in out.values():
        v[skipped] = np.nan
    return {k: out[k] for k in metric_keys(ks)}


def _aggregate(
    per_query: dict[str, np.ndarray],
    valid: np.ndarray,
    query_labels: list[str],
    head_classes: set[str],
    ks: tuple[int, ...],
) -> RetrievalReport:
    is_head = np.fromiter((lab in head_classes for lab in query_labels), dtype=bool, count=len(query_labels))

    def mean(mask: np.ndarray) -> dict[str, float]:
        n = int(mask.sum())
        return {k: (float(v[mask].mean()) if n else float("nan")) for k, v in per_query.items()}

    head_mask, tail_mask = valid & is_head, valid & ~is_head
    return RetrievalReport(
        overall=mean(valid),
        head=mean(head_mask),
        tail=mean(tail_mask),
        n_queries=int(valid.sum()),
        n_queries_head=int(head_mask.sum()),
        n_queries_tail=int(tail_mask.sum()),
        n_skipped_no_relevant=int((~valid).sum()),
        ks=ks,
        head_classes=tuple(sorted(head_classes, key=str)),
    )


def _evaluate_chunks(
    chunks: Iterator[tuple[int, np.ndarray]],
    n_q: int,
    n_g: int,
    query_labels: Sequence[str],
    gallery_labels: Sequence[str],
    *,
    query_ids: Sequence[Hashable] | None = None,
    gallery_ids: Sequence[Hashable] | None = None,
    query_patents: Sequence[Hashable] | None = None,
    gallery_patents: Sequence[Hashable] | None = None,
    exclude_same_patent: bool = False,
    ks: Sequence[int] = DEFAULT_KS,
    head_classes: set[str] | None = None,
    head_share: float = 0.5,
) -> RetrievalReport:
    ks = _check_ks(ks)
    _check_len("query_labels", query_labels, n_q)
    _check_len("gallery_labels", gallery_labels, n_g)
    _check_len("query_ids", query_ids, n_q)
    _check_len("gallery_ids", gallery_ids, n_g)
    _check_len("query_patents", query_patents, n_q)
    _check_len("gallery_patents", gallery_patents, n_g)
    if (query_ids is None) != (gallery_ids is None):
        raise ValueError("query_ids and gallery_ids must be given together (self-exclusion compares them)")
    if exclude_same_patent and (query_patents is None or gallery_patents is None):
        raise ValueError("exclude_same_patent=True needs both query_patents and gallery_patents")

    q_lab, g_lab = _encode(query_labels, gallery_labels)
    ids = _encode(query_ids, gallery_ids) if query_ids is not None and gallery_ids is not None else None
    pats = _encode(query_patents, gallery_patents) if exclude_same_patent else None  # type: ignore[arg-type]

    per_query: dict[str, np.ndarray] = {k: np.empty(n_q, dtype=np.float64) for k in metric_keys(ks)}
    n_rel_all = np.zeros(n_q, dtype=np.int64)
    for start, block in chunks:
        block = np.asarray(block)
        if not np.issubdtype(block.dtype, np.floating):
            block = block.astype(np.float64)
        if np.isnan(block).any():
            raise ValueError(f"similarity scores contain NaN (query rows {start}..{start + len(block) - 1})")
        sl = slice(start, start + len(block))
        excl = np.zeros(block.shape, dtype=bool)
        if ids is not None:
            excl |= ids[1][None, :] == ids[0][sl, None]
        if pats is not None:
            excl |= pats[1][None, :] == pats[0][sl, None]
        rel = (g_lab[None, :] == q_lab[sl, None]) & ~excl
        order = np.argsort(-block, axis=1, kind="stable")  # ties: lower gallery index first
        rel_sorted = np.take_along_axis(rel, order, axis=1)
        ranks = np.cumsum(~np.take_along_axis(excl, order, axis=1), axis=1, dtype=np.int64)
        n_rel = rel.sum(axis=1)
        n_rel_all[sl] = n_rel
        for k, v in _per_query_metrics(rel_sorted, ranks, n_rel, ks).items():
            per_query[k][sl] = v
    if head_classes is None:
        head_classes = split_head_tail(list(gallery_labels), head_share)
    return _aggregate(per_query, n_rel_all > 0, list(query_labels), head_classes, ks)
