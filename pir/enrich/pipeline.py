"""Enrich many figures: inputs, cache look-up, generation (in parallel for remote backends), summary."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pir.core.config import Settings
from pir.enrich.aliases import lexicon_signature
from pir.enrich.backends import backend_identity, make_enricher, sampling, shared_enricher
from pir.enrich.base import Enricher, EnrichError, Generation
from pir.enrich.cache import CachedEntry, CacheRow, EnrichCache, cache_key, inputs_hash
from pir.enrich.http import Captioner
from pir.enrich.inputs import FigureInputs, add_aliases, figure_inputs
from pir.enrich.text import carries_alias
from pir.ingest.readers import read_figures
from pir.ingest.schema import PatentFigure

logger = logging.getLogger(__name__)

_CHUNK = 64


@dataclass
class EnrichSummary:
    """What one enrichment run did.

    ``backend_calls`` counts backend invocations during the run (HTTP requests for ``openai``, generations for
    ``llamacpp``, ``describe`` calls for ``template``); a run served entirely from the cache has 0.
    ``alias_share`` is the share of the run's descriptions that name at least one alias besides the object name.
    """

    n_figures: int = 0
    n_from_cache: int = 0
    n_generated: int = 0
    backend_calls: int = 0
    n_fallbacks: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    alias_share: float = 0.0
    backend: str = ""
    model: str = ""
    k: int = 0
    n_descriptions: int = 0
    caption_calls: int = 0
    seconds: float = 0.0

    def describe(self, max_failures: int = 20) -> str:
        """Human-readable summary (one line, then one line per failure)."""
        lines = [
            f"{self.n_figures} figures: {self.n_generated} generated, {self.n_from_cache} from the cache, "
            f"{self.backend_calls} backend calls, {self.n_fallbacks} template fallbacks, {len(self.failures)} failed; "
            f"{self.n_descriptions} descriptions, {self.alias_share:.1%} with an alias ({self.backend}/{self.model}, "
            f"k={self.k}, {self.seconds:.1f} s)"
        ]
        lines += [f"  FAILED {key}: {reason}" for key, reason in self.failures[:max_failures]]
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (failures as ``[[key, reason], ...]``)."""
        out = dataclasses.asdict(self)
        out["failures"] = [list(f) for f in self.failures]
        out["alias_share"] = round(self.alias_share, 4)
        out["seconds"] = round(self.seconds, 2)
        return out


def make_captioner(settings: Settings) -> Captioner | None:
    """The optional captioner (None unless ``enrich.caption_base_url`` and ``enrich.caption_model`` are set)."""
    cfg = settings.enrich
    if not cfg.caption_base_url or not cfg.caption_model:
        return None
    return Captioner(
        cfg.caption_base_url, cfg.caption_model, cfg.caption_api_key, timeout=cfg.timeout, max_retries=cfg.max_retries
    )


def _open_cache(settings: Settings) -> EnrichCache:
    return EnrichCache(Path(settings.cache_dir) / "enrich.sqlite")


def _captions(
    figures: list[PatentFigure],
    captioner: Captioner | None,
    cache: EnrichCache,
    pool: ThreadPoolExecutor | None,
    *,
    generate: bool = True,
) -> dict[str, str | None]:
    """Captions by figure key: cached ones, and (when ``generate``) new ones fetched in parallel and cached."""
    out: dict[str, str | None] = {}
    if captioner is None:
        return out
    missing: list[tuple[PatentFigure, str]] = []
    for fig in figures:
        try:
            h = captioner.image_key(fig.image_path)
        except OSError as exc:
            logger.warning("caption %s: cannot read %s (%s)", fig.key, fig.image_path, exc)
            out[fig.key] = None
            continue
        cached = cache.get_caption(h)
        out[fig.key] = cached
        if cached is None and generate:
            missing.append((fig, h))

    def one(item: tuple[PatentFigure, str]) -> str | None:
        fig, _ = item
        try:
            return captioner.caption(fig.image_path)
        except (EnrichError, OSError, ValueError) as exc:
            logger.warning("caption %s: no caption (%s)", fig.key, exc)
            return None

    results = list(pool.map(one, missing)) if pool is not None else [one(m) for m in missing]
    for (fig, h), caption in zip(missing, results, strict=True):
        out[fig.key] = caption
        if caption:
            cache.put_caption(h, captioner.model, caption)
    return out


def _chunks(items: Iterable[PatentFigure]) -> Iterator[list[PatentFigure]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, _CHUNK)):
        yield chunk


