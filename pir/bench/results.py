"""Result types of the benchmarks (one method in one mode on one dataset; a whole run). No heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pir.metrics import RetrievalReport

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
        query_text: What the query's words were (``title``, ``caption``, ``title+caption``; None in ``image`` mode).
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
    seconds: dict[str, float] = field(default_factory=dict)
    # Kept in memory for plots (not serialised).
    rankings: list[list[int]] = field(default_factory=list, repr=False)
    query_items: list[int] = field(default_factory=list, repr=False)
    embeddings: np.ndarray | None = field(default=None, repr=False)
    embedded_items: list[int] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        """``method`` in image mode, else ``method [mode]`` (file names, plot legends)."""
        return self.method if self.mode == "image" else f"{self.method} [{self.mode}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without rankings and embeddings)."""
        exact = self.exact is not None
        return {
            "method": self.method,
            "mode": self.mode,
            "query_text": self.query_text,
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready results (``results.json``)."""
        return {
            "environment": self.environment,
            "ks": list(self.ks),
            "datasets": self.datasets,
            "skipped": self.skipped,
            "results": {name: [r.to_dict() for r in rs] for name, rs in self.results.items()},
        }
