"""The ingest pipeline: discover -> (enrich) -> load + embed -> upsert.

The in-process path (:func:`ingest`) and the Celery tasks (``pir.workers.tasks``) call the same batch functions,
:func:`enrich_batch` and :func:`embed_and_upsert`, so both store identical points.

Work is batched (``worker.batch_size`` figures): per batch one enrichment run, one look-up of the descriptions, one
text-encoder call over the batch's new pieces of text, one image forward pass, one upsert; the summary's
``stage_seconds`` say where the time went.

Every point gets three vectors: ``image`` (the visual encoder), ``text`` (the frozen text encoder over the figure's
own words) and ``words`` (sparse BM25 over the same words); see :mod:`pir.search.words`.

Idempotent and resumable: point ids are deterministic (uuid5 of patent id + figure id) and every point carries the
encoder version, the image's content hash and a metadata hash (payload, descriptions, text model, words model,
class words on/off), so a re-run (or a re-delivered task) skips what is already stored and overwrites, never
duplicates, what changed. One bad file is recorded as failed and the batch goes on.

:func:`reindex` upgrades a collection of the old single-vector layout in place (see :mod:`pir.search.migrate`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pir.core.config import Settings
from pir.core.diskspace import check_batch, check_data_dir, check_optimize
from pir.core.storewait import wait_for_store
from pir.ingest.conflicts import stored_conflicts
from pir.ingest.images import ImageLoadError
from pir.ingest.readers import read_figures
from pir.ingest.schema import PatentFigure, ReadIssue, file_sha256
from pir.search import open_store
from pir.search.migrate import reindex as _reindex
from pir.search.query import StoreError
from pir.search.words import WORDS_MODEL, get_text_encoder, open_text_cache, text_and_words

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.encoder.text import TextEmbeddingCache, TextEncoder
    from pir.search.migrate import ReindexSummary
    from pir.search.store import VectorStore
    from pir.search.words import SparseVector

log = logging.getLogger(__name__)

#: Texts per text-encoder forward pass in ingest (at most ``settings.text.batch_size``); see :func:`_text_vectors`.
TEXT_CHUNK = 16


@dataclass
class FigureFailure:
    """A figure that could not be stored: which one, which file, why."""

    key: str
    path: str
    reason: str


@dataclass
class BatchResult:
    """Outcome of one embed-and-upsert batch."""

    ingested: list[str] = field(default_factory=list)  # figure keys newly stored or overwritten
    skipped: list[str] = field(default_factory=list)  # already stored with the same encoder version and content
    failed: list[FigureFailure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestSummary:
    """What an ingest run did."""

    path: str
    discovered: int = 0
    ingested: int = 0
    skipped: int = 0
    failed: list[FigureFailure] = field(default_factory=list)
    read_issues: list[ReadIssue] = field(default_factory=list)
    seconds: float = 0.0
    encoder: str = ""
    collection: str = ""
    store_count: int = 0
    #: Seconds per stage summed over the batches: ``discover``, ``enrich`` (descriptions generated or found in the
    #: cache), then :attr:`BatchResult.seconds`' ``hash``, ``describe`` (descriptions and knowledge looked up),
    #: ``check`` (stored points), ``load`` (decode + preprocess), ``embed`` (image forward pass), ``text`` (dense
    #: text and sparse words vectors), ``upsert``.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def add_stage(self, name: str, seconds: float) -> None:
        self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + seconds

    @property
    def n_failed(self) -> int:
        return len(self.failed) + len(self.read_issues)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["n_failed"] = self.n_failed
        return d


def metadata_hash(figure: PatentFigure, descriptions: Sequence[str] | None = None, words_key: str = "") -> str:
    """Hash of what the payload says about a figure (metadata + descriptions) and how its words are embedded
    (``words_key``: text model, words model, class words): a change re-stores payload, text and words."""
    blob = json.dumps([figure.payload(), list(descriptions or []), words_key], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def words_key(text_encoder: TextEncoder, include_class: bool) -> str:
    """What the ``text`` and ``words`` vectors depend on besides the figure's words."""
    return f"{text_encoder.name}|{WORDS_MODEL}|class={int(include_class)}|words=v2"


def ensure_collection(store: VectorStore, encoder: ImageEncoder, text_encoder: TextEncoder) -> None:
    """Create (or check) the collection for this image encoder and text encoder.

    Raises:
        pir.search.store.StoreError: Another encoder, text encoder or layout (legacy: run ``pir reindex``).
    """
    store.ensure_collection(
        encoder.dim, encoder=encoder_id(encoder), text_dim=text_encoder.dim, text_encoder=text_encoder.name
    )
    stored = store.text_encoder()
    if stored and stored != text_encoder.name:
        raise StoreError(
            f"collection '{store.collection}' holds text vectors of '{stored}', not '{text_encoder.name}'; use the "
            "same text model (settings text.model) or another collection"
        )


