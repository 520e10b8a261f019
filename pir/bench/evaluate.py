"""Evaluate one encoder on one :class:`~pir.bench.datasets.BenchSet` through the product: the real store and the
real ingest batch function, in one or more query modes.

Per method: the images are embedded through the :class:`~pir.bench.cache.EmbeddingCache`; the gallery is stored
with the product's own code (:func:`pir.search.open_store` for the collection, :func:`pir.pipeline.enrich_batch` and
:func:`pir.pipeline.embed_and_upsert` for descriptions, payloads and every named vector), in a dedicated collection
(Qdrant Edge under the settings' store folder by default, or qdrant-client's ``:memory:`` store); then every query
is searched in that store once per mode:

- ``image``: the query drawing's vector;
- ``text``: the query's words (its title, and its figure caption where relevance is patent-level; see
  :func:`query_words`) through the hybrid search function (text + BM25 vectors fused inside Qdrant);
- ``image+text``: both, fused inside Qdrant by the same function.

Every query excludes the query figure itself and, for class-level relevance, its whole patent
(``SearchFilter(exclude_patents=[...])``, applied in every prefetch).

**No label leakage.** With class-level relevance the gallery is stored from figures stripped of every class field
(:func:`leak_free`: no class label, USPC/Locarno/CPC codes or class titles reach the enrichment, the payload words or
the text/BM25 vectors) and the query words are the title (or caption) only, never the label.

mAP over all relevant items needs the full ranking: the store is searched with ``k`` = gallery size when the gallery
holds at most :data:`FULL_RANKING_MAX` figures. For larger galleries it is searched with ``k`` (default 100): in
``image`` mode ``map`` then comes from the exact numpy ranking of the same embeddings (the store's AP@k is kept as
``store_map_at_k``); in the word modes, which have no exact reference, ``map`` is AP@k (``map_source`` says which).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pir.bench.cache import EmbeddingCache, cache_key, embed_paths
from pir.bench.datasets import BenchSet, Relevance
from pir.bench.metrics import CI_SEED, N_BOOTSTRAP, metric_intervals, per_query_metrics
from pir.bench.results import MODES, MethodResult, Mode
from pir.core.metrics import RetrievalReport, evaluate_embeddings, evaluate_rankings, split_head_tail
from pir.search import open_store
from pir.search.request import DEFAULT_FUSION, DEFAULT_TEXT_WEIGHT, SearchRequest
from pir.search.runtime import SearchRuntime
from pir.search.words import get_text_encoder, open_text_cache

if TYPE_CHECKING:
    from pir.core.config import Settings
    from pir.encoder.model import ImageEncoder
    from pir.ingest.schema import PatentFigure
    from pir.search.store import VectorStore

log = logging.getLogger(__name__)

FULL_RANKING_MAX = 2000
DEFAULT_DEPTH = 100
CURVE_MAX_K = 20
StoreKind = Literal["edge", "memory"]
QueryText = Literal["auto", "title", "caption", "title+caption", "paraphrase"]
QUERY_TEXTS: tuple[str, ...] = ("auto", "title", "caption", "title+caption", "paraphrase")
EnrichLevel = Literal["none", "aliases", "full"]
ENRICH_LEVELS: tuple[str, ...] = ("none", "aliases", "full")
#: Method label of the plain baseline row: query words vs each gallery figure's title, cosine of the frozen text
#: encoder; no store, no fusion, no enrichment, no class information.
TITLE_ONLY = "title-only"
#: Extra keys a reader may put in ``PatentFigure.extra`` that are kept for class-level relevance (no class facts).
_SAFE_EXTRA = ("sheet", "figures", "figure_mapping", "kind", "number_of_figures", "number_of_sheets")


def parse_modes(spec: str | Sequence[str]) -> tuple[Mode, ...]:
    """``"image,text,image+text"`` -> the modes, in order, de-duplicated (raises ValueError on an unknown one)."""
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p and p.strip()]
    bad = [p for p in parts if p not in MODES]
    if bad or not parts:
        raise ValueError(f"unknown mode(s) {', '.join(bad) or '(none)'}; choose from {', '.join(MODES)}")
    return tuple(dict.fromkeys(parts))  # type: ignore[arg-type]


class MemoTextEncoder:
    """The frozen text encoder with a memory of what it embedded: a bench asks the same query words in every words
    mode, enrichment level and method, and :func:`pir.search.service.search_hybrid` embeds them per query. Every
    other attribute is the wrapped encoder's (its ``name`` is checked against the collection's)."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._memo: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        """The wrapped ``encode``, each distinct text embedded once per bench run."""
        texts = list(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if todo:
            self._memo.update(zip(todo, self._encoder.encode(todo, **kwargs), strict=True))
        if not texts:
            return np.zeros((0, self._encoder.dim), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])


def parse_choices(spec: str | Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """``"a,b"`` (or a list, repeatable values joined) -> the values in order, de-duplicated; ValueError on an
    unknown one."""
    raw = [spec] if isinstance(spec, str) else list(spec)
    parts = [p.strip() for item in raw for p in str(item).split(",") if p.strip()]
    bad = [p for p in parts if p not in allowed]
    if bad or not parts:
        raise ValueError(f"unknown {what} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(parts))


def _same_name(a: str | None, b: str | None) -> bool:
    norm = [" ".join(re.sub(r"[^a-z0-9]+", " ", (x or "").lower()).split()) for x in (a, b)]
    return bool(norm[0]) and norm[0] == norm[1]


def leak_free(figure: PatentFigure, label: str | None = None) -> PatentFigure:
    """The figure without any class information (label, USPC/Locarno/CPC codes, unknown extra fields, and the
    object name when the object name is the class).

    What class-level relevance stores: the enrichment then runs without class titles and neither the payload's
    words nor the text/BM25 vectors can carry the label. In the DeepPatent2 layout the class *is* the object name
    (``label`` = the bench item's label, or the figure's own ``class_label``): the object name is blanked, so that
    enrichment takes the object from the title or caption (:func:`pir.enrich.inputs.object_name_of`).
    """
    extra = {k: v for k, v in figure.extra.items() if k in _SAFE_EXTRA}
    update: dict[str, Any] = {"class_label": None, "uspc": [], "locarno": [], "cpc": [], "extra": extra}
    if figure.object_name and (
        _same_name(figure.object_name, label) or _same_name(figure.object_name, figure.class_label)
    ):
        update["object_name"] = None
    return figure.model_copy(update=update)


def gallery_figures(bench: BenchSet, g_idx: Sequence[int]) -> list[PatentFigure]:
    """The gallery figures as the bench stores them: for class-level relevance :func:`leak_free` (with each item's
    label, so an object name that is the class is blanked too)."""
    figures = [bench.items[i].as_figure() for i in g_idx]
    if bench.relevance != "class":
        return figures
    return [leak_free(f, bench.items[i].label) for f, i in zip(figures, g_idx, strict=True)]


def _contains_label(words: str | None, label: str | None) -> bool:
    """Whether the class label appears, as whole words, in the query's words."""
    if not words or not label:
        return False
    norm = " " + " ".join(re.sub(r"[^a-z0-9]+", " ", words.lower()).split()) + " "
    lab = " ".join(re.sub(r"[^a-z0-9]+", " ", label.lower()).split())
    return bool(lab) and f" {lab} " in norm


