"""Evaluate one encoder on one :class:`~pir.bench.datasets.BenchSet` through the real vector store.

Per method: the images are embedded through the :class:`~pir.bench.cache.EmbeddingCache`, the gallery is upserted
into a dedicated collection (Qdrant Edge in ``<data_dir>/bench/stores/`` by default, optimised like a real ingest;
or qdrant-client's ``:memory:`` store), and every query vector is searched in that store, excluding the query figure
itself and, for class-level relevance, its whole patent (``SearchFilter(exclude_patents=[...])``).

mAP over all relevant items needs the full ranking. The store is therefore searched with ``k`` = gallery size when
the gallery holds at most :data:`FULL_RANKING_MAX` figures (then every metric, mAP included, comes from the store).
For larger galleries it is searched with ``k`` (default 100): Recall@K / MRR@K come from the store and ``map`` from
the exact numpy ranking of the same embeddings (the store's own AP@k is kept as ``store_map_at_k``). Both the
store-based and the exact embedding metrics are always computed; ``agreement_max_abs_diff`` is the largest gap
between them over the metrics the store ranking covers (0 for an exact store, small for HNSW).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pir.bench.cache import EmbeddingCache, embed_paths
from pir.bench.datasets import BenchSet
from pir.bench.metrics import RetrievalReport, evaluate_embeddings, evaluate_rankings, split_head_tail

if TYPE_CHECKING:
    from pir.config import Settings
    from pir.encoder.model import ImageEncoder
    from pir.search.store import VectorStore

log = logging.getLogger(__name__)

FULL_RANKING_MAX = 2000
DEFAULT_DEPTH = 100
CURVE_MAX_K = 20
StoreKind = Literal["edge", "memory"]


@dataclass
class MethodResult:
    """Retrieval quality of one method (encoder) on one dataset.

    Attributes:
        method: Method label (``zero-shot``, an encoder directory name, ...).
        encoder: Encoder name; ``encoder_version`` its content hash; ``dim`` its embedding size.
        report: The primary metrics (from the store; ``map`` from the exact ranking when the store was not asked
            for the full ranking).
        exact: Metrics of the exact numpy ranking of the same embeddings.
        curve: Recall@K (hit rate) for K = 1..20 from the store ranking.
        depth: Results fetched from the store per query; ``full_ranking`` when that is the whole gallery.
    """

    method: str
    encoder: str
    encoder_version: str
    dim: int
    report: RetrievalReport
    exact: RetrievalReport
    curve: dict[int, float]
    depth: int
    full_ranking: bool
    agreement_max_abs_diff: float
    store_backend: str
    n_embedded_new: int
    n_embedded_cached: int
    n_failed_images: int
    store_map_at_k: float | None
    seconds: dict[str, float] = field(default_factory=dict)
    # Kept in memory for plots (not serialised).
    rankings: list[list[int]] = field(default_factory=list, repr=False)
    query_items: list[int] = field(default_factory=list, repr=False)
    embeddings: np.ndarray | None = field(default=None, repr=False)
    embedded_items: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without rankings and embeddings)."""
        return {
            "method": self.method,
            "encoder": self.encoder,
            "encoder_version": self.encoder_version,
            "dim": self.dim,
            "metrics": self.report.to_dict(),
            "exact_metrics": self.exact.to_dict(),
            "recall_curve": {str(k): v for k, v in self.curve.items()},
            "store_depth": self.depth,
            "full_ranking": self.full_ranking,
            "map_source": "store" if self.full_ranking else "exact",
            "store_map_at_k": self.store_map_at_k,
            "agreement_max_abs_diff": self.agreement_max_abs_diff,
            "store_backend": self.store_backend,
            "n_embedded_new": self.n_embedded_new,
            "n_embedded_cached": self.n_embedded_cached,
            "n_failed_images": self.n_failed_images,
            "seconds": self.seconds,
        }


def _labels(bench: BenchSet, idx: Sequence[int]) -> list[str]:
    """Labels of items; unlabelled items get a unique label so that they are never relevant."""
    return [bench.items[i].label or f"\x00unlabelled:{i}" for i in idx]


def _collection_name(dataset: str, version: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)[:80]
    return f"bench_{safe}_{version}"


def open_bench_store(settings: Settings, collection: str, kind: StoreKind = "edge") -> VectorStore:
    """A fresh, dedicated collection for one benchmark run (an old one of the same name is removed first)."""
    q = settings.qdrant
    if kind == "memory":
        from qdrant_client import QdrantClient

        from pir.search.server import ServerStore

        return ServerStore(
            QdrantClient(":memory:"),
            collection,
            hnsw_ef=q.hnsw_ef,
            exact_filter_threshold=q.exact_filter_threshold,
            location=":memory:",
            owns_client=True,
        )
    from pir.search.edge import EdgeStore

    path = Path(settings.data_dir) / "bench" / "stores" / collection
    if path.exists():
        shutil.rmtree(path)
    return EdgeStore(
        path,
        collection,
        hnsw_ef=q.hnsw_ef,
        exact_filter_threshold=q.exact_filter_threshold,
        hnsw_m=q.hnsw_m,
        hnsw_ef_construct=q.hnsw_ef_construct,
    )