def encoder_id(encoder: ImageEncoder) -> str:
    """What a collection records about its encoder: name and weights version (``name@version``)."""
    return encoder.id


def batched(items: Iterable[PatentFigure], n: int) -> Iterator[list[PatentFigure]]:
    """Chunk an iterable into lists of at most ``n``."""
    batch: list[PatentFigure] = []
    for it in items:
        batch.append(it)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def discover(
    path: str | Path, settings: Settings, *, fmt: str | None = None, **reader_options: Any
) -> tuple[list[PatentFigure], list[ReadIssue]]:
    """Read every figure under ``path`` (metadata only; images are decoded later)."""
    issues: list[ReadIssue] = []
    figures = list(read_figures(Path(path).resolve(), fmt, issues=issues, **reader_options))
    return figures, issues


def enrich_batch(figures: Sequence[PatentFigure], settings: Settings, *, show_progress: bool = False) -> dict[str, Any]:
    """Generate (or fetch from the cache) the descriptions of each figure; the cache is the output."""
    from pir.enrich import enrich_figures  # lazy: start-up (httpx)

    summary = enrich_figures(figures, settings, show_progress=show_progress)
    return summary.to_dict()


def batch_descriptions(figures: Sequence[PatentFigure], settings: Settings) -> dict[str, list[str]]:
    """Each figure's descriptions (as :func:`pir.enrich.get_descriptions` gives them), looked up for the whole batch
    at once; a figure whose descriptions cannot be had gets ``[]`` (logged): enrichment never loses a figure."""
    from pir.enrich.pipeline import many_descriptions  # lazy: start-up (httpx)

    if not figures:
        return {}
    try:
        found = many_descriptions(figures, settings)
    except Exception as e:  # noqa: BLE001  (enrichment must never lose a figure: the cache itself failed)
        found = dict.fromkeys((f.key for f in figures), e)
    out: dict[str, list[str]] = {}
    for fig in figures:
        got = found.get(fig.key, [])
        if isinstance(got, Exception):
            log.warning("%s: no descriptions (%s)", fig.key, got)
            got = []
        out[fig.key] = got
    return out


def _knowledge(figure: PatentFigure, settings: Settings) -> dict[str, list[str]]:
    """The search words enrichment adds at ``settings.enrich.level`` (payload ``aliases`` / ``about``)."""
    from pir.enrich.knowledge import figure_knowledge  # lazy: WordNet glosses, only with enrich.level=full

    try:
        return figure_knowledge(figure, settings.enrich.level).payload()
    except Exception as e:  # noqa: BLE001  (enrichment must never lose a figure)
        log.warning("%s: no aliases (%s)", figure.key, e)
        return {}