_Job = tuple[str, str, str, FigureInputs]  # figure key, cache key, inputs hash, inputs with aliases


@dataclass
class _EnrichRun:
    """The state of one :func:`enrich_figures` call: backend, cache, pool, progress bar and running totals."""

    settings: Settings
    enricher: Enricher
    k: int
    refresh: bool
    keep_llm: bool
    wordnet_root: Path | None
    captioner: Captioner | None
    cache: EnrichCache
    pool: ThreadPoolExecutor | None
    bar: Any
    summary: EnrichSummary
    lexicon: str = ""
    temperature: float | None = None
    seed: int | None = None
    n_alias: int = 0

    @classmethod
    def open(
        cls,
        settings: Settings,
        enricher: Enricher,
        k: int,
        refresh: bool,
        keep_llm: bool,
        wordnet_root: Path | None,
        total: int | None,
        show_progress: bool,
    ) -> _EnrichRun:
        """Open the captioner, the thread pool (remote backends, captions), the cache and the progress bar."""
        captioner = make_captioner(settings)
        workers = max(1, settings.enrich.concurrency)
        parallel = enricher.parallel or captioner
        run = cls(
            settings,
            enricher,
            k,
            refresh,
            keep_llm,
            wordnet_root,
            captioner,
            cache=_open_cache(settings),
            pool=ThreadPoolExecutor(workers, thread_name_prefix="pir-enrich") if parallel else None,
            bar=tqdm(total=total, disable=not show_progress, desc=f"enrich ({enricher.name})", unit="fig"),
            summary=EnrichSummary(backend=enricher.name, model=enricher.model, k=k),
            lexicon=lexicon_signature(wordnet_root),
        )
        run.temperature, run.seed = sampling(settings, enricher.name)  # the output varies with them: in the cache key
        return run

    def chunk(self, chunk: list[PatentFigure]) -> None:
        """Enrich one chunk: cache look-ups, then generation of the misses, then one cache write."""
        captions = _captions(chunk, self.captioner, self.cache, self.pool)
        jobs: list[_Job] = []
        done: list[CacheRow] = []
        for fig in chunk:
            self.summary.n_figures += 1
            try:
                row_or_job = self.look_up(fig, captions.get(fig.key))
            except Exception as exc:  # noqa: BLE001 - one bad figure is reported, the batch goes on
                self.summary.failures.append((fig.key, f"{type(exc).__name__}: {exc}"))
                self.bar.update(1)
                continue
            if isinstance(row_or_job, CacheRow):
                done.append(row_or_job)
                self.bar.update(1)
            else:
                jobs.append(row_or_job)
        done += self.generate(jobs)
        self.cache.put_many(done)

    def look_up(self, fig: PatentFigure, caption: str | None) -> CacheRow | _Job:
        """The figure's cached row (counted in the summary), or the generation job when nothing usable is cached."""
        e, max_chars = self.enricher, self.settings.enrich.max_chars
        inputs = figure_inputs(fig, caption, with_aliases=False)
        h = cache_key(
            inputs, e.name, e.model, self.k, max_chars, self.lexicon, temperature=self.temperature, seed=self.seed
        )
        ih = inputs_hash(inputs, self.k, max_chars)
        hit = None
        if self.keep_llm:  # an LLM's descriptions of unchanged inputs beat the default template's
            hit = _llm_entry(self.cache.figure(fig.key), ih)
        if hit is None and not self.refresh:
            hit = self.cache.get(h)
        if hit is None:
            return (fig.key, h, ih, add_aliases(inputs, wordnet_root=self.wordnet_root))
        self.summary.n_from_cache += 1
        inputs = dataclasses.replace(inputs, aliases=tuple(hit.inputs.get("aliases", ())))
        self.n_alias += _count_alias(hit.descriptions, inputs)
        self.summary.n_descriptions += len(hit.descriptions)
        return CacheRow(
            fig.key,
            hit.hash,
            inputs,
            hit.backend,
            hit.model,
            hit.descriptions,
            hit.fallback,
            content=False,
            inputs_hash=ih,
        )

    def generate(self, jobs: list[_Job]) -> list[CacheRow]:
        """Run the backend on ``jobs`` (in parallel for remote backends); failures go to the summary."""

        def run(job: _Job) -> Generation | Exception:
            try:
                return self.enricher.generate(job[3], self.k)
            except Exception as exc:  # noqa: BLE001 - reported per figure
                return exc

        pool, e, summary = self.pool, self.enricher, self.summary
        results = pool.map(run, jobs) if (pool is not None and e.parallel) else map(run, jobs)
        rows: list[CacheRow] = []
        for (key, h, ih, inputs), res in zip(jobs, results, strict=True):
            self.bar.update(1)
            if isinstance(res, Exception):
                summary.failures.append((key, f"{type(res).__name__}: {res}"))
                logger.warning("enrich %s failed: %s", key, res)
                continue
            summary.n_generated += 1
            summary.n_fallbacks += res.fallback is not None
            summary.n_descriptions += len(res.descriptions)
            self.n_alias += _count_alias(res.descriptions, inputs)
            # A transport failure's template output is kept for the figure key only (so get_descriptions uses
            # it without asking again); it is not a content-cache entry, so the next enrich run asks again.
            transient = res.fallback == "error"
            rows.append(
                CacheRow(key, h, inputs, e.name, e.model, res.descriptions, res.fallback, not transient, inputs_hash=ih)
            )
        return rows

    def close(self, calls0: int, own: bool) -> None:
        """Release the bar, cache, pool, captioner (and the enricher when ``own``); record call counts."""
        self.bar.close()
        self.cache.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.captioner is not None:
            self.summary.caption_calls = self.captioner.calls
            self.captioner.close()
        self.summary.backend_calls = self.enricher.calls - calls0
        if own:
            self.enricher.close()