def labelling_warnings(bench: BenchSet, q_idx: Sequence[int], words: dict[str, Sequence[str | None]]) -> list[str]:
    """Warnings for class-level relevance when the query's words and the class labels come from the same text.

    On DeepPatent2 the object name (the class) was extracted from the figure's title or caption, so a words query
    at class level measures that extraction, not retrieval. Elsewhere the share of queries whose words contain
    their own class label is reported when any do.
    """
    if bench.relevance != "class" or not words:
        return []
    out: list[str] = []
    if bench.protocol == "deeppatent2":
        out.append(
            f"{bench.name}: the class label is DeepPatent2's object name, which was extracted from each figure's title "
            "or caption; words-mode rows at class level measure that labelling, not retrieval (compare image mode)"
        )
    for how, ws in words.items():
        n = sum(_contains_label(w, bench.items[i].label) for i, w in zip(q_idx, ws, strict=True))
        if n:
            out.append(
                f"{bench.name}: query words '{how}' contain the query's own class label in {n} of {len(ws)} queries "
                "(labels and words come from the same text)"
            )
    return out


def query_words(figure: PatentFigure, how: QueryText, relevance: Relevance) -> str | None:
    """The words a query brings: its title (``auto`` adds the figure caption where relevance is patent-level;
    ``paraphrase``: the title with its object said another way, see :mod:`pir.bench.paraphrase`, else the title).

    The caption is the figure's own text (``FIG. 1 is a perspective view of ...``). Never the class label.
    """
    if how == "paraphrase":
        from pir.bench.paraphrase import paraphrase_title  # lazy: only the paraphrase query variant needs WordNet

        return paraphrase_title(figure.title) or (figure.title.strip() if figure.title else None)
    if how == "auto":
        how = "title" if relevance == "class" else "title+caption"
    parts = []
    if how in ("title", "title+caption") and figure.title:
        parts.append(figure.title.strip())
    if how in ("caption", "title+caption") and figure.description:
        parts.append(" ".join(figure.description.split()))
    text = ". ".join(p for p in parts if p)
    return text or None