def embed_and_upsert(
    figures: Sequence[PatentFigure],
    settings: Settings,
    encoder: ImageEncoder,
    store: VectorStore,
    *,
    with_descriptions: bool = True,
    force: bool = False,
    descriptions: dict[str, list[str]] | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
    text_encoder: TextEncoder | None = None,
    include_class: bool = True,
    text_cache: TextEmbeddingCache | None = None,
) -> BatchResult:
    """Embed a batch of figures (``image``, ``text``, ``words`` vectors) and upsert them; skip figures stored unchanged.

    A stored point is reused when its encoder version and image hash match: unchanged metadata (payload,
    descriptions, words key) means the figure is skipped, changed metadata means the payload, text and words are
    rewritten with the stored image vector (no image is decoded or embedded for it).

    Args:
        figures: the batch (metadata; images are read here).
        force: re-embed even figures that are already stored unchanged.
        descriptions: figure key -> enrichment descriptions (e.g. handed over by the enrich task); looked up in the
            enrichment cache when absent.
        vectors: figure key -> image vector already computed with ``encoder`` (e.g. a benchmark's embedding cache):
            used instead of loading and embedding that figure.
        text_encoder: the frozen text encoder (default: ``settings.text.model``, loaded once per process).
        include_class: put the class label and class titles into the figure's words (False for class-level
            evaluation: no label leakage).
        text_cache: text-embedding cache (default: the one in ``settings.cache_dir``).
    """
    te = text_encoder or get_text_encoder(settings)
    wkey = words_key(te, include_class)
    res = BatchResult()
    t0 = time.perf_counter()
    hashes: dict[str, str] = {}
    todo: list[PatentFigure] = []
    for fig in figures:
        try:
            hashes[fig.point_id] = file_sha256(fig.image_path)
            todo.append(fig)
        except OSError as e:
            res.failed.append(FigureFailure(fig.key, str(fig.image_path), f"cannot read file: {e.strerror or e}"))
    t_hash = time.perf_counter()
    descs: dict[str, list[str] | None] = dict.fromkeys((f.key for f in todo), None)
    if with_descriptions:
        given = descriptions or {}
        descs.update({f.key: list(given[f.key]) for f in todo if given.get(f.key) is not None})
        descs.update(batch_descriptions([f for f in todo if descs[f.key] is None], settings))
    know = {fig.key: _knowledge(fig, settings) if with_descriptions else {} for fig in todo}
    meta = {
        fig.key: metadata_hash(fig, descs[fig.key], f"{wkey}|{json.dumps(know[fig.key], sort_keys=True)}")
        for fig in todo
    }
    t_describe = time.perf_counter()
    reuse: list[tuple[PatentFigure, np.ndarray]] = []
    if not force and todo:
        todo = _stored_unchanged(todo, store, encoder, hashes, meta, res, reuse)
    t1 = time.perf_counter()
    given_vectors = vectors or {}
    for fig in [f for f in todo if f.key in given_vectors]:
        reuse.append((fig, np.asarray(given_vectors[fig.key], dtype=np.float32)))
    images, ok = _load_images([f for f in todo if f.key not in given_vectors], encoder, res)
    t2 = time.perf_counter()
    embedded = encoder.encode_pil(images, batch_size=settings.encoder.batch_size) if ok else None
    t3 = time.perf_counter()
    rows = [*zip(ok, embedded if embedded is not None else [], strict=True), *reuse]
    t_text = 0.0
    if rows:
        stamp = {"encoder": encoder.name, "encoder_version": encoder.version}
        payloads = [
            {**_payload(fig, stamp, hashes[fig.point_id], meta[fig.key], descs[fig.key]), **know[fig.key]}
            for fig, _ in rows
        ]
        matrix = np.stack([np.asarray(v, dtype=np.float32) for _, v in rows])
        t_text0 = time.perf_counter()
        text, words = _text_vectors(payloads, settings, te, include_class, text_cache)
        t_text = time.perf_counter() - t_text0
        store.upsert([f.point_id for f, _ in rows], matrix, payloads, text=text, words=words)
        res.ingested.extend(f.key for f, _ in rows)
    res.seconds.update(
        hash=t_hash - t0,
        describe=t_describe - t_hash,
        check=t1 - t_describe,
        load=t2 - t1,
        embed=t3 - t2,
        text=t_text,
        upsert=time.perf_counter() - t3 - t_text,
        total=time.perf_counter() - t0,
    )
    return res


def _text_vectors(
    payloads: list[dict[str, Any]],
    settings: Settings,
    te: TextEncoder,
    include_class: bool,
    text_cache: TextEmbeddingCache | None,
) -> tuple[list[np.ndarray | None], list[SparseVector | None]]:
    """:func:`text_and_words` through ``text_cache`` (or the settings' cache, opened and closed here).

    The batch's new pieces go through the text encoder in one call, sorted by length (sentence-transformers sorts
    them) and run :data:`TEXT_CHUNK` at a time: a figure's pieces are short and of very different lengths, so small
    chunks of similar length pad least (about a quarter less text-encoder CPU than chunks of 128; the same vectors).
    """
    cache = text_cache or open_text_cache(settings)
    try:
        return text_and_words(
            payloads, te, include_class=include_class, cache=cache, batch_size=min(settings.text.batch_size, TEXT_CHUNK)
        )
    finally:
        if text_cache is None and cache is not None:
            cache.close()


def _stored_unchanged(
    todo: list[PatentFigure],
    store: VectorStore,
    encoder: ImageEncoder,
    hashes: dict[str, str],
    meta: dict[str, str],
    res: BatchResult,
    reuse: list[tuple[PatentFigure, np.ndarray]],
) -> list[PatentFigure]:
    """The figures still to embed: stored unchanged ones are skipped, those with only new metadata go to ``reuse``
    with their stored image vector, and a point another file claims is a failure (``--force`` overwrites it)."""
    existing = {p.id: p for p in store.retrieve([f.point_id for f in todo], with_vectors=True)}
    conflicts = stored_conflicts(todo, hashes, {pid: p.payload for pid, p in existing.items()})  # faults: #4
    keep = []
    for fig in todo:
        if fig.key in conflicts:  # another file's point: reported, never overwritten (--force overwrites)
            res.failed.append(FigureFailure(fig.key, str(fig.image_path), conflicts[fig.key]))
            continue
        old = existing.get(fig.point_id)
        same_vector = (
            old is not None
            and old.payload.get("encoder_version") == encoder.version
            and old.payload.get("content_hash") == hashes[fig.point_id]
        )
        if same_vector and old is not None and old.payload.get("metadata_hash") == meta[fig.key]:
            res.skipped.append(fig.key)
        elif same_vector and old is not None and old.vector is not None:
            reuse.append((fig, old.vector))
        else:
            keep.append(fig)
    return keep