def enrich_figures(
    figures: Iterable[PatentFigure],
    settings: Settings,
    *,
    backend: str | None = None,
    k: int | None = None,
    refresh: bool = False,
    show_progress: bool = True,
    enricher: Enricher | None = None,
    wordnet_root: Path | None = None,
) -> EnrichSummary:
    """Describe every figure (K descriptions each) and store the result in the cache.

    Cached figures are not sent to the backend again unless ``refresh``; a figure whose inputs cannot be built or
    whose generation fails is recorded in ``failures`` and the batch goes on. Remote backends run
    ``settings.enrich.concurrency`` requests at a time. Safe to call from several processes at once.

    With neither ``backend`` nor ``enricher`` given and the default ``template`` backend in the settings, a figure
    whose latest descriptions came from an LLM backend (``pir enrich --backend openai``) from the same inputs and K
    counts as cached: the implicit default never overwrites them (``refresh`` or an explicit backend does).

    Args:
        figures: figures to describe (any iterable; consumed in chunks).
        settings: the settings tree (``enrich`` section, ``cache_dir``).
        backend: ``template`` | ``openai`` | ``llamacpp``; default ``settings.enrich.backend``.
        k: descriptions per figure; default ``settings.enrich.k``.
        refresh: regenerate even when cached.
        show_progress: show a progress bar.
        enricher: an existing backend to reuse (its model stays loaded); built from settings when None.
        wordnet_root: WordNet folder for aliases (default ``/usr/share/wordnet``).
    """
    start = time.perf_counter()
    k = int(k or settings.enrich.k)
    own = enricher is None
    enricher = enricher if enricher is not None else make_enricher(settings, backend)
    keep_llm = own and backend is None and enricher.name == "template" and not refresh
    calls0 = enricher.calls
    total = len(figures) if hasattr(figures, "__len__") else None  # type: ignore[arg-type]
    run = _EnrichRun.open(settings, enricher, k, refresh, keep_llm, wordnet_root, total, show_progress)
    try:
        for chunk in _chunks(figures):
            run.chunk(chunk)
    finally:
        run.close(calls0, own)
    summary = run.summary
    summary.alias_share = run.n_alias / summary.n_descriptions if summary.n_descriptions else 0.0
    summary.seconds = time.perf_counter() - start
    return summary


def _llm_entry(entry: CachedEntry | None, ih: str) -> CachedEntry | None:
    """``entry`` when an LLM backend made it from the inputs hashed as ``ih``, else None."""
    if entry is None or entry.backend == "template" or entry.inputs_hash != ih:
        return None
    return entry


def _count_alias(descriptions: list[str], inputs: FigureInputs) -> int:
    return sum(1 for d in descriptions if carries_alias(d, inputs.aliases, inputs.object_name))


def _inputs_cached_caption(figure: PatentFigure, settings: Settings, cache: EnrichCache) -> FigureInputs:
    captioner = make_captioner(settings)
    try:
        caption = _captions([figure], captioner, cache, None, generate=False).get(figure.key)
    finally:
        if captioner is not None:
            captioner.close()
    return figure_inputs(figure, caption, with_aliases=False)