def search_rankings(
    store: VectorStore,
    bench: BenchSet,
    q_idx: Sequence[int],
    q_vecs: np.ndarray,
    g_pos: dict[str, int],
    depth: int,
    *,
    batch: int = 128,
) -> list[list[int]]:
    """Ranked gallery positions per query from the store, the query itself (and its patent) excluded.

    Args:
        store: Store holding the gallery.
        bench: The dataset.
        q_idx: Item index of each query.
        q_vecs: Query vectors (rows match ``q_idx``).
        g_pos: Point id -> position in the gallery.
        depth: Results kept per query (after exclusions).
        batch: Queries per batched request when no per-query filter is needed.
    """
    from pir.search.store import SearchFilter

    out: list[list[int]] = []
    fetch = depth + 1  # room for the query itself (leave-one-out)
    if bench.exclude_same_patent:
        hits_per_query = [
            store.search(q_vecs[j], fetch, filter=SearchFilter(exclude_patents=[bench.items[i].patent_id]))
            for j, i in enumerate(q_idx)
        ]
    else:
        hits_per_query = []
        for s in range(0, len(q_idx), batch):
            hits_per_query.extend(store.search_batch(q_vecs[s : s + batch], fetch))
    for j, i in enumerate(q_idx):
        own = bench.items[i].point_id
        ranked = [g_pos[h.id] for h in hits_per_query[j] if h.id != own and h.id in g_pos]
        out.append(ranked[:depth])
    return out