def _collection_name(dataset: str, version: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)[:80]
    return f"bench_{safe}_{version}"


@contextmanager
def gallery_store(settings: Settings, collection: str, kind: StoreKind = "edge") -> Iterator[VectorStore]:
    """A fresh collection opened with the product's :func:`pir.search.open_store` (``memory``: qdrant-client
    ``:memory:``); an old one of the same name is removed first and the Edge folder is removed afterwards."""
    s = settings
    if kind == "memory":
        s = settings.model_copy(update={"qdrant": settings.qdrant.model_copy(update={"url": ":memory:"})})
    else:
        s = settings.model_copy(update={"qdrant": settings.qdrant.model_copy(update={"url": None})})
    path = s.store_dir / collection
    if kind == "edge" and path.exists():
        shutil.rmtree(path)
    store = open_store(s, collection=collection)
    try:
        yield store
    finally:
        store.close()
        if kind == "edge":
            shutil.rmtree(path, ignore_errors=True)


def ingest_gallery(
    store: VectorStore,
    figures: Sequence[PatentFigure],
    settings: Settings,
    encoder: ImageEncoder,
    vectors: dict[str, np.ndarray],
    *,
    enrich: bool = True,
    include_class: bool = True,
    optimize: bool = True,
) -> int:
    """Store the gallery as ``pir ingest`` does: the pipeline's collection set-up, enrichment of each batch and its
    batch function (payloads; image, text and words vectors). Image vectors already in ``vectors`` (figure key ->
    vector, from the bench cache) are handed over instead of embedding the image again. ``include_class=False``
    keeps class labels and class titles out of the text and words vectors. Returns the number of points stored."""
    from pir.pipeline import batched, embed_and_upsert, enrich_batch, ensure_collection  # lazy: start-up (tqdm)

    text_encoder = get_text_encoder(settings)
    ensure_collection(store, encoder, text_encoder)
    n = 0
    for batch in batched(figures, settings.worker.batch_size):
        if enrich:
            enrich_batch(batch, settings)
        res = embed_and_upsert(
            batch, settings, encoder, store, with_descriptions=enrich, text_encoder=text_encoder,
            include_class=include_class, vectors={f.key: vectors[f.key] for f in batch if f.key in vectors},
        )  # fmt: skip
        for f in res.failed:
            log.warning("bench: gallery figure %s not stored: %s", f.key, f.reason)
        n += len(res.ingested)
    if optimize:
        store.optimize()
    return n


