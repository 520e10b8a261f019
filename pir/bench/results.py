"""Result types of the benchmarks (one method in one mode on one dataset; a whole run). No heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pir.core.metrics import RetrievalReport

if TYPE_CHECKING:
    from pir.bench.datasets import BenchSet

Mode = Literal["image", "text", "image+text"]
MODES: tuple[Mode, ...] = ("image", "text", "image+text")


@dataclass
class MethodResult:
    """Retrieval quality of one method (encoder) in one query mode on one dataset.

    Attributes:
        method: Method label (``zero-shot``, an encoder directory name, ...).
        mode: ``image`` (the drawing), ``text`` (the query's words) or ``image+text`` (both, fused inside Qdrant).
        encoder: Encoder name; ``encoder_version`` its content hash; ``dim`` its embedding size.
        report: The primary metrics (from the store; ``map`` from the exact ranking when the store was not asked
            for the full ranking and an exact ranking exists, i.e. in ``image`` mode).
        exact: Metrics of the exact numpy ranking of the same image embeddings (``image`` mode only).
        curve: Recall@K (hit rate) for K = 1..20 from the store ranking.
        depth: Results fetched from the store per query; ``full_ranking`` when that is the whole gallery.
        query_text: What the query's words were (``title``, ``caption``, ``title+caption``, ``paraphrase``; None in
            ``image`` mode).
        enrich: The gallery's enrichment level (``none``, ``aliases``, ``full``; ``-`` where the row does not
            depend on it: ``image`` mode and ``title-only``).
        intervals: Metric -> bootstrap confidence interval ``(low, high)`` of the overall value (per-query
            resampling, :func:`pir.bench.metrics.bootstrap_ci`).
        query_keys: The evaluated queries (``patent/figure``), in order: rows of one dataset share them.
        n_queries_not_paraphrased: ``paraphrase`` words: queries that kept their title (no alias found).
    """

    method: str
    encoder: str
    encoder_version: str
    dim: int
    report: RetrievalReport
    exact: RetrievalReport | None
    curve: dict[int, float]
    depth: int
    full_ranking: bool
    agreement_max_abs_diff: float | None
    store_backend: str
    n_embedded_new: int
    n_embedded_cached: int
    n_failed_images: int
    store_map_at_k: float | None
    mode: Mode = "image"
    query_text: str | None = None
    n_queries_without_words: int = 0
    enrich: str = "-"
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_queries_not_paraphrased: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    query_keys: list[str] = field(default_factory=list, repr=False)
    # Kept in memory for plots (not serialised).
    rankings: list[list[int]] = field(default_factory=list, repr=False)
    query_items: list[int] = field(default_factory=list, repr=False)
    embeddings: np.ndarray | None = field(default=None, repr=False)
    embedded_items: list[int] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        """``method`` in image mode, else ``method [mode, words, enrichment]`` (file names, plot legends)."""
        if self.mode == "image":
            return self.method
        extra = ", ".join(x for x in (self.query_text, None if self.enrich == "-" else self.enrich) if x)
        mode = self.mode if self.method != "title-only" else "cosine"
        return f"{self.method} [{mode}{', ' + extra if extra else ''}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without rankings and embeddings)."""
        exact = self.exact is not None
        return {
            "method": self.method,
            "mode": self.mode,
            "query_text": self.query_text,
            "enrich": self.enrich,
            "n_queries": self.report.n_queries,
            "intervals": {m: list(v) for m, v in self.intervals.items()},
            "n_queries_not_paraphrased": self.n_queries_not_paraphrased,
            "encoder": self.encoder,
            "encoder_version": self.encoder_version,
            "dim": self.dim,
            "metrics": self.report.to_dict(),
            "exact_metrics": self.exact.to_dict() if self.exact is not None else None,
            "recall_curve": {str(k): v for k, v in self.curve.items()},
            "store_depth": self.depth,
            "full_ranking": self.full_ranking,
            "map_source": "store" if self.full_ranking else ("exact" if exact else f"store@{self.depth}"),
            "store_map_at_k": self.store_map_at_k,
            "agreement_max_abs_diff": self.agreement_max_abs_diff,
            "store_backend": self.store_backend,
            "n_embedded_new": self.n_embedded_new,
            "n_embedded_cached": self.n_embedded_cached,
            "n_failed_images": self.n_failed_images,
            "n_queries_without_words": self.n_queries_without_words,
            "seconds": self.seconds,
        }


@dataclass
class BenchRun:
    """Everything one bench run measured.

    Attributes:
        datasets: The evaluated datasets (their :meth:`BenchSet.summary`).
        results: Dataset name -> one :class:`MethodResult` per method and mode.
        sets: Dataset name -> the :class:`BenchSet` (for plots; not serialised).
        skipped: Datasets (or dataset/method/mode) that could not be evaluated, with the reason.
        environment: Device, threads, versions.
        warnings: What a reader of the numbers must know (e.g. class labels taken from the query's own words).
        out: Report folder (None when no report was written).
    """

    datasets: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, list[MethodResult]] = field(default_factory=dict)
    sets: dict[str, BenchSet] = field(default_factory=dict, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    ks: tuple[int, ...] = (1, 5, 10)
    out: Path | None = None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready results (``results.json``)."""
        return {
            "environment": self.environment,
            "ks": list(self.ks),
            "datasets": self.datasets,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "results": {name: [r.to_dict() for r in rs] for name, rs in self.results.items()},
        }