def evaluate_method(
    bench: BenchSet,
    encoder: ImageEncoder,
    settings: Settings,
    cache: EmbeddingCache,
    *,
    method: str,
    k: int | None = None,
    ks: Sequence[int] = (1, 5, 10),
    store_kind: StoreKind = "edge",
    optimize: bool = True,
    keep_embeddings: bool = True,
) -> MethodResult:
    """Embed (through the cache), ingest the gallery into the store, search every query and score the rankings.

    Args:
        bench: The dataset.
        encoder: The encoder.
        settings: Settings (data dir for the Edge store, Qdrant tuning, batch size).
        cache: Embedding cache.
        method: Method label for the report.
        k: Store search depth; None = the whole gallery up to :data:`FULL_RANKING_MAX` figures, else 100.
        ks: Cut-offs of the reported @k metrics.
        store_kind: ``edge`` (Qdrant Edge on disk) or ``memory`` (qdrant-client ``:memory:``).
        optimize: Build the HNSW index after upserting (as ``pir ingest`` does).
        keep_embeddings: Keep embeddings and rankings on the result for plots.
    """
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    needed = sorted(set(bench.queries) | set(bench.gallery))
    emb = embed_paths(encoder, [bench.items[i].path for i in needed], cache, batch_size=settings.encoder.batch_size)
    times["embed"] = time.perf_counter() - t0
    row_of = {item: r for r, item in enumerate(needed) if emb.ok[r]}
    q_idx = [i for i in bench.queries if i in row_of]
    g_idx = [i for i in bench.gallery if i in row_of]
    if not q_idx or not g_idx:
        raise ValueError(f"{bench.name}: no query or no gallery image could be embedded ({len(emb.failures)} failed)")
    q_vecs = emb.vectors[[row_of[i] for i in q_idx]]
    g_vecs = emb.vectors[[row_of[i] for i in g_idx]]
    q_lab, g_lab = _labels(bench, q_idx), _labels(bench, g_idx)
    q_keys = [bench.items[i].key for i in q_idx]
    g_keys = [bench.items[i].key for i in g_idx]
    q_pat = [bench.items[i].patent_id for i in q_idx]
    g_pat = [bench.items[i].patent_id for i in g_idx]
    head = split_head_tail([bench.items[i].label for i in g_idx if bench.items[i].label])  # type: ignore[misc]

    t1 = time.perf_counter()
    exact = evaluate_embeddings(
        q_vecs,
        g_vecs,
        q_lab,
        g_lab,
        query_ids=q_keys,
        gallery_ids=g_keys,
        query_patents=q_pat,
        gallery_patents=g_pat,
        exclude_same_patent=bench.exclude_same_patent,
        ks=ks,
        head_classes=head,
    )
    times["exact"] = time.perf_counter() - t1

    depth = k or (len(g_idx) if len(g_idx) <= FULL_RANKING_MAX else DEFAULT_DEPTH)
    depth = min(depth, len(g_idx))
    full = depth >= len(g_idx)
    t2 = time.perf_counter()
    store = open_bench_store(settings, _collection_name(bench.name, encoder.version), store_kind)
    try:
        store.ensure_collection(encoder.dim, encoder=f"{encoder.name}@{encoder.version}")
        payloads = [
            {
                "patent_id": bench.items[i].patent_id,
                "figure_id": bench.items[i].figure_id,
                "class_label": bench.items[i].label,
                "image_path": str(bench.items[i].path),
            }
            for i in g_idx
        ]
        store.upsert([bench.items[i].point_id for i in g_idx], g_vecs, payloads)
        if optimize:
            store.optimize()
        times["ingest"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        g_pos = {bench.items[i].point_id: p for p, i in enumerate(g_idx)}
        rankings = search_rankings(store, bench, q_idx, q_vecs, g_pos, max(depth, min(CURVE_MAX_K, len(g_idx))))
        times["search"] = time.perf_counter() - t3
        backend = f"{store.backend}{'-memory' if store_kind == 'memory' else ''}"
    finally:
        store.close()
        if store_kind == "edge":
            shutil.rmtree(Path(settings.data_dir) / "bench" / "stores" / store.collection, ignore_errors=True)

    # Relevance of each ranked item and the number of relevant gallery items per query (after exclusions).
    g_lab_arr = np.asarray(g_lab, dtype=object)
    g_pat_arr = np.asarray(g_pat, dtype=object)
    g_key_arr = np.asarray(g_keys, dtype=object)
    rel_lists: list[list[bool]] = []
    n_rel: list[int] = []
    for j, ranked in enumerate(rankings):
        rel_lists.append([g_lab[p] == q_lab[j] for p in ranked[:depth]])
        mask = (g_lab_arr == q_lab[j]) & (g_key_arr != q_keys[j])
        if bench.exclude_same_patent:
            mask &= g_pat_arr != q_pat[j]
        n_rel.append(int(mask.sum()))
    store_rep = evaluate_rankings(rel_lists, n_rel, q_lab, ks=ks, head_classes=head)
    curve_ks = list(range(1, min(CURVE_MAX_K, len(g_idx)) + 1))
    curve_rel = [[g_lab[p] == q_lab[j] for p in ranked] for j, ranked in enumerate(rankings)]
    curve_rep = evaluate_rankings(curve_rel, n_rel, q_lab, ks=curve_ks, head_classes=head)
    curve = {kk: curve_rep.overall[f"recall@{kk}"] for kk in curve_ks}

    store_map = store_rep.overall["map"]
    compare = [m for m in store_rep.overall if m != "map" or full]
    diffs = [
        abs(getattr(store_rep, part)[m] - getattr(exact, part)[m])
        for part in ("overall", "head", "tail")
        for m in compare
        if not (np.isnan(getattr(store_rep, part)[m]) or np.isnan(getattr(exact, part)[m]))
    ]
    report = store_rep
    if not full:  # mAP over all relevant items needs the full ranking: take it from the exact numpy ranking
        report = RetrievalReport(
            overall={**store_rep.overall, "map": exact.overall["map"]},
            head={**store_rep.head, "map": exact.head["map"]},
            tail={**store_rep.tail, "map": exact.tail["map"]},
            n_queries=store_rep.n_queries,
            n_queries_head=store_rep.n_queries_head,
            n_queries_tail=store_rep.n_queries_tail,
            n_skipped_no_relevant=store_rep.n_skipped_no_relevant,
            ks=store_rep.ks,
            head_classes=store_rep.head_classes,
        )
    times["total"] = time.perf_counter() - t0
    res = MethodResult(
        method=method,
        encoder=encoder.name,
        encoder_version=encoder.version,
        dim=encoder.dim,
        report=report,
        exact=exact,
        curve=curve,
        depth=depth,
        full_ranking=full,
        agreement_max_abs_diff=float(max(diffs, default=0.0)),
        store_backend=backend,
        n_embedded_new=emb.n_new,
        n_embedded_cached=emb.n_cached,
        n_failed_images=len(emb.failures),
        store_map_at_k=None if full else float(store_map),
        seconds={k_: round(v, 3) for k_, v in times.items()},
    )
    if keep_embeddings:
        res.rankings = [[g_idx[p] for p in r[:CURVE_MAX_K]] for r in rankings]
        res.query_items = q_idx
        res.embedded_items = [i for i in needed if i in row_of]
        res.embeddings = emb.vectors[[row_of[i] for i in res.embedded_items]]
    log.info(
        "bench %s / %s: map %.3f R@1 %.3f (%d queries, %d new embeddings, %d cached)",
        bench.name,
        method,
        report.overall["map"],
        report.overall.get("recall@1", float("nan")),
        report.n_queries,
        emb.n_new,
        emb.n_cached,
    )
    return res