def bench_request(mode: Mode, words: str | None, k: int, exclude_patent: str | None, **fusion: Any) -> SearchRequest:
    """The :class:`~pir.search.request.SearchRequest` of one bench query, as a searcher would send it (the image side
    is the query's cached embedding, given to :meth:`SearchRuntime.execute` beside the request)."""
    return SearchRequest(
        words=(words or "") if mode != "image" else "",
        k=k,
        exclude_patents=[exclude_patent] if exclude_patent else [],
        **fusion,
    )


def search_rankings(
    store: VectorStore,
    bench: BenchSet,
    mode: Mode,
    q_idx: Sequence[int],
    q_vecs: np.ndarray,
    q_words: Sequence[str | None],
    g_pos: dict[str, int],
    depth: int,
    settings: Settings,
    text_encoder: Any | None = None,
    **fusion: Any,
) -> list[list[int]]:
    """Ranked gallery positions per query through the product's :class:`~pir.search.runtime.SearchRuntime` (image
    only = the kNN on the ``image`` vector; words = ``text`` + ``words`` vectors; both = one query fused inside
    Qdrant). The query's own figure is dropped from its ranking and, for class relevance, its patent is excluded
    by the request. A query without words ranks nothing in ``text`` mode (``text_encoder``: e.g. a
    :class:`MemoTextEncoder`; default the settings')."""
    te = text_encoder or (get_text_encoder(settings) if mode != "image" else None)
    rt = SearchRuntime(settings, store=store, text_encoder=te)
    out: list[list[int]] = []
    for j, i in enumerate(q_idx):
        item = bench.items[i]
        words = q_words[j] if mode != "image" else None
        if mode == "text" and not words:
            out.append([])
            continue
        req = bench_request(mode, words, depth + 1, item.patent_id if bench.exclude_same_patent else None, **fusion)
        image = q_vecs[j] if mode != "text" else None
        hits = rt.execute(req, image_vector=image).results
        ranked = [g_pos[h.id] for h in hits if h.id != item.point_id and h.id in g_pos]
        out.append(ranked[:depth])
    return out


def score_rankings(
    bench: BenchSet,
    q_idx: Sequence[int],
    g_idx: Sequence[int],
    rankings: Sequence[Sequence[int]],
    depth: int,
    ks: Sequence[int],
    head: set[str],
) -> tuple[RetrievalReport, dict[int, float], dict[str, np.ndarray]]:
    """Metrics of store rankings (gallery positions), the Recall@K curve (K = 1..20) and the per-query values
    (:func:`pir.bench.metrics.per_query_metrics`, for the bootstrap intervals)."""
    q_lab, g_lab = _labels(bench, q_idx), _labels(bench, g_idx)
    g_lab_arr = np.asarray(g_lab, dtype=object)
    g_pat_arr = np.asarray([bench.items[i].patent_id for i in g_idx], dtype=object)
    g_key_arr = np.asarray([bench.items[i].key for i in g_idx], dtype=object)
    rel_lists: list[list[bool]] = []
    n_rel: list[int] = []
    for j, ranked in enumerate(rankings):
        q = bench.items[q_idx[j]]
        rel_lists.append([g_lab[p] == q_lab[j] for p in ranked[:depth]])
        mask = (g_lab_arr == q_lab[j]) & (g_key_arr != q.key)
        if bench.exclude_same_patent:
            mask &= g_pat_arr != q.patent_id
        n_rel.append(int(mask.sum()))
    report = evaluate_rankings(rel_lists, n_rel, q_lab, ks=ks, head_classes=head)
    per_query = per_query_metrics(rel_lists, n_rel, ks)
    curve_ks = list(range(1, min(CURVE_MAX_K, len(g_idx)) + 1))
    curve_rel = [[g_lab[p] == q_lab[j] for p in ranked] for j, ranked in enumerate(rankings)]
    curve_rep = evaluate_rankings(curve_rel, n_rel, q_lab, ks=curve_ks, head_classes=head)
    return report, {kk: curve_rep.overall[f"recall@{kk}"] for kk in curve_ks}, per_query


