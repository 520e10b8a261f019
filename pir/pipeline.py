"""The ingest pipeline: discover -> (enrich) -> load + embed -> upsert.

The in-process path (:func:`ingest`) and the Celery tasks (``pir.workers.tasks``) call the same batch functions,
:func:`enrich_batch` and :func:`embed_and_upsert`, so both store identical points.

Idempotent and resumable: point ids are deterministic (uuid5 of patent id + figure id) and every point carries the
encoder version and the image's content hash, so a re-run (or a re-delivered task) skips what is already stored and
overwrites, never duplicates, what changed. One bad file is recorded as failed and the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pir.config import Settings
from pir.ingest.images import ImageLoadError
from pir.ingest.readers import ReadIssue, read_figures
from pir.ingest.schema import PatentFigure, file_sha256

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.search.store import VectorStore

log = logging.getLogger(__name__)


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

    @property
    def n_failed(self) -> int:
        return len(self.failed) + len(self.read_issues)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["n_failed"] = self.n_failed
        return d


def metadata_hash(figure: PatentFigure, descriptions: Sequence[str] | None = None) -> str:
    """Hash of what the payload says about a figure (metadata + descriptions): a change re-stores the payload."""
    blob = json.dumps([figure.payload(), list(descriptions or [])], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def encoder_id(encoder: ImageEncoder) -> str:
    """What a collection records about its encoder: name and weights version (``name@version``)."""
    return f"{encoder.name}@{encoder.version}"


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
    from pir.enrich import enrich_figures

    summary = enrich_figures(figures, settings, show_progress=show_progress)
    return summary.to_dict()


def _descriptions(figure: PatentFigure, settings: Settings) -> list[str]:
    from pir.enrich import get_descriptions

    try:
        return get_descriptions(figure, settings)
    except Exception as e:  # noqa: BLE001  (enrichment must never lose a figure)
        log.warning("%s: no descriptions (%s)", figure.key, e)
        return []


def embed_and_upsert(
    figures: Sequence[PatentFigure],
    settings: Settings,
    encoder: ImageEncoder,
    store: VectorStore,
    *,
    with_descriptions: bool = True,
    force: bool = False,
    descriptions: dict[str, list[str]] | None = None,
) -> BatchResult:
    """Embed a batch of figures and upsert them; skip figures stored unchanged.

    A stored point is reused when its encoder version and image hash match: unchanged metadata (payload and
    descriptions) means the figure is skipped, changed metadata means only the payload is rewritten, with the stored
    vector (no image is decoded or embedded for it).

    Args:
        figures: the batch (metadata; images are read here).
        force: re-embed even figures that are already stored unchanged.
        descriptions: figure key -> enrichment descriptions (e.g. handed over by the enrich task); looked up in the
            enrichment cache when absent.
    """
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
    descs: dict[str, list[str] | None] = {}
    for fig in todo:
        given = (descriptions or {}).get(fig.key) if with_descriptions else None
        descs[fig.key] = (
            None if not with_descriptions else list(given) if given is not None else _descriptions(fig, settings)
        )
    meta = {fig.key: metadata_hash(fig, descs[fig.key]) for fig in todo}
    reuse: list[tuple[PatentFigure, np.ndarray]] = []
    if not force and todo:
        existing = {p.id: p for p in store.retrieve([f.point_id for f in todo], with_vectors=True)}
        keep = []
        for fig in todo:
            old = existing.get(fig.point_id)
            same_vector = (
                old is not None
                and old.payload.get("encoder_version") == encoder.version
                and old.payload.get("content_hash") == hashes[fig.point_id]
            )
            if same_vector and old.payload.get("metadata_hash") == meta[fig.key]:
                res.skipped.append(fig.key)
            elif same_vector and old.vector is not None:
                reuse.append((fig, old.vector))
            else:
                keep.append(fig)
        todo = keep
    t1 = time.perf_counter()
    images: list[Image.Image] = []
    ok: list[PatentFigure] = []
    for fig in todo:
        try:
            images.append(encoder.load_image(fig.image_path))
            ok.append(fig)
        except ImageLoadError as e:
            res.failed.append(FigureFailure(fig.key, str(fig.image_path), e.reason))
        except Exception as e:  # noqa: BLE001  (one bad file never stops the batch)
            res.failed.append(FigureFailure(fig.key, str(fig.image_path), f"{type(e).__name__}: {e}"))
    t2 = time.perf_counter()
    vectors = encoder.encode_pil(images, batch_size=settings.encoder.batch_size) if ok else None
    t3 = time.perf_counter()
    rows = [*zip(ok, vectors if vectors is not None else [], strict=True), *reuse]
    if rows:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        payloads = []
        for fig, _ in rows:
            p = fig.payload()
            p.update(
                encoder=encoder.name,
                encoder_version=encoder.version,
                content_hash=hashes[fig.point_id],
                metadata_hash=meta[fig.key],
                embedded_at=now,
            )
            if descs[fig.key] is not None:
                p["descriptions"] = descs[fig.key]
            payloads.append(p)
        matrix = np.stack([np.asarray(v, dtype=np.float32) for _, v in rows])
        store.upsert([f.point_id for f, _ in rows], matrix, payloads)
        res.ingested.extend(f.key for f, _ in rows)
    res.seconds.update(
        check=t1 - t0, load=t2 - t1, embed=t3 - t2, upsert=time.perf_counter() - t3, total=time.perf_counter() - t0
    )
    return res


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
) -> IngestSummary:
    """Ingest every figure under ``path`` into the store, in-process.

    Example:
        >>> summary = ingest("drawings/", get_settings())
        >>> summary.ingested, summary.skipped, summary.n_failed
    """
    from pir.encoder.backbone import set_threads
    from pir.encoder.model import load_encoder
    from pir.search.store import open_store

    set_threads(settings.encoder.num_threads)
    t0 = time.perf_counter()
    enc = encoder or load_encoder(settings.encoder.name, device=settings.encoder.device, image_size=settings.image_size)
    own_store = store is None
    st = store or open_store(settings)
    try:
        figures, issues = discover(path, settings, fmt=fmt, **(reader_options or {}))
        summary = IngestSummary(
            path=str(path), discovered=len(figures), read_issues=issues, encoder=enc.name, collection=st.collection
        )
        if figures:  # an empty or unreadable folder never creates (or binds) a collection
            st.ensure_collection(enc.dim, encoder=encoder_id(enc))
        bar = tqdm(total=len(figures), desc="ingest", unit="fig", disable=not show_progress)
        for batch in batched(figures, settings.worker.batch_size):
            if enrich:
                enrich_batch(batch, settings)
            res = embed_and_upsert(batch, settings, enc, st, with_descriptions=enrich, force=force)
            summary.ingested += len(res.ingested)
            summary.skipped += len(res.skipped)
            summary.failed.extend(res.failed)
            for f in res.failed:
                log.warning("skipped %s (%s): %s", f.key, f.path, f.reason)
            bar.update(len(batch))
            bar.set_postfix(new=summary.ingested, skipped=summary.skipped, failed=summary.n_failed)
        bar.close()
        if optimize and summary.ingested:
            st.optimize()
        summary.store_count = st.count()
    finally:
        if own_store:
            st.close()
    summary.seconds = time.perf_counter() - t0
    return summary