def cached_descriptions(
    figure: PatentFigure, settings: Settings, *, backend: str | None = None, k: int | None = None
) -> list[str] | None:
    """The cached descriptions of a figure for this backend and K, or None (never generates)."""
    name, model = backend_identity(settings, backend)
    k = int(k or settings.enrich.k)
    with _open_cache(settings) as cache:
        inputs = _inputs_cached_caption(figure, settings, cache)
        temperature, seed = sampling(settings, name)
        key = cache_key(
            inputs, name, model, k, settings.enrich.max_chars, lexicon_signature(), temperature=temperature, seed=seed
        )
        hit = cache.get(key)
    return hit.descriptions if hit else None


def latest_descriptions(figure: PatentFigure, settings: Settings, *, k: int | None = None) -> list[str] | None:
    """The figure key's most recent descriptions, whatever backend made them (``pir enrich --show``), or None.

    They are returned only when they were made from the figure's current inputs and K (``k``, default
    ``settings.enrich.k``): changed metadata gives None, not stale descriptions. Never generates.
    """
    path = Path(settings.cache_dir) / "enrich.sqlite"
    if not path.is_file():
        return None
    k = int(k or settings.enrich.k)
    with EnrichCache(path) as cache:
        entry = cache.figure(figure.key)
        if entry is None or entry.inputs_hash is None:
            return None
        inputs = _inputs_cached_caption(figure, settings, cache)
    if entry.inputs_hash != inputs_hash(inputs, k, settings.enrich.max_chars):
        return None
    return list(entry.descriptions)


def get_descriptions(
    figure: PatentFigure,
    settings: Settings,
    *,
    backend: str | None = None,
    k: int | None = None,
    enricher: Enricher | None = None,
) -> list[str]:
    """A figure's descriptions from the cache, generating (and caching) them when missing.

    Without ``backend`` the figure's latest descriptions are used whatever backend made them (see
    :func:`latest_descriptions`; e.g. after ``pir enrich --backend openai``, or a template fallback stored when the
    LLM server was down), then the settings backend's cache entry; an explicit ``backend`` looks up exactly its
    own entry. Generation uses ``enricher``, else the process-wide :func:`~pir.enrich.backends.shared_enricher`.
    """
    if backend is None:
        latest = latest_descriptions(figure, settings, k=k)
        if latest is not None:
            return latest
    cached = cached_descriptions(figure, settings, backend=backend, k=k)
    if cached is not None:
        return cached
    if enricher is None:
        enricher = shared_enricher(settings, backend)
    summary = enrich_figures([figure], settings, backend=backend, k=k, show_progress=False, enricher=enricher)
    entry = figure_descriptions(figure.key, settings)
    if summary.failures or entry is None:
        reason = summary.failures[0][1] if summary.failures else "see the log"
        raise EnrichError(f"{figure.key}: no descriptions could be generated ({reason})")
    return list(entry["descriptions"])


def many_descriptions(
    figures: Sequence[PatentFigure],
    settings: Settings,
    *,
    backend: str | None = None,
    k: int | None = None,
    enricher: Enricher | None = None,
) -> dict[str, list[str] | Exception]:
    """:func:`get_descriptions` for a batch of figures with one cache connection and one generation run.

    Each figure gets what :func:`get_descriptions` would return for it (the figure's latest descriptions made from
    its current inputs and K, then the backend's cache entry, then generated and cached), or the exception it would
    raise: ``{figure key: descriptions or exception}``. The misses (none after :func:`enrich_figures` of the same
    figures) are generated together by one :func:`enrich_figures` call.
    """
    name, model = backend_identity(settings, backend)
    k = int(k or settings.enrich.k)
    max_chars = settings.enrich.max_chars
    temperature, seed = sampling(settings, name)
    lexicon = lexicon_signature()
    out: dict[str, list[str] | Exception] = {}
    misses: list[PatentFigure] = []
    captioner = make_captioner(settings)
    try:
        with _open_cache(settings) as cache:
            captions = _captions(list(figures), captioner, cache, None, generate=False)
            for fig in figures:
                try:
                    inputs = figure_inputs(fig, captions.get(fig.key), with_aliases=False)
                    if backend is None:  # latest_descriptions: whatever backend, from the current inputs and K
                        entry = cache.figure(fig.key)
                        if entry is not None and entry.inputs_hash == inputs_hash(inputs, k, max_chars):
                            out[fig.key] = list(entry.descriptions)
                            continue
                    key = cache_key(inputs, name, model, k, max_chars, lexicon, temperature=temperature, seed=seed)
                    hit = cache.get(key)
                except Exception as exc:  # noqa: BLE001 - the figure's own failure, as get_descriptions raises it
                    out[fig.key] = exc
                    continue
                if hit is not None:
                    out[fig.key] = list(hit.descriptions)
                else:
                    misses.append(fig)
    finally:
        if captioner is not None:
            captioner.close()
    if misses:
        out.update(_generate_missing(misses, settings, backend=backend, k=k, enricher=enricher))
    return out