def title_only_rankings(
    bench: BenchSet,
    q_idx: Sequence[int],
    g_idx: Sequence[int],
    q_words: Sequence[str | None],
    depth: int,
    settings: Settings,
) -> list[list[int]]:
    """The plain baseline: each query's words against each gallery figure's title, cosine of the frozen text
    encoder (through the text-embedding cache), exact ranking in numpy; no store, no fusion, no enrichment and
    no class information. The same exclusions as the store queries (the query itself; its patent for class
    relevance); a gallery figure without a title ranks last, a query without words ranks nothing."""

    te = get_text_encoder(settings)
    titles = [" ".join((bench.items[i].title or "").split()) for i in g_idx]
    texts = list(dict.fromkeys([t for t in titles if t] + [w for w in q_words if w]))
    if not texts:
        return [[] for _ in q_idx]
    cache = open_text_cache(settings)
    try:
        emb = cache.encode(te, texts, batch_size=settings.text.batch_size) if cache else te.encode(texts)
    finally:
        if cache is not None:
            cache.close()
    emb = np.asarray(emb, dtype=np.float32)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    row = {t: r for r, t in enumerate(texts)}
    g_has = np.asarray([bool(t) for t in titles])
    g_mat = np.stack([emb[row[t]] if t else np.zeros(emb.shape[1], np.float32) for t in titles])
    g_key = np.asarray([bench.items[i].key for i in g_idx], dtype=object)
    g_pat = np.asarray([bench.items[i].patent_id for i in g_idx], dtype=object)
    out: list[list[int]] = []
    for i, w in zip(q_idx, q_words, strict=True):
        if not w:
            out.append([])
            continue
        sim = (g_mat @ emb[row[w]]).astype(np.float64)
        sim[~g_has] = -np.inf
        keep = g_key != bench.items[i].key
        if bench.exclude_same_patent:
            keep &= g_pat != bench.items[i].patent_id
        order = np.argsort(-sim, kind="stable")
        out.append([int(p) for p in order if keep[p]][:depth])
    return out


def _labels(bench: BenchSet, idx: Sequence[int]) -> list[str]:
    """Labels of items; unlabelled items get a unique label so that they are never relevant."""
    return [bench.items[i].label or f"\x00unlabelled:{i}" for i in idx]


def _agreement(store_rep: RetrievalReport, exact: RetrievalReport, full: bool) -> float:
    """Largest gap between store and exact metrics over what the store ranking covers."""
    compare = [m for m in store_rep.overall if m != "map" or full]
    diffs = [
        abs(getattr(store_rep, part)[m] - getattr(exact, part)[m])
        for part in ("overall", "head", "tail")
        for m in compare
        if not (np.isnan(getattr(store_rep, part)[m]) or np.isnan(getattr(exact, part)[m]))
    ]
    return float(max(diffs, default=0.0))


def _with_exact_map(store_rep: RetrievalReport, exact: RetrievalReport) -> RetrievalReport:
    """The store report with ``map`` taken from the exact ranking (the store was not asked for the full ranking)."""
    return dataclasses.replace(
        store_rep,
        overall={**store_rep.overall, "map": exact.overall["map"]},
        head={**store_rep.head, "map": exact.head["map"]},
        tail={**store_rep.tail, "map": exact.tail["map"]},
    )


def exact_report(
    bench: BenchSet, q_idx: list[int], g_idx: list[int], q_vecs: np.ndarray, g_vecs: np.ndarray, ks: Sequence[int]
) -> RetrievalReport:
    """Metrics of the exact numpy ranking of the image embeddings (the reference of the ``image`` mode)."""
    head = _head(bench, g_idx)
    return evaluate_embeddings(
        q_vecs,
        g_vecs,
        _labels(bench, q_idx),
        _labels(bench, g_idx),
        query_ids=[bench.items[i].key for i in q_idx],
        gallery_ids=[bench.items[i].key for i in g_idx],
        query_patents=[bench.items[i].patent_id for i in q_idx],
        gallery_patents=[bench.items[i].patent_id for i in g_idx],
        exclude_same_patent=bench.exclude_same_patent,
        ks=ks,
        head_classes=head,
    )