def _load_images(
    figures: list[PatentFigure], encoder: ImageEncoder, res: BatchResult
) -> tuple[list[Image.Image], list[PatentFigure]]:
    """The figures' images and the figures that loaded; a bad file is a failure, never the end of the batch."""
    images: list[Image.Image] = []
    ok: list[PatentFigure] = []
    for fig in figures:
        try:
            images.append(encoder.load_image(fig.image_path))
            ok.append(fig)
        except ImageLoadError as e:
            res.failed.append(FigureFailure(fig.key, str(fig.image_path), e.reason))
        except Exception as e:  # noqa: BLE001  (one bad file never stops the batch)
            res.failed.append(FigureFailure(fig.key, str(fig.image_path), f"{type(e).__name__}: {e}"))
    return images, ok


def _payload(
    fig: PatentFigure, stamp: dict[str, str], content_hash: str, metadata_hash: str, descs: list[str] | None
) -> dict[str, Any]:
    """The stored payload of a figure: its metadata, the encoder stamp, the hashes, the descriptions."""
    p = fig.payload()
    p.update(stamp, content_hash=content_hash, metadata_hash=metadata_hash)
    p["embedded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if descs is not None:
        p["descriptions"] = descs
    return p


def reindex(settings: Settings, *, collection: str | None = None, show_progress: bool = True) -> ReindexSummary:
    """Upgrade a collection of the old single-vector layout to ``image``/``text``/``words`` with nothing lost.

    See :func:`pir.search.migrate.reindex`.
    """
    return _reindex(settings, collection=collection, show_progress=show_progress)


def ingest(
    path: str | Path,
    settings: Settings,
    *,
    encoder: ImageEncoder | None = None,
    store: VectorStore | None = None,
    fmt: str | None = None,
    reader_options: dict[str, Any] | None = None,
    enrich: bool = True,
    force: bool = False,
    optimize: bool = True,
    show_progress: bool = True,
    text_encoder: TextEncoder | None = None,
    on_batch: Callable[[list[PatentFigure], BatchResult], None] | None = None,
) -> IngestSummary:
    """Ingest every figure under ``path`` into the store, in-process.

    ``on_batch`` is called after each batch with its figures and result (progress reports, benchmarks); its time
    counts in ``seconds``.

    Example:
        >>> summary = ingest("drawings/", get_settings())
        >>> summary.ingested, summary.skipped, summary.n_failed
    """
    from pir.encoder.backbone import set_threads  # lazy: start-up (torch, timm, safetensors)
    from pir.encoder.model import encoder_for  # lazy: start-up (torch, timm, safetensors)

    set_threads(settings.encoder.num_threads)
    t0 = time.perf_counter()
    enc = encoder or encoder_for(settings)
    te = text_encoder or get_text_encoder(settings)
    own_store = store is None
    text_cache = open_text_cache(settings)
    check_data_dir(settings)  # faults: read-only or full data dir -> one line, before anything is written
    st = store or wait_for_store(lambda: open_store(settings), timeout_s=settings.store_wait_s)  # faults: held store
    try:
        t_discover = time.perf_counter()
        figures, issues = discover(path, settings, fmt=fmt, **(reader_options or {}))
        summary = IngestSummary(
            path=str(path), discovered=len(figures), read_issues=issues, encoder=enc.name, collection=st.collection
        )
        summary.add_stage("discover", time.perf_counter() - t_discover)
        if figures:  # an empty or unreadable folder never creates (or binds) a collection
            ensure_collection(st, enc, te)
        bar = tqdm(total=len(figures), desc="ingest", unit="fig", disable=not show_progress)
        for batch in batched(figures, settings.worker.batch_size):
            check_batch(settings, len(batch), enc.dim)  # faults: stop between batches, never in the middle
            if enrich:
                t_enrich = time.perf_counter()
                enrich_batch(batch, settings)
                summary.add_stage("enrich", time.perf_counter() - t_enrich)
            res = embed_and_upsert(
                batch, settings, enc, st, with_descriptions=enrich, force=force, text_encoder=te, text_cache=text_cache
            )
            for stage, sec in res.seconds.items():
                if stage != "total":
                    summary.add_stage(stage, sec)
            summary.ingested += len(res.ingested)
            summary.skipped += len(res.skipped)
            summary.failed.extend(res.failed)
            for f in res.failed:
                log.warning("skipped %s (%s): %s", f.key, f.path, f.reason)
            bar.update(len(batch))
            bar.set_postfix(new=summary.ingested, skipped=summary.skipped, failed=summary.n_failed)
            if on_batch is not None:
                on_batch(batch, res)
        bar.close()
        if optimize and summary.ingested:
            check_optimize(settings)
            st.optimize()
        summary.store_count = st.count()
    finally:
        if text_cache is not None:
            text_cache.close()
        if own_store:
            st.close()
    summary.seconds = time.perf_counter() - t0
    return summary