def _generate_missing(
    figures: list[PatentFigure], settings: Settings, *, backend: str | None, k: int, enricher: Enricher | None
) -> dict[str, list[str] | Exception]:
    """Generate (and cache) the descriptions of figures nothing is cached for; as :func:`get_descriptions` does."""
    enricher = enricher if enricher is not None else shared_enricher(settings, backend)
    summary = enrich_figures(figures, settings, backend=backend, k=k, show_progress=False, enricher=enricher)
    failed = dict(summary.failures)
    out: dict[str, list[str] | Exception] = {}
    with _open_cache(settings) as cache:
        for fig in figures:
            entry = cache.figure(fig.key)
            if fig.key in failed or entry is None:
                reason = failed.get(fig.key, "see the log")
                out[fig.key] = EnrichError(f"{fig.key}: no descriptions could be generated ({reason})")
            else:
                out[fig.key] = list(entry.descriptions)
    return out


def figure_descriptions(key: str, settings: Settings) -> dict[str, Any] | None:
    """The latest descriptions stored for a figure key (``"USD0907292/D00001"``) with backend, model and inputs;
    None when the figure was never enriched."""
    path = Path(settings.cache_dir) / "enrich.sqlite"
    if not path.is_file():
        return None
    with EnrichCache(path) as cache:
        entry = cache.figure(key.strip())
    if entry is None:
        return None
    return {
        "key": key.strip(),
        "backend": entry.backend,
        "model": entry.model,
        "fallback": entry.fallback,
        "object_name": entry.inputs.get("object_name"),
        "aliases": entry.inputs.get("aliases", []),
        "descriptions": entry.descriptions,
    }


def format_figure_descriptions(entry: dict[str, Any]) -> str:
    """Text rendering of :func:`figure_descriptions`' result."""
    head = f"{entry['key']}: {entry['object_name']} ({entry['backend']}/{entry['model']}"
    head += f", template fallback: {entry['fallback']})" if entry.get("fallback") else ")"
    lines = [head]
    if entry.get("aliases"):
        lines.append(f"  aliases: {', '.join(entry['aliases'])}")
    lines += [f"  {i:2d}. {text}" for i, text in enumerate(entry["descriptions"], 1)]
    return "\n".join(lines)


def similar_keys(key: str, settings: Settings, limit: int = 5) -> list[str]:
    """Stored figure keys sharing ``key``'s patent id (for "not found" messages)."""
    path = Path(settings.cache_dir) / "enrich.sqlite"
    if not path.is_file():
        return []
    with EnrichCache(path) as cache:
        return cache.figure_keys(key.split("/", 1)[0], limit)


def enrich_path(
    path: Path,
    settings: Settings,
    *,
    backend: str | None = None,
    k: int | None = None,
    refresh: bool = False,
    show_progress: bool = True,
) -> EnrichSummary:
    """Read the figures under ``path`` (any format ``pir.ingest.readers`` knows) and enrich them."""
    issues: list[Any] = []
    summary = enrich_figures(
        read_figures(Path(path), issues=issues),
        settings,
        backend=backend,
        k=k,
        refresh=refresh,
        show_progress=show_progress,
    )
    for issue in issues:  # pir.ingest.readers.ReadIssue: path, reason
        summary.failures.append((str(getattr(issue, "path", path)), str(getattr(issue, "reason", issue))))
    return summary


def show_figure(key: str, settings: Settings, *, as_json: bool = False) -> str:
    """One figure's cached descriptions as text (or JSON).

    Raises:
        KeyError: nothing cached for ``key`` (the message names the cache and similar keys).
    """
    entry = figure_descriptions(key, settings)
    if entry is None:
        hint = ", ".join(similar_keys(key, settings)) or "run `pir enrich PATH` first"
        raise KeyError(f"{key}: no descriptions in {settings.cache_dir / 'enrich.sqlite'} ({hint})")
    return json.dumps(entry, indent=2) if as_json else format_figure_descriptions(entry)