def _head(bench: BenchSet, g_idx: Sequence[int]) -> set[str]:
    return split_head_tail([bench.items[i].label for i in g_idx if bench.items[i].label])  # type: ignore[misc]


def _embed_set(
    bench: BenchSet, encoder: ImageEncoder, settings: Settings, cache: EmbeddingCache
) -> tuple[list[int], Any, dict[int, int], list[int], list[int]]:
    """Embed the set's queries and gallery through the cache: (items, result, row of item, queries, gallery).

    Raises:
        ValueError: No query or no gallery image could be embedded.
    """
    needed = sorted(set(bench.queries) | set(bench.gallery))
    emb = embed_paths(encoder, [bench.items[i].path for i in needed], cache, batch_size=settings.encoder.batch_size)
    row_of = {item: r for r, item in enumerate(needed) if emb.ok[r]}
    q_idx = [i for i in bench.queries if i in row_of]
    g_idx = [i for i in bench.gallery if i in row_of]
    if not q_idx or not g_idx:
        raise ValueError(f"{bench.name}: no query or no gallery image could be embedded ({len(emb.failures)} failed)")
    return needed, emb, row_of, q_idx, g_idx


def evaluate_method(
    bench: BenchSet,
    encoder: ImageEncoder,
    settings: Settings,
    cache: EmbeddingCache,
    *,
    method: str,
    modes: Sequence[Mode] = ("image",),
    query_text: QueryText | str | Sequence[str] = "auto",
    k: int | None = None,
    ks: Sequence[int] = (1, 5, 10),
    store_kind: StoreKind = "edge",
    enrich: bool = True,
    enrich_levels: Sequence[str] | None = None,
    baselines: bool = True,
    optimize: bool = True,
    keep_embeddings: bool = True,
    text_weight: float = DEFAULT_TEXT_WEIGHT,
    fusion: str = DEFAULT_FUSION,
    words_memo: dict[tuple[Any, ...], list[list[int]]] | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
    ci_seed: int = CI_SEED,
    warnings: list[str] | None = None,
    text_encoder: Any | None = None,
) -> list[MethodResult]:
    """Embed (through the cache), store the gallery with the product's ingest once per enrichment level, search
    every query in each mode and words variant, and score the rankings (with bootstrap intervals).

    Rows: ``image`` once (it does not depend on the words); ``text`` and ``image+text`` per query-words variant
    and enrichment level; with ``baselines`` and a words mode, one ``title-only`` row per words variant
    (:func:`title_only_rankings`). All rows of one call score the same queries against the same gallery.

    Args:
        bench: The dataset.
        encoder: The image encoder.
        settings: Settings (store folder, Qdrant tuning, batch sizes, enrichment backend).
        cache: Embedding cache.
        method: Method label for the report.
        modes: ``image``, ``text``, ``image+text`` (see the module docstring).
        query_text: The query's words, one or several (comma-separated or a list): ``auto`` (title; title +
            caption for patent-level relevance), ``title``, ``caption``, ``title+caption`` or ``paraphrase``.
        k: Store search depth; None = the whole gallery up to :data:`FULL_RANKING_MAX` figures, else 100.
        ks: Cut-offs of the reported @k metrics.
        store_kind: ``edge`` (Qdrant Edge on disk) or ``memory`` (qdrant-client ``:memory:``).
        enrich: Without ``enrich_levels``: the settings' ``enrich.level`` (True) or ``none`` (False).
        enrich_levels: ``none`` / ``aliases`` / ``full``: each sets ``settings.enrich.level`` and stores the
            gallery again (``none`` stores it without enrichment descriptions).
        baselines: Add the ``title-only`` rows.
        optimize: Build the HNSW index after upserting (as ``pir ingest`` does).
        keep_embeddings: Keep embeddings and rankings on the results for plots.
        text_weight: The words' share in ``image+text`` mode (the search's slider, 0..1).
        fusion: ``zscore``, ``rrf`` or ``weighted`` (score fusion inside Qdrant; :data:`DEFAULT_FUSION` as the product).
        words_memo: Rankings of ``text`` mode by (dataset, words variant, level, gallery): they do not depend on
            the image encoder, so a second encoder reuses them (one dict per run).
        n_bootstrap: Bootstrap resamples per interval; ci_seed: their seed.
        warnings: Collects :func:`labelling_warnings`.
        text_encoder: The query-side text encoder (default: a :class:`MemoTextEncoder` of the settings' encoder;
            pass one per run to embed each query's words once).
    """
    t0 = time.perf_counter()
    needed, emb, row_of, q_idx, g_idx = _embed_set(bench, encoder, settings, cache)
    q_vecs = emb.vectors[[row_of[i] for i in q_idx]]
    g_vecs = emb.vectors[[row_of[i] for i in g_idx]]
    base = {
        "method": method, "encoder": encoder.name, "encoder_version": encoder.version, "dim": encoder.dim,
        "n_embedded_new": emb.n_new, "n_embedded_cached": emb.n_cached, "n_failed_images": len(emb.failures),
    }  # fmt: skip
    seconds = {"embed": round(time.perf_counter() - t0, 3)}
    exact = exact_report(bench, q_idx, g_idx, q_vecs, g_vecs, ks) if "image" in modes else None
    class_level = bench.relevance == "class"  # no label leakage: no class facts in the gallery's words
    figures = gallery_figures(bench, g_idx)
    depth = min(k or (len(g_idx) if len(g_idx) <= FULL_RANKING_MAX else DEFAULT_DEPTH), len(g_idx))
    fetch = max(depth, min(CURVE_MAX_K, len(g_idx)))
    variants = parse_choices(query_text, QUERY_TEXTS, "query words")
    levels = parse_choices(
        enrich_levels or [settings.enrich.level if enrich else "none"], ENRICH_LEVELS, "enrichment level"
    )
    word_modes = [m for m in modes if m != "image"]
    levels = levels if word_modes else levels[:1]  # image rows do not depend on the gallery's words
    words = {
        how: [query_words(bench.items[i].as_figure(), how, bench.relevance) for i in q_idx]  # type: ignore[arg-type]
        for how in (variants if word_modes else ())
    }
    n_same = {
        how: sum(1 for i, w in zip(q_idx, ws, strict=True) if w and w.strip() == (bench.items[i].title or "").strip())
        for how, ws in words.items()
        if how == "paraphrase"
    }
    if warnings is not None:
        warnings.extend(w for w in labelling_warnings(bench, q_idx, words) if w not in warnings)  # type: ignore[arg-type]  # lists are sequences
    if word_modes:
        text_encoder = text_encoder or MemoTextEncoder(get_text_encoder(settings))
        text_encoder.encode(list(dict.fromkeys(w for ws in words.values() for w in ws if w)))  # one batched pass
    g_pos = {bench.items[i].point_id: p for p, i in enumerate(g_idx)}
    head = _head(bench, g_idx)
    boot = {"n_resamples": n_bootstrap, "seed": ci_seed}
    results: list[MethodResult] = []

    def add(res: MethodResult, rankings: list[list[int]], per_query: dict[str, np.ndarray], t: float) -> None:
        res.intervals = metric_intervals(per_query, **boot)  # type: ignore[arg-type]  # keyword options
        res.query_keys = [bench.items[i].key for i in q_idx]
        res.seconds = {**seconds, "search": round(time.perf_counter() - t, 3)}
        if keep_embeddings:
            res.rankings = [[g_idx[p] for p in r[:CURVE_MAX_K]] for r in rankings]
            res.query_items = q_idx
        log.info("bench %s / %s [%s %s %s]: map %.3f", bench.name, res.method, res.mode, res.query_text,
                 res.enrich, res.report.overall["map"])  # fmt: skip
        results.append(res)

    if baselines and word_modes:
        for how in variants:
            t = time.perf_counter()
            rankings = title_only_rankings(bench, q_idx, g_idx, words[how], fetch, settings)
            report, curve, per_query = score_rankings(bench, q_idx, g_idx, rankings, depth, ks, head)
            res = _mode_result(
                {**base, "method": TITLE_ONLY, "encoder": settings.text.model, "encoder_version": "", "dim": 0,
                 "n_embedded_new": 0, "n_embedded_cached": 0, "n_failed_images": 0, "store_backend": "numpy"},
                "text", report, None, curve, depth, len(g_idx), how, words[how],
            )  # fmt: skip
            res.enrich = "-"
            res.n_queries_not_paraphrased = n_same.get(how)
            add(res, rankings, per_query, t)
    for li, level in enumerate(levels):
        level_modes = [m for m in modes if m != "image" or li == 0]
        s_level = settings.model_copy(update={"enrich": settings.enrich.model_copy(update={"level": level})})
        collection = _collection_name(f"{bench.name}_{level}", cache_key(encoder)[:16])
        with gallery_store(s_level, collection, store_kind) as store:
            t1 = time.perf_counter()
            vec_of = {f.key: g_vecs[p] for p, f in enumerate(figures)}
            ingest_gallery(
                store, figures, s_level, encoder, vec_of, enrich=level != "none", include_class=not class_level,
                optimize=optimize,
            )  # fmt: skip
            seconds[f"ingest_{level}"] = round(time.perf_counter() - t1, 3)
            base["store_backend"] = f"{store.backend}{'-memory' if store_kind == 'memory' else ''}"
            for mode in level_modes:
                for how in variants if mode != "image" else (None,):  # type: ignore[assignment]  # set just above when None
                    t2 = time.perf_counter()
                    memo_key = (bench.name, how, level, tuple(g_idx), tuple(q_idx))
                    if mode == "text" and words_memo is not None and memo_key in words_memo:
                        rankings = words_memo[memo_key]
                    else:
                        rankings = search_rankings(
                            store, bench, mode, q_idx, q_vecs, words[how] if how else [None] * len(q_idx), g_pos,
                            fetch, s_level, text_encoder, text_weight=text_weight, fusion=fusion,
                        )  # fmt: skip
                        if mode == "text" and words_memo is not None:
                            words_memo[memo_key] = rankings
                    report, curve, per_query = score_rankings(bench, q_idx, g_idx, rankings, depth, ks, head)
                    ws = words[how] if how else []
                    res = _mode_result(base, mode, report, exact, curve, depth, len(g_idx), how or "", ws)
                    res.enrich = "-" if mode == "image" else level
                    res.n_queries_not_paraphrased = n_same.get(how) if how else None
                    if keep_embeddings and mode == "image":
                        res.embedded_items = [i for i in needed if i in row_of]
                        res.embeddings = emb.vectors[[row_of[i] for i in res.embedded_items]]
                    add(res, rankings, per_query, t2)
    return results


def _mode_result(
    base: dict[str, Any],
    mode: Mode,
    report: RetrievalReport,
    exact: RetrievalReport | None,
    curve: dict[int, float],
    depth: int,
    n_gallery: int,
    query_text: str,
    words: Sequence[str | None],
) -> MethodResult:
    """The :class:`MethodResult` of one mode (``map`` from the exact ranking in a truncated image-mode search)."""
    full = depth >= n_gallery
    image = mode == "image" and exact is not None
    return MethodResult(
        **base,
        mode=mode,
        query_text=None if mode == "image" else query_text,
        report=_with_exact_map(report, exact) if image and not full else report,  # type: ignore[arg-type]
        exact=exact if image else None,
        curve=curve,
        depth=depth,
        full_ranking=full,
        agreement_max_abs_diff=_agreement(report, exact, full) if image else None,  # type: ignore[arg-type]
        store_map_at_k=None if full else float(report.overall["map"]),
        n_queries_without_words=0 if mode == "image" else sum(1 for w in words if not w),
    )
