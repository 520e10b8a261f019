"""``pir bench scale``: what a collection of N figures costs on this machine, measured through pir's own store.

For each size (100k, 300k, 1M by default) and each quantization setting (``none``, ``int8``), one *cell*:

- **data**: a synthetic corpus with pir's real shapes, generated deterministically in chunks from a seed (never held
  whole: 1M x 1280 float32 is 5 GB). Patents of 1 + Poisson(5) figures; each patent belongs to an image cluster
  (``size // 50`` centres), and each cluster to a class (Zipf over :data:`N_CLASSES` classes, so one class holds
  about 2% of the figures and the biggest about 20%). Per figure: an L2-normalised ``image`` vector (1280-d, the
  default encoder ``tf_efficientnet_lite0``) = its cluster centre + patent + figure noise; a ``text`` vector (384-d,
  MiniLM) near its class's text centre (figures of one patent close together); a sparse ``words`` vector of about 15
  terms (median 14, 5-95%: 7-30, as pir's real figures with enrichment: patent terms from its class's vocabulary, a
  viewpoint term and Zipf words, BM25 term-frequency weights); a payload like
  :meth:`pir.ingest.schema.PatentFigure.payload` (patent id, figure id, title, object name, viewpoint: one of eight,
  ``perspective`` about 14%; classes, year 2005-2024, publication date, description, image path).
- **build**: upsert through :func:`pir.search.open_store` (Qdrant Edge, the settings' HNSW and quantization
  settings), then ``optimize()``; seconds and points/s of each, RSS and the collection's size on disk after each.
- **reopen**: close (flush), the collection's files dropped from the page cache (``posix_fadvise``), open again as
  pir does (load + its warm-up queries), the first query, then a cold pass over the queries.
- **queries** (after that cold pass): p50/p95 of image queries, hybrid queries (image + text + words, ``zscore``
  fusion, :class:`pir.search.query.HybridQuery`) and filtered image queries at about 2% (one class), 14% (one
  viewpoint) and 3% (a class set x a year range); recall@10 against exact numpy top-10 for the image and filtered
  queries (computed chunk by chunk while the data is generated), and the planner's choice per filter. Hybrid queries
  report latency only: recall of their image leg alone would not mean anything.
- **memory**: each cell runs in a fresh process; RSS above its baseline before the store was opened (after the
  build, while serving, and the peak of each phase, sampled by a child process), split into anonymous and
  file-backed pages, and bytes per figure; *needed* = the anonymous peak + the serving file pages (what must fit; the
  rest of the file-backed peak is page cache the kernel can drop); **disk**: bytes actually allocated under the
  collection's directory, per figure (after the bulk upsert, with its write-ahead log, and after ``optimize()``).
- **CPU**: user + system seconds of all threads for upsert and optimize, next to the wall time (other processes on
  a shared machine stretch the wall time; the load average is recorded per cell).

300k, 1M and 10M figures, where not measured, are extrapolated (marked so) from the measured per-figure costs. A size
whose estimated peak RAM (or disk) exceeds what this machine has is refused with one line before anything runs.
Each finished cell is written to ``results.json`` at once; ``resume=True`` skips the cells already there (same data
and query settings). Writes ``results.json``, ``results.md`` and ``scale.png`` into ``out``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.bench.speed import peak_rss_mb
from pir.core.diskspace import dir_bytes, free_bytes
from pir.ingest.schema import point_id
from pir.search.factory import open_store
from pir.search.query import DEFAULT_TEXT_DIM, HybridQuery, SearchFilter
from pir.search.words import BM25_AVG_LEN, BM25_B, BM25_K, SparseVector

if TYPE_CHECKING:
    from pir.core.config import Settings
    from pir.search.store import VectorStore

log = logging.getLogger(__name__)

#: Image vector size of the default encoder (``tf_efficientnet_lite0``'s pooled features).
DEFAULT_IMAGE_DIM = 1280
DEFAULT_SIZES = (100_000, 300_000, 1_000_000)
QUANTIZATIONS = ("none", "int8", "binary", "auto")
#: Sizes extrapolated from the largest measured one (those above it).
EXTRAPOLATE_TO = (300_000, 1_000_000, 10_000_000)
N_CLASSES = 64
CLASS_ZIPF = 1.0
FIGURES_PER_PATENT = 5.0  # Poisson mean of the figures beyond the first
POINTS_PER_CENTRE = 50
VIEWPOINTS = ("perspective", "front", "rear", "left", "right", "top", "bottom", "detail")
VIEWPOINT_P = (0.14, 0.16, 0.12, 0.12, 0.12, 0.12, 0.12, 0.10)
YEARS = tuple(range(2005, 2025))
VOCAB = 50_000
CLASS_VOCAB = 40
WORDS_MEAN = 16.5  # tokens per figure: about 15 distinct terms (pir's real figures, enriched: mean 15.4, median 14)
WORDS_DISPERSION = 4.0  # negative binomial n: standard deviation about 8 terms
QUERY_WORDS = 3
#: Filters of the benchmark (name -> target share of the figures).
FILTER_TARGETS = {"class_2pct": 0.02, "viewpoint_14pct": 0.14, "class_year_3pct": 0.03}
#: Rough bytes of one stored payload and of the process outside the store (for the RAM estimate before a measurement).
PAYLOAD_BYTES = 2000
BASE_BYTES = 1 << 30
#: Peak RSS over raw vector bytes while ``optimize()`` holds the old and the new segments (before a measurement).
PEAK_FACTOR = 2.5
#: Disk over raw bytes right after a bulk upsert (WAL + unindexed segment), before a measurement.
DISK_FACTOR = 3.0


# ----------------------------------------------------------------------------------------------- synthetic corpus
@dataclasses.dataclass
class Chunk:
    """Figures ``start .. start + len(ids)`` of the corpus, with every vector and payload the store takes."""

    start: int
    ids: list[str]
    image: np.ndarray
    text: np.ndarray
    words: list[SparseVector]
    payloads: list[dict[str, Any]]


class Corpus:
    """The deterministic synthetic corpus of one size: small per-figure metadata arrays held, vectors generated per
    chunk of whole patents (``chunk`` figures on average) from ``(seed, chunk index)``.

    Attributes:
        fig_patent, fig_viewpoint, fig_class, fig_year: Per figure (int arrays), for the exact filtered ground truth.
        queries, query_text, query_words: The image queries, and the text / words halves of the hybrid queries.
    """

    def __init__(
        self, size: int, *, dim: int = DEFAULT_IMAGE_DIM, text_dim: int = DEFAULT_TEXT_DIM, n_queries: int = 200,
        seed: int = 0, chunk: int = 4096,
    ) -> None:  # fmt: skip
        if size < 1 or dim < 2 or text_dim < 2 or n_queries < 1:
            raise ValueError(f"corpus: size, dims and queries must be positive (got {size}, {dim}, {text_dim})")
        self.size, self.dim, self.text_dim, self.seed = int(size), int(dim), int(text_dim), int(seed)
        self.n_queries = int(n_queries)
        rng = np.random.default_rng([seed, 0])
        # patents and their figures
        counts = 1 + rng.poisson(FIGURES_PER_PATENT, size // 2 + 2)
        ends = np.cumsum(counts)
        n_pat = int(np.searchsorted(ends, size) + 1)
        counts = counts[:n_pat]
        counts[-1] -= int(ends[n_pat - 1] - size)
        self.fig_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.n_patents = n_pat
        self.fig_patent = np.repeat(np.arange(n_pat, dtype=np.int32), counts)
        self.fig_number = (np.arange(size) - self.fig_start[self.fig_patent]).astype(np.int32) + 1
        # clusters, classes (Zipf, one per cluster), years, viewpoints
        self.n_centres = max(1, size // POINTS_PER_CENTRE)
        zipf = 1.0 / np.arange(1, N_CLASSES + 1) ** CLASS_ZIPF
        zipf /= zipf.sum()
        self.class_names = [f"D{i + 1:02d}" for i in range(N_CLASSES)]
        self.centre_class = rng.choice(N_CLASSES, self.n_centres, p=zipf).astype(np.int16)
        self.patent_centre = rng.integers(0, self.n_centres, n_pat).astype(np.int32)
        yw = np.linspace(1.0, 2.0, len(YEARS))
        self.patent_year = rng.choice(np.asarray(YEARS), n_pat, p=yw / yw.sum()).astype(np.int16)
        self.patent_day = rng.integers(0, 365, n_pat).astype(np.int16)
        self.fig_class = self.centre_class[self.patent_centre][self.fig_patent]
        self.fig_year = self.patent_year[self.fig_patent]
        self.fig_viewpoint = rng.choice(len(VIEWPOINTS), size, p=np.asarray(VIEWPOINT_P)).astype(np.int8)
        # vocabularies: term ids as Qdrant's BM25 makes them (hashes below 2^31)
        ids = rng.choice(2**31 - 1, VOCAB + N_CLASSES * CLASS_VOCAB + len(VIEWPOINTS), replace=False)
        self.vocab = ids[:VOCAB]
        self.class_vocab = ids[VOCAB : VOCAB + N_CLASSES * CLASS_VOCAB].reshape(N_CLASSES, CLASS_VOCAB)
        self.viewpoint_terms = ids[VOCAB + N_CLASSES * CLASS_VOCAB :]
        vz = 1.0 / np.arange(1, VOCAB + 1) ** 1.07
        self.vocab_p = vz / vz.sum()
        cz = 1.0 / np.arange(1, CLASS_VOCAB + 1)
        self.class_vocab_p = cz / cz.sum()
        self.centres = _unit(rng.standard_normal((self.n_centres, dim), dtype=np.float32))
        self.class_text = _unit(rng.standard_normal((N_CLASSES, text_dim), dtype=np.float32))
        # queries: new patents drawn from the same mixture
        qr = np.random.default_rng([seed, 2])
        qc = qr.integers(0, self.n_centres, n_queries)
        self.queries = _unit(self.centres[qc] + _noise(qr, (n_queries, dim)))
        qcls = self.centre_class[qc]
        self.query_text = _unit(self.class_text[qcls] + _noise(qr, (n_queries, text_dim)))
        self.query_words = []
        for c in qcls:
            terms = np.unique(qr.choice(self.class_vocab[c], QUERY_WORDS, replace=False, p=self.class_vocab_p))
            self.query_words.append(SparseVector(tuple(int(t) for t in terms), (1.0,) * len(terms)))
        self.patents_per_chunk = max(1, int(round(chunk / (1 + FIGURES_PER_PATENT))))

    # ------------------------------------------------------------------ filters
    def filters(self) -> dict[str, tuple[SearchFilter, np.ndarray, str]]:
        """The benchmark's filters: name -> (filter, mask over the figures, description), chosen on the realised
        data to be nearest their target share (:data:`FILTER_TARGETS`)."""
        n = self.size
        cls_share = np.bincount(self.fig_class, minlength=N_CLASSES) / n
        c2 = int(np.argmin(np.abs(cls_share - FILTER_TARGETS["class_2pct"])))
        out: dict[str, tuple[SearchFilter, np.ndarray, str]] = {
            "class_2pct": (
                SearchFilter(classes=[self.class_names[c2]]),
                self.fig_class == c2,
                f"classes = {self.class_names[c2]}",
            ),
            "viewpoint_14pct": (
                SearchFilter(viewpoints=["perspective"]),
                self.fig_viewpoint == 0,
                "viewpoint = perspective",
            ),
        }
        order = np.argsort(-cls_share)
        best: tuple[float, int, int, int] | None = None
        for first in range(0, 6):
            for n_cls in range(2, 6):
                in_cls = np.isin(self.fig_class, order[first : first + n_cls])
                for n_years in range(2, 8):
                    y0 = YEARS[-n_years]
                    share = float((in_cls & (self.fig_year >= y0)).sum()) / n
                    err = abs(share - FILTER_TARGETS["class_year_3pct"])
                    if best is None or err < best[0] - 1e-9:
                        best = (err, first, n_cls, y0)
        assert best is not None
        _, first, n_cls, y0 = best
        y1 = YEARS[-1]
        chosen = order[first : first + n_cls]
        names = [self.class_names[int(c)] for c in chosen]
        out["class_year_3pct"] = (
            SearchFilter(classes=names, year_from=y0, year_to=y1),
            np.isin(self.fig_class, chosen) & (self.fig_year >= y0) & (self.fig_year <= y1),
            f"classes in {{{', '.join(names)}}} and year {y0}-{y1}",
        )
        return out

    # ------------------------------------------------------------------- chunks
    def n_chunks(self) -> int:
        return math.ceil(self.n_patents / self.patents_per_chunk)

    def chunks(self) -> Iterator[Chunk]:
        """The corpus in order, chunk by chunk (each from its own seeded generator)."""
        for c in range(self.n_chunks()):
            yield self.chunk(c)

    def chunk(self, c: int) -> Chunk:
        """Chunk ``c``: the figures of patents ``c * patents_per_chunk ..`` (same output for the same seed)."""
        p0 = c * self.patents_per_chunk
        p1 = min(self.n_patents, p0 + self.patents_per_chunk)
        f0, f1 = int(self.fig_start[p0]), int(self.fig_start[p1])
        n, npat = f1 - f0, p1 - p0
        rng = np.random.default_rng([self.seed, 1, c])
        local = self.fig_patent[f0:f1] - p0
        centre = self.patent_centre[p0:p1]
        image = self.centres[centre[local]] + 0.6 * _noise(rng, (npat, self.dim))[local]
        image += 0.8 * _noise(rng, (n, self.dim))
        cls = self.centre_class[centre]
        text = self.class_text[cls[local]] + 0.8 * _noise(rng, (npat, self.text_dim))[local]
        text += 0.6 * _noise(rng, (n, self.text_dim))
        n_pterms = rng.integers(3, 7, npat)
        pterms = [rng.choice(self.class_vocab[cls[j]], n_pterms[j], replace=False, p=self.class_vocab_p) for j in
                  range(npat)]  # fmt: skip
        n_terms = 1 + rng.negative_binomial(WORDS_DISPERSION, WORDS_DISPERSION / (WORDS_DISPERSION + WORDS_MEAN - 1), n)
        extra = rng.choice(self.vocab, int(n_terms.sum()), p=self.vocab_p)
        ends = np.cumsum(n_terms)
        words: list[SparseVector] = []
        payloads: list[dict[str, Any]] = []
        ids: list[str] = []
        for i in range(n):
            g, j = f0 + i, int(local[i])
            vp = int(self.fig_viewpoint[g])
            k_extra = max(0, int(n_terms[i]) - len(pterms[j]) - 1)
            toks = np.concatenate([pterms[j], [self.viewpoint_terms[vp]], extra[ends[i] - n_terms[i] :][:k_extra]])
            words.append(_bm25_tf(toks))
            p = p0 + j
            pid, fig = f"SD{p:07d}", f"FIG{int(self.fig_number[g])}"
            ids.append(point_id(pid, fig))
            payloads.append(self._payload(p, pid, fig, vp, int(cls[j]), pterms[j]))
        return Chunk(f0, ids, _unit(image), _unit(text), words, payloads)

    def _payload(self, p: int, pid: str, fig: str, vp: int, cls: int, terms: np.ndarray) -> dict[str, Any]:
        """A payload shaped like pir's stored one (about 1.9 KB of JSON, as real figures with enrichment)."""
        year = int(self.patent_year[p])
        day = date(year, 1, 1) + timedelta(days=int(self.patent_day[p]))
        obj = f"{_WORDS[int(terms[0]) % len(_WORDS)]} {_WORDS[int(terms[1]) % len(_WORDS)]}"
        code, view, n = self.class_names[cls], VIEWPOINTS[vp], int(fig[3:])
        sub = f"{code}/{100 + int(terms[-1]) % 400}"
        digest = f"{p:016x}{n:016x}" * 2
        return {
            "patent_id": pid,
            "figure_id": fig,
            "image_path": f"/data/uspto/{pid}-{day:%Y%m%d}/{pid}-{day:%Y%m%d}-D{n:05d}.TIF",
            "title": f"Ornamental design for a {obj}",
            "object_name": obj,
            "viewpoint": view,
            "uspc": [sub],
            "locarno": [f"{cls + 1:02d}-{int(terms[-1]) % 20:02d}"],
            "cpc": [],
            "classes": [sub, code],
            "class_label": code,
            "publication_date": day.isoformat(),
            "year": year,
            "description": f"FIG. {n} is a {view} view of an ornamental design for a {obj} according to the invention",
            "source_format": "synthetic",
            "encoder": "tf_efficientnet_lite0",
            "encoder_version": "timm-1.0",
            "content_hash": digest,
            "metadata_hash": digest[::-1],
            "embedded_at": f"{day.isoformat()}T00:00:00+00:00",
            "descriptions": [t.format(obj=obj, view=view, code=code) for t in _DESCRIPTIONS],
            "aliases": [f"{obj} unit", f"{obj.split()[1]} device", f"{obj.split()[0]} article"],
            "about": [f"a {obj.split()[1]} of the kind used for {obj.split()[0]} work, in class {code}"],
        }

    def index_of(self, payload: dict[str, Any]) -> int:
        """Figure index of a stored payload (patent id + figure number)."""
        p = int(str(payload["patent_id"])[2:])
        return int(self.fig_start[p]) + int(str(payload["figure_id"])[3:]) - 1


#: Object words of the synthetic titles and descriptions.
_WORDS = tuple(
    "lamp chair bottle handle shoe cartridge bracket vehicle speaker table cup knob panel housing toy clip lid rack "
    "tray hook mount sole grille case".split()
)
_DESCRIPTIONS = (
    "A {view} view of an ornamental design for an embodiment of a {obj}.",
    "Isolated {obj} drawn for a design patent, without background.",
    'A {obj} design from the patent "Ornamental design for a {obj}".',
    "A {obj} seen in {view} view, drawn as a patent figure.",
    "Ornamental design for a {obj} ({obj} unit, {obj} article).",
    "{view} view of a {obj}, also called a {obj} device.",
    "Black-and-white line drawing of a {obj} in {view} view.",
    "Patent drawing of a {obj} in {view} view.",
    "Design patent sheet showing a {obj}; the claimed article is a {obj}.",
    "Class {code} design: a {obj} drawn in outline in {view} view.",
)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Gaussian rows of norm about 1 (so a centre + noise has cosine about 0.7 to its centre)."""
    return rng.standard_normal(shape, dtype=np.float32) / np.float32(math.sqrt(shape[1]))


def _bm25_tf(tokens: np.ndarray) -> SparseVector:
    """BM25 term-frequency weights of a token list, as :func:`pir.search.words.words_vector` stores them."""
    terms, tf = np.unique(tokens, return_counts=True)
    norm = BM25_K * (1 - BM25_B + BM25_B * len(tokens) / BM25_AVG_LEN)
    values = tf * (BM25_K + 1) / (tf + norm)
    return SparseVector(tuple(int(t) for t in terms), tuple(float(v) for v in values))


class ExactTopK:
    """Exact top-k (cosine = dot product of unit vectors) of each query, per mask, merged chunk by chunk."""

    def __init__(self, queries: np.ndarray, masks: dict[str, np.ndarray], k: int) -> None:
        self.q = np.ascontiguousarray(queries, dtype=np.float32)
        self.masks = masks
        self.k = k
        n = len(self.q)
        self.scores = {m: np.full((n, 0), -np.inf, dtype=np.float32) for m in masks}
        self.index = {m: np.zeros((n, 0), dtype=np.int64) for m in masks}
        self.seconds = 0.0

    def update(self, start: int, x: np.ndarray) -> None:
        t = time.perf_counter()
        s = self.q @ x.T
        for name, mask in self.masks.items():
            sub = np.flatnonzero(mask[start : start + len(x)])
            if not len(sub):
                continue
            cand_s = np.concatenate([self.scores[name], s[:, sub]], axis=1)
            cand_i = np.concatenate([self.index[name], np.broadcast_to(sub + start, (len(s), len(sub)))], axis=1)
            if cand_s.shape[1] > self.k:
                top = np.argpartition(-cand_s, self.k - 1, axis=1)[:, : self.k]
                cand_s = np.take_along_axis(cand_s, top, axis=1)
                cand_i = np.take_along_axis(cand_i, top, axis=1)
            self.scores[name], self.index[name] = cand_s, cand_i
        self.seconds += time.perf_counter() - t

    def truth(self, name: str) -> list[set[int]]:
        return [set(row.tolist()) for row in self.index[name]]


# ------------------------------------------------------------------------------------------------- the machine
def meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in bytes (MemTotal, MemAvailable, ...); empty where there is none."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    except OSError:
        pass
    return out


def _status() -> dict[str, int]:
    """Memory lines of ``/proc/self/status`` in bytes (VmRSS, VmHWM, RssAnon, RssFile)."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


_SAMPLER = """
import json, os, sys, time
pid, path, every = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
best = {}
while True:
    try:
        with open(f"/proc/{pid}/status") as f:
            now = {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in f)
                   if k in ("VmRSS", "RssAnon", "RssFile")}
    except OSError:
        break
    if any(v > best.get(k, -1) for k, v in now.items()):
        best = {k: max(v, best.get(k, -1)) for k, v in now.items()}
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(best))
        os.replace(path + ".tmp", path)
    time.sleep(every)
"""


class PeakSampler:
    """Highest VmRSS, RssAnon and RssFile of this process during a ``with`` block, each on its own, sampled every
    ``every`` seconds by a small child process (the engine's blocking calls may hold the GIL, so no thread)."""

    def __init__(self, work: Path, every: float = 0.25) -> None:
        self.path = work / f".peak-{os.getpid()}-{time.monotonic_ns()}.json"
        self.every = every
        self.peak: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PeakSampler:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if Path(f"/proc/{os.getpid()}/status").exists():
            cmd = [sys.executable, "-c", _SAMPLER, str(os.getpid()), str(self.path), str(self.every)]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        last = _status()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        try:
            got = json.loads(self.path.read_text())
        except (OSError, ValueError):
            got = {}
        self.path.unlink(missing_ok=True)
        keys = ("VmRSS", "RssAnon", "RssFile")
        self.peak = {k: max(int(got.get(k, 0)), last.get(k, 0)) for k in keys}


def _reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``; Linux ``clear_refs`` 5). False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _evict(path: Path) -> None:
    """Drop a closed collection's files from the page cache, so the reopen reads them from disk."""
    if not hasattr(os, "posix_fadvise"):
        return
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


def raw_bytes_per_figure(dim: int, text_dim: int) -> int:
    """Float32 image + text vectors, the words vector and the payload of one figure (before any index)."""
    return 4 * (dim + text_dim) + int(8 * WORDS_MEAN) + PAYLOAD_BYTES


def estimate(size: int, dim: int, text_dim: int, quant: str, done: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Estimated peak RAM and disk of a cell: from the measured per-figure costs of the largest finished cell of the
    same quantization and shapes when there is one (RAM: ``ram_needed_bytes``, the anonymous peak plus the serving
    file pages), else from the raw bytes (:data:`PEAK_FACTOR`, :data:`DISK_FACTOR`).
    """
    same = [c for c in done if c.get("quantization") == quant and c["config"]["dim"] == dim
            and c["config"]["text_dim"] == text_dim]  # fmt: skip
    generator = (size // POINTS_PER_CENTRE) * dim * 4 + size * 32
    if same:
        ref = max(same, key=lambda c: c["size"])
        pf = ref["per_figure"]
        ram = pf.get("ram_needed_bytes", pf["ram_peak_bytes"]) * size * 1.15 + BASE_BYTES + generator
        disk = ref["per_figure"]["disk_peak_bytes"] * size * 1.15
        basis = f"measured at {ref['size']}"
    else:
        raw = raw_bytes_per_figure(dim, text_dim)
        ram = raw * PEAK_FACTOR * size + BASE_BYTES + generator
        disk = raw * DISK_FACTOR * size
        basis = "raw bytes x factor (nothing measured yet)"
    return {"ram_bytes": int(ram), "disk_bytes": int(disk), "basis": basis}


# ------------------------------------------------------------------------------------------------------ a cell
def _cell_settings(settings: Settings, work: Path, quant: str, size: int) -> Settings:
    """The settings of one cell: the embedded store under ``work``, quantization ``quant``, planned for ``size``
    figures (``vectors_on_disk`` as the settings say: by default, originals on disk exactly when quantized)."""
    q = settings.qdrant.model_copy(update={"url": None, "quantization": quant, "expected_points": size})
    return settings.model_copy(update={"data_dir": work, "qdrant": q})


def _touch_engine(settings: Settings, corpus: Corpus) -> None:
    """Build, optimize, query and drop a 300-figure collection before the cell, so that the engine's code pages and
    thread pools are in the baseline RSS, not counted as the measured collection's memory."""
    name = "scale-warmup"
    with open_store(settings, collection=name) as store:
        ch = corpus.chunk(0)
        n = min(300, len(ch.ids))
        store.ensure_collection(corpus.dim, encoder="synthetic", text_dim=corpus.text_dim, text_encoder="synthetic")
        store.upsert(ch.ids[:n], ch.image[:n], ch.payloads[:n], text=ch.text[:n], words=ch.words[:n])
        store.optimize()
        store.search(corpus.queries[0], 10, filter=SearchFilter(viewpoints=["perspective"]))
        store.hybrid_search(
            HybridQuery(image=corpus.queries[0], text=corpus.query_text[0], words=corpus.query_words[0])
        )
    shutil.rmtree(settings.store_dir / name, ignore_errors=True)


def planner_choice(store: VectorStore, flt: SearchFilter) -> dict[str, Any]:
    """The filter planner's choice for ``flt`` (:meth:`~pir.search.store.VectorStore.plan_for`), with the match count
    and the thresholds it decides by."""
    return {
        "plan": store.plan_for(flt),
        "matching": store.count(flt),
        "exact_filter_threshold": store.exact_filter_threshold,
        "acorn_max_selectivity": store.acorn_max_selectivity,
    }


def _collection_settings(store: VectorStore) -> dict[str, Any]:
    return dict(json.loads(json.dumps(store.collection_settings(), default=str)))


def _pct(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def _mem_delta(now: dict[str, int], base: dict[str, int]) -> dict[str, float]:
    mb = 1024 * 1024
    return {
        "rss_mb": round((now.get("VmRSS", 0) - base.get("VmRSS", 0)) / mb, 1),
        "anon_mb": round((now.get("RssAnon", 0) - base.get("RssAnon", 0)) / mb, 1),
        "file_mb": round((now.get("RssFile", 0) - base.get("RssFile", 0)) / mb, 1),
    }


def measure_cell(
    settings: Settings, corpus: Corpus, quant: str, work: Path, *, k: int = 10, keep: bool = False,
    say: Callable[[str], None] = lambda _m: None, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Build, reopen and query one (size, quantization) collection (see the module docstring)."""
    size, tag = corpus.size, f"{corpus.size}/{quant}"
    s2 = _cell_settings(settings, work, quant, size)
    name = f"scale-{size}-{quant}"
    coll = s2.store_dir / name
    shutil.rmtree(coll, ignore_errors=True)
    filters = corpus.filters()
    masks = {"none": np.ones(size, dtype=bool), **{n: m for n, (_, m, _) in filters.items()}}
    gt = ExactTopK(corpus.queries, masks, k)
    gc.collect()
    base = _status()
    peak_reset = _reset_peak()
    out: dict[str, Any] = {"size": size, "quantization": quant, "collection": name, "load_avg_start": _load_avg()}
    t_all = time.perf_counter()
    samplers = {phase: PeakSampler(work) for phase in ("upsert", "optimize", "serving")}
    store = open_store(s2, collection=name)
    try:
        store.ensure_collection(
            corpus.dim, encoder="synthetic", text_dim=corpus.text_dim, text_encoder="synthetic", expected_points=size
        )
        upsert_s = upsert_cpu = 0.0
        say(f"[{tag}] upserting {size:,} figures in {corpus.n_chunks()} chunks")
        bar = _bar(size, f"{tag} upsert", progress)
        with samplers["upsert"]:
            for ch in corpus.chunks():
                t, c = time.perf_counter(), _cpu()
                store.upsert(ch.ids, ch.image, ch.payloads, text=ch.text, words=ch.words)
                upsert_s += time.perf_counter() - t
                upsert_cpu += _cpu() - c
                gt.update(ch.start, ch.image)
                bar(len(ch.ids))
        bar(0, close=True)
        out["upsert_s"] = round(upsert_s, 2)
        out["upsert_cpu_s"] = round(upsert_cpu, 2)
        out["exact_truth_s"] = round(gt.seconds, 2)
        mem_upsert, disk_upsert = _status(), dir_bytes(coll)
        say(f"[{tag}] upsert {upsert_s:.1f} s; optimize (HNSW build, blocking) ...")
        t, c = time.perf_counter(), _cpu()
        with samplers["optimize"]:
            store.optimize()
        out["optimize_s"] = round(time.perf_counter() - t, 2)
        out["optimize_cpu_s"] = round(_cpu() - c, 2)  # all threads: the wall time on an idle machine is about this
        # divided by the cores the build keeps busy
        mem_built, disk_built = _status(), dir_bytes(coll)
        say(f"[{tag}] optimize {out['optimize_s']:.1f} s")
        out["collection_settings"] = _collection_settings(store)
        out["count"] = store.count()
        t = time.perf_counter()
        store.close()
        out["close_s"] = round(time.perf_counter() - t, 3)
        disk_closed = dir_bytes(coll)
        _evict(coll)
        gc.collect()
        with samplers["serving"]:
            t = time.perf_counter()
            store = open_store(s2, collection=name)
            out["reopen_s"] = round(time.perf_counter() - t, 3)
            out.update(_queries(store, corpus, filters, gt, k, say=say, tag=tag))
            mem_serving = _status()
    finally:
        store.close()
        if not keep:
            shutil.rmtree(coll, ignore_errors=True)
    peak = _status().get("VmHWM", 0) if peak_reset else int(peak_rss_mb() * 1024 * 1024)
    mb = 1024 * 1024
    out["memory"] = {
        "baseline_rss_mb": round(base.get("VmRSS", 0) / mb, 1),
        "after_upsert": _mem_delta(mem_upsert, base),
        "after_optimize": _mem_delta(mem_built, base),
        "serving": _mem_delta(mem_serving, base),
        "peak_by_phase": {phase: _mem_delta(sm.peak, base) for phase, sm in samplers.items()},
        "peak_rss_mb": round(peak / mb, 1),
        "peak_above_baseline_mb": round((peak - base.get("VmRSS", 0)) / mb, 1),
        "peak_source": "VmHWM reset before the cell" if peak_reset else "ru_maxrss of the process",
    }
    out["disk"] = {
        "after_upsert_mb": round(disk_upsert / mb, 1),
        "after_optimize_mb": round(disk_built / mb, 1),
        "closed_mb": round(disk_closed / mb, 1),
    }
    m = out["memory"]
    out["per_figure"] = {
        "ram_serving_bytes": round(m["serving"]["rss_mb"] * mb / size),
        "ram_after_optimize_bytes": round(m["after_optimize"]["rss_mb"] * mb / size),
        "ram_peak_bytes": round(m["peak_above_baseline_mb"] * mb / size),
        "ram_peak_anon_bytes": round(max(p["anon_mb"] for p in m["peak_by_phase"].values()) * mb / size),
        # what must fit: the anonymous peak (no swap) + the file pages the queries keep resident; the rest of the
        # file-backed peak is page cache the kernel can write back and drop
        "ram_needed_bytes": round(
            (max(p["anon_mb"] for p in m["peak_by_phase"].values()) + max(0.0, m["serving"]["file_mb"])) * mb / size
        ),
        "disk_bytes": round(disk_closed / size),
        "disk_peak_bytes": round(max(disk_upsert, disk_built, disk_closed) / size),
        "raw_bytes": raw_bytes_per_figure(corpus.dim, corpus.text_dim),
        "upsert_us": round(out["upsert_s"] / size * 1e6, 2),
        "optimize_us": round(out["optimize_s"] / size * 1e6, 2),
        "upsert_cpu_us": round(out["upsert_cpu_s"] / size * 1e6, 2),
        "optimize_cpu_us": round(out["optimize_cpu_s"] / size * 1e6, 2),
        "reopen_us": round(out["reopen_s"] / size * 1e6, 4),
    }
    out["upsert_points_per_s"] = round(size / out["upsert_s"], 1) if out["upsert_s"] > 0 else None
    out["optimize_points_per_s"] = round(size / out["optimize_s"], 1) if out["optimize_s"] > 0 else None
    out["cell_s"] = round(time.perf_counter() - t_all, 1)
    out["load_avg_end"] = _load_avg()  # other processes on the machine slow every timing here
    out["config"] = _config(corpus, k)
    out["status"] = "done"
    return out


@dataclasses.dataclass
class CellJob:
    """One cell to measure, everything it needs to run in a fresh process (the corpus is rebuilt from its seed)."""

    settings: Settings
    size: int
    quant: str
    work: Path
    dim: int
    text_dim: int
    n_queries: int
    seed: int
    chunk: int
    k: int
    keep: bool
    progress: bool

    def run(self) -> dict[str, Any]:
        """Generate the corpus, warm the engine up (:func:`_touch_engine`) and :func:`measure_cell`."""
        tag = f"{self.size}/{self.quant}"

        def say(msg: str) -> None:
            log.info("bench scale: %s", msg)
            if self.progress:
                print(f"pir bench scale: {msg}", file=sys.stderr, flush=True)

        say(f"[{tag}] generating the corpus (seed {self.seed}, {self.dim}-d image, {self.text_dim}-d text)")
        corpus = Corpus(self.size, dim=self.dim, text_dim=self.text_dim, n_queries=self.n_queries, seed=self.seed,
                        chunk=self.chunk)  # fmt: skip
        _touch_engine(_cell_settings(self.settings, self.work, self.quant, self.size), corpus)
        return measure_cell(
            self.settings, corpus, self.quant, self.work, k=self.k, keep=self.keep, say=say, progress=self.progress
        )


def _run_job(job: CellJob) -> dict[str, Any]:
    return job.run()


def _run_isolated(job: CellJob) -> dict[str, Any]:
    """Run a cell in a fresh (spawned) process: its RSS baseline and peak are its own, not what earlier cells left
    in this process's allocator, and a cell killed for memory does not take the run down (BrokenProcessPool)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_run_job, job).result()


def _queries(
    store: VectorStore, corpus: Corpus, filters: dict[str, tuple[SearchFilter, np.ndarray, str]], gt: ExactTopK,
    k: int, *, say: Callable[[str], None], tag: str,
) -> dict[str, Any]:  # fmt: skip
    """First query and a cold pass after the reopen, then the measured passes (latency, recall, planner)."""
    q = corpus.queries
    out: dict[str, Any] = {}
    t = time.perf_counter()
    store.search(q[0], k)
    out["first_query_ms"] = round((time.perf_counter() - t) * 1e3, 3)
    cold = [_ms(lambda v=v: store.search(v, k)) for v in q]  # type: ignore[misc]  # v bound per query
    out["cold_pass"] = _pct(cold)
    say(f"[{tag}] reopen {store.collection}: first query {out['first_query_ms']} ms, cold pass p50 "
        f"{out['cold_pass']['p50_ms']} ms; measuring queries")  # fmt: skip
    queries: dict[str, Any] = {}

    def image(name: str, flt: SearchFilter | None, desc: str) -> None:
        truth = gt.truth(name)
        for v in q[:5]:
            store.search(v, k, filter=flt)  # warm-up
        lat, rec, plans = [], [], set()
        for j, v in enumerate(q):
            t0 = time.perf_counter()
            hits = store.search(v, k, filter=flt)
            lat.append((time.perf_counter() - t0) * 1e3)
            plans.add(str(store.last_plan))
            got = {corpus.index_of(h.payload) for h in hits}
            rec.append(len(got & truth[j]) / max(1, min(k, len(truth[j]))))
        mask = gt.masks[name]
        entry: dict[str, Any] = {
            "filter": desc,
            "matching": int(mask.sum()),
            "share": round(float(mask.mean()), 4),
            **_pct(lat),
            f"recall@{k}": round(float(np.mean(rec)), 4),
            f"recall@{k}_min": round(float(np.min(rec)), 4),
            "plans_used": sorted(plans),
        }
        if flt is not None:
            entry["planner"] = planner_choice(store, flt)
        queries[name if flt is not None else "image"] = entry

    image("none", None, "none")
    hq = [
        HybridQuery(image=q[j], text=corpus.query_text[j], words=corpus.query_words[j], fusion="zscore")
        for j in range(len(q))
    ]
    for h in hq[:5]:
        store.hybrid_search(h, k)
    lat = [_ms(lambda h=h: store.hybrid_search(h, k)) for h in hq]  # type: ignore[misc]  # h bound per query
    queries["hybrid"] = {"filter": "none", "fusion": "zscore", "text_weight": hq[0].text_weight, **_pct(lat)}
    for name, (flt, _, desc) in filters.items():
        image(name, flt, desc)
    out["queries"] = queries
    return out


def _ms(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _bar(total: int, desc: str, show: bool) -> Callable[..., None]:
    """A tqdm bar on stderr (a no-op when not shown): ``bar(n)`` advances, ``bar(0, close=True)`` closes."""
    if not show:
        return lambda _n, close=False: None
    from tqdm.auto import tqdm  # lazy: start-up (tqdm)

    t = tqdm(total=total, desc=desc, unit="fig", unit_scale=True, file=sys.stderr, mininterval=2.0)

    def step(n: int, close: bool = False) -> None:
        t.update(n)
        if close:
            t.close()

    return step


def _config(corpus: Corpus, k: int) -> dict[str, Any]:
    """What makes two cells comparable (a resumed cell must have the same)."""
    return {
        "dim": corpus.dim,
        "text_dim": corpus.text_dim,
        "n_queries": corpus.n_queries,
        "k": k,
        "seed": corpus.seed,
        "n_classes": N_CLASSES,
        "points_per_centre": POINTS_PER_CENTRE,
    }


# -------------------------------------------------------------------------------------------------- extrapolation
def extrapolate(cells: Sequence[dict[str, Any]], to: Sequence[int] = EXTRAPOLATE_TO) -> dict[str, dict[str, Any]]:
    """Per quantization and size in ``to`` above the largest measured one: RAM, disk, upsert, optimize and reopen
    from the measured cells.

    Bytes: the marginal bytes per figure between the two largest sizes when there are two (:func:`_grow`), else the
    largest size's bytes per figure. Upsert and reopen: linear per figure. ``optimize`` (HNSW build, wall and CPU
    seconds): the power law through the two largest sizes when there are two (exponent kept in [1, 1.5]), else
    N log N from the one.
    """
    out: dict[str, dict[str, Any]] = {}
    mem = meminfo()
    for quant in sorted({c["quantization"] for c in cells}):
        same = sorted((c for c in cells if c["quantization"] == quant), key=lambda c: c["size"])
        ref = same[-1]
        n = ref["size"]
        for size in sorted(t for t in to if t > n):
            f = size / n
            if len(same) >= 2 and same[-2]["size"] < n and same[-2]["optimize_s"] > 0 and ref["optimize_s"] > 0:
                a = same[-2]
                b = min(1.5, max(1.0, math.log(ref["optimize_s"] / a["optimize_s"]) / math.log(n / a["size"])))
                grow, how = f**b, f"power law through {a['size']:,} and {n:,} (exponent {b:.2f})"
            else:
                grow, how = f * math.log(size) / math.log(max(n, 2)), f"N log N from {n:,}"
            ram_serving, how_ram = _grow(same, "ram_serving_bytes", size)
            ram_needed, _ = _grow(same, "ram_needed_bytes", size)
            ram_peak, _ = _grow(same, "ram_peak_bytes", size)
            disk, _ = _grow(same, "disk_bytes", size)
            disk_peak, _ = _grow(same, "disk_peak_bytes", size)
            out[f"{size}/{quant}"] = {
                "size": size,
                "quantization": quant,
                "extrapolated": True,
                "from_size": n,
                "ram_serving_gb": round(ram_serving / 1e9, 1),
                "ram_needed_gb": round(ram_needed / 1e9, 1),
                "ram_peak_gb": round(ram_peak / 1e9, 1),
                "disk_gb": round(disk / 1e9, 1),
                "disk_peak_gb": round(disk_peak / 1e9, 1),
                "bytes_method": how_ram,
                "upsert_s": round(ref["upsert_s"] * f),
                "optimize_s": round(ref["optimize_s"] * grow),
                "optimize_cpu_s": round(ref["optimize_cpu_s"] * grow) if "optimize_cpu_s" in ref else None,
                "optimize_method": how,
                "reopen_s": round(ref["reopen_s"] * f, 1),
                "fits_this_machine": bool(mem) and ram_needed < mem.get("MemTotal", 0),
            }
    return out


def _grow(same: Sequence[dict[str, Any]], key: str, to: int) -> tuple[float, str]:
    """Bytes at ``to`` figures: the marginal bytes per figure between the two largest sizes (what one more figure
    costs, without the fixed part) when there are two and it is positive, else the largest size's bytes per figure."""
    ref = same[-1]
    total = ref["per_figure"].get(key, ref["per_figure"]["ram_peak_bytes"]) * ref["size"]
    if len(same) >= 2 and same[-2]["size"] < ref["size"] and key in same[-2]["per_figure"]:
        a = same[-2]
        slope = (total - a["per_figure"][key] * a["size"]) / (ref["size"] - a["size"])
        if slope > 0:
            return total + slope * (
                to - ref["size"]
            ), f"marginal bytes per figure between {a['size']:,} and {ref['size']:,}"
    return total / ref["size"] * to, f"bytes per figure at {ref['size']:,}"


# ----------------------------------------------------------------------------------------------------- the run
def parse_sizes(text: str | Sequence[int]) -> list[int]:
    """``"100000,300k,1M"`` -> ``[100000, 300000, 1000000]``."""
    if not isinstance(text, str):
        return [int(s) for s in text]
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([\d_.]+)\s*([kKmM]?)\s*", part)
        if not m:
            raise ValueError(f"--sizes: {part.strip()!r} is not a size (e.g. 100000, 300k, 1M)")
        v = float(m.group(1).replace("_", "")) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
        if v < 1:
            raise ValueError(f"--sizes: {part.strip()!r} must be at least 1")
        out.append(int(v))
    return out


def parse_quantizations(text: str | Sequence[str]) -> list[str]:
    """``"none,int8"`` -> ``["none", "int8"]`` (each one of :data:`QUANTIZATIONS`)."""
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    bad = [s for s in items if s not in QUANTIZATIONS]
    if bad or not items:
        raise ValueError(f"--quantization: {', '.join(bad) or 'nothing'}: use {', '.join(QUANTIZATIONS)}")
    return list(dict.fromkeys(items))


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(out: Path, result: dict[str, Any], *, plots: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cells = [result["cells"][k] for k in sorted(result["cells"], key=_cell_order)]
    result["extrapolated"] = extrapolate(cells) if cells else {}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out / "results.json")
    (out / "results.md").write_text(scale_markdown(result))
    if plots and cells:
        try:
            plot_scale(result, out / "scale.png")
        except Exception as e:  # noqa: BLE001  (a failed plot must not lose the numbers)
            log.warning("bench scale: plot failed: %s", e)


def _cell_order(key: str) -> tuple[int, int]:
    size, _, quant = key.partition("/")
    return int(size), QUANTIZATIONS.index(quant) if quant in QUANTIZATIONS else 99


def bench_scale(
    settings: Settings,
    *,
    sizes: str | Sequence[int] = DEFAULT_SIZES,
    quantization: str | Sequence[str] = ("none", "int8"),
    n_queries: int = 200,
    out: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    dim: int | None = None,
    text_dim: int | None = None,
    k: int = 10,
    chunk: int = 4096,
    keep: bool = False,
    plots: bool = True,
    progress: bool = True,
    isolate: bool = True,
) -> dict[str, Any]:
    """Measure every (size, quantization) cell (see the module docstring) and write the report into ``out``.

    Args:
        settings: pir's settings (HNSW and quantization settings of the store; the store is always embedded here).
        sizes: Figures per collection (``"100000,300k,1M"`` or ints).
        quantization: Quantization settings to compare (``none``, ``int8``, ``binary``, ``auto``).
        n_queries: Queries per kind.
        out: Report folder (default ``<data-dir>/bench/scale``); the collections are built in ``out/work``.
        resume: Skip the cells already in ``out/results.json`` with the same data and query settings.
        seed: Seed of the synthetic corpus and the queries.
        dim, text_dim: Vector sizes (default 1280 and 384: pir's default encoders).
        k: Neighbours per query (recall@k).
        chunk: Figures generated and upserted at a time.
        keep: Keep the collections (else each is deleted once measured).
        plots: Write ``scale.png``.
        progress: Progress lines and bars on stderr.
        isolate: Measure each cell in a fresh process (clean memory figures; a cell killed for memory is reported,
            and the run goes on).

    Returns:
        The report (also in ``out/results.json``): ``cells`` (key ``"<size>/<quantization>"``), ``extrapolated``,
        ``refused`` (sizes over this machine's RAM or disk), ``failed`` (cells whose process died).

    Raises:
        ValueError: A bad size or quantization name.
    """
    size_list = parse_sizes(sizes)
    quants = parse_quantizations(quantization)
    dim = int(dim or DEFAULT_IMAGE_DIM)
    text_dim = int(text_dim or DEFAULT_TEXT_DIM)
    out_dir = Path(out) if out is not None else Path(settings.data_dir) / "bench" / "scale"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"

    def say(msg: str) -> None:
        log.info("bench scale: %s", msg)
        if progress:
            print(f"pir bench scale: {msg}", file=sys.stderr, flush=True)

    previous = _load(out_dir / "results.json")
    mem = meminfo()
    result: dict[str, Any] = {
        "benchmark": "pir bench scale",
        "environment": _environment(settings, mem),
        "cells": dict(previous.get("cells") or {}),
        "refused": [],
        "failed": [],
    }
    done = [c for c in result["cells"].values() if c.get("status") == "done"]
    t_run = time.perf_counter()
    measured = False
    for size in sorted(set(size_list)):
        todo = []
        for quant in quants:
            key = f"{size}/{quant}"
            cell = result["cells"].get(key)
            want = {"dim": dim, "text_dim": text_dim, "n_queries": n_queries, "k": k, "seed": seed}
            if resume and cell and cell.get("status") == "done" and _same(cell["config"], want):
                say(f"[{key}] done in {out_dir / 'results.json'}: skipped (--resume)")
                continue
            est = estimate(size, dim, text_dim, quant, done)
            avail, free = mem.get("MemAvailable", 0), free_bytes(out_dir)
            if mem and est["ram_bytes"] > avail:
                line = (f"size {size:,} ({quant}) refused: estimated peak RAM {est['ram_bytes'] / 1e9:.1f} GB > "
                        f"{avail / 1e9:.1f} GB available (/proc/meminfo MemAvailable; {est['basis']})")  # fmt: skip
            elif est["disk_bytes"] > free:
                line = (f"size {size:,} ({quant}) refused: estimated disk {est['disk_bytes'] / 1e9:.1f} GB > "
                        f"{free / 1e9:.1f} GB free under {out_dir} ({est['basis']})")  # fmt: skip
            else:
                todo.append((quant, est))
                continue
            print(line, file=sys.stderr, flush=True)
            result["refused"].append({"cell": key, "reason": line, **est})
        if not todo:
            continue
        for quant, est in todo:
            key = f"{size}/{quant}"
            say(f"[{key}] start (estimated peak RAM {est['ram_bytes'] / 1e9:.1f} GB, disk "
                f"{est['disk_bytes'] / 1e9:.1f} GB: {est['basis']})")  # fmt: skip
            job = CellJob(settings, size, quant, work, dim, text_dim, n_queries, seed, chunk, k, keep, progress)
            try:
                cell = _run_isolated(job) if isolate else job.run()
            except BrokenProcessPool:
                line = (f"[{key}] failed: the measuring process died (killed for memory?); estimated peak RAM "
                        f"{est['ram_bytes'] / 1e9:.1f} GB")  # fmt: skip
                print(line, file=sys.stderr, flush=True)
                result["failed"].append({"cell": key, "reason": line, **est})
                shutil.rmtree(work / "qdrant-edge" / f"scale-{size}-{quant}", ignore_errors=True)
                continue
            cell["estimate"] = est
            result["cells"][key] = cell
            done.append(cell)
            measured = True
            _write(out_dir, result, plots=plots)
            say(f"[{key}] done in {cell['cell_s']:.0f} s: {_cell_line(cell)}")
    result["run_s"] = round(time.perf_counter() - t_run, 1)
    if not measured and previous.get("environment"):  # a resumed run that measured nothing: the report as it was
        result["environment"], result["run_s"] = previous["environment"], previous.get("run_s")
    _write(out_dir, result, plots=plots)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    result["out"] = str(out_dir)
    return result


def _cpu() -> float:
    """CPU seconds of this process so far (user + system, every thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load_avg() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the system has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _same(a: dict[str, Any], want: dict[str, Any]) -> bool:
    return all(a.get(k) == v for k, v in want.items())


def _environment(settings: Settings, mem: dict[str, int]) -> dict[str, Any]:
    try:
        edge = version("qdrant-edge-py")
    except PackageNotFoundError:
        edge = None
    q = settings.qdrant
    return {
        "cpu_count": os.cpu_count(),
        "mem_total_gb": round(mem.get("MemTotal", 0) / 1e9, 1),
        "mem_available_gb": round(mem.get("MemAvailable", 0) / 1e9, 1),
        "nice": os.nice(0) if hasattr(os, "nice") else None,
        "load_avg": _load_avg(),
        "qdrant_edge_py": edge,
        "hnsw_m": q.hnsw_m,
        "hnsw_ef_construct": q.hnsw_ef_construct,
        "hnsw_ef": q.hnsw_ef,
        "exact_filter_threshold": q.exact_filter_threshold,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ------------------------------------------------------------------------------------------------------ reports
FILTER_NAMES = tuple(FILTER_TARGETS)


def _cell_line(c: dict[str, Any]) -> str:
    qs = c["queries"]
    return (
        f"optimize {c['optimize_s']} s, RAM {c['per_figure']['ram_serving_bytes']} B/fig serving, disk "
        f"{c['per_figure']['disk_bytes']} B/fig; image p95 {qs['image']['p95_ms']} ms R@10 "
        f"{qs['image']['recall@10']}; hybrid p95 {qs['hybrid']['p95_ms']} ms"
    )


def _plan(entry: dict[str, Any]) -> str:
    p = entry.get("planner") or {}
    return str(p.get("plan", "?"))


def scale_markdown(result: dict[str, Any]) -> str:
    """The report as markdown: one row per measured cell, then the extrapolated rows."""
    env = result.get("environment", {})
    cells = [result["cells"][k] for k in sorted(result.get("cells", {}), key=_cell_order)]
    lines = [
        "# pir bench scale",
        "",
        f"{env.get('cpu_count')} CPUs, {env.get('mem_total_gb')} GB RAM, qdrant-edge-py {env.get('qdrant_edge_py')}, "
        f"HNSW m={env.get('hnsw_m')} ef_construct={env.get('hnsw_ef_construct')} ef={env.get('hnsw_ef')}, "
        f"exact_filter_threshold={env.get('exact_filter_threshold')}; nice {env.get('nice')}",
        "",
        "Latency: p50 / p95 ms after a reopen and one cold pass; R = recall@10 against exact numpy; plan = the "
        "planner's choice for the filter. RAM: RSS above the baseline, bytes per figure (serving = after reopen and "
        "the queries; needed = the anonymous peak + the serving file pages, what must fit; peak = highest RSS during "
        "the cell, optimize included, page cache the kernel could drop counted). cpu s: all threads of the process.",
        "",
        "| figures | quant | upsert s (cpu s) | optimize s (cpu s) | RAM B/fig serving / needed / peak | disk B/fig "
        "| reopen s | 1st query ms | image p50/p95, R | hybrid p50/p95 | class ~2% p50/p95, R, plan | viewpoint ~14% "
        "| class x year ~3% |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|",
    ]
    for c in cells:
        if c.get("status") != "done":
            continue
        q, pf = c["queries"], c["per_figure"]
        row = [
            f"{c['size']:,}",
            c["quantization"] + ("" if _applied(c) == c["quantization"] else f" (applied: {_applied(c)})"),
            f"{c['upsert_s']} ({c.get('upsert_cpu_s', '?')})",
            f"{c['optimize_s']} ({c.get('optimize_cpu_s', '?')})",
            f"{pf['ram_serving_bytes']:,} / {pf.get('ram_needed_bytes', '?'):,} / {pf['ram_peak_bytes']:,}",
            f"{pf['disk_bytes']:,}",
            f"{c['reopen_s']}",
            f"{c['first_query_ms']}",
            f"{q['image']['p50_ms']} / {q['image']['p95_ms']}, {q['image']['recall@10']}",
            f"{q['hybrid']['p50_ms']} / {q['hybrid']['p95_ms']}",
        ]
        for name in FILTER_NAMES:
            e = q[name]
            row.append(f"{e['p50_ms']} / {e['p95_ms']}, {e['recall@10']}, {_plan(e)} ({e['share']:.1%})")
        lines.append("| " + " | ".join(row) + " |")
    lines += [""] + [
        f"- {c['size']:,}/{c['quantization']}: cell {c.get('cell_s')} s (exact numpy truth {c.get('exact_truth_s')} s "
        f"of it); load average {c.get('load_avg_start')} at the start, {c.get('load_avg_end')} at the end"
        for c in cells
        if c.get("status") == "done"
    ]
    ext = result.get("extrapolated") or {}
    if ext:
        lines += [
            "",
            "Extrapolated (not measured) from the largest measured size's per-figure costs:",
            "",
            "| figures | quant | from | RAM GB serving / needed / peak | disk GB (peak) | upsert s "
            "| optimize s (cpu s) | reopen s | fits this machine (needed < RAM) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for e in ext.values():
            lines.append(
                f"| {e['size']:,} (extrapolated) | {e['quantization']} | {e['from_size']:,} | {e['ram_serving_gb']} / "
                f"{e['ram_needed_gb']} / {e['ram_peak_gb']} | {e['disk_gb']} ({e['disk_peak_gb']}) | {e['upsert_s']:,} "
                f"| {e['optimize_s']:,} ({e['optimize_cpu_s'] or '?'}; {e['optimize_method']}) | {e['reopen_s']} | "
                f"{'yes' if e['fits_this_machine'] else 'no'} |"
            )
    for r in [*(result.get("refused") or []), *(result.get("failed") or [])]:
        lines.append(f"- {r['reason']}")
    if result.get("run_s") is not None:
        lines += ["", f"run time {result['run_s']} s"]
    return "\n".join(lines) + "\n"


def _applied(c: dict[str, Any]) -> str:
    """The quantization the collection has, as its settings say (``none`` for a report of a pir without them)."""
    return str((c.get("collection_settings") or {}).get("quantization") or "none")


def plot_scale(result: dict[str, Any], path: Path) -> Path:
    """Four panels against the number of figures: build time, bytes per figure, p95 latency, recall@10; one line
    per quantization; the extrapolated points hollow."""
    import matplotlib  # lazy: start-up (matplotlib)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: start-up (matplotlib)

    cells = [c for c in result["cells"].values() if c.get("status") == "done"]
    ext = list((result.get("extrapolated") or {}).values())
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), dpi=100)
    (a_t, a_b), (a_l, a_r) = axes
    for quant in sorted({c["quantization"] for c in cells}):
        cs = sorted((c for c in cells if c["quantization"] == quant), key=lambda c: c["size"])
        x = [c["size"] for c in cs]
        es = [e for e in ext if e["quantization"] == quant]
        (line,) = a_t.plot(x, [c["optimize_s"] for c in cs], "o-", label=f"optimize ({quant})")
        a_t.plot(x, [c["upsert_s"] for c in cs], "s--", label=f"upsert ({quant})")
        a_t.plot([e["size"] for e in es], [e["optimize_s"] for e in es], "o", mfc="none", color=line.get_color(),
                 label=f"optimize, extrapolated ({quant})")  # fmt: skip
        a_b.plot(x, [c["per_figure"]["ram_serving_bytes"] for c in cs], "o-", label=f"RAM serving ({quant})")
        a_b.plot(x, [c["per_figure"]["ram_peak_bytes"] for c in cs], "^:", label=f"RAM peak ({quant})")
        a_b.plot(x, [c["per_figure"].get("ram_needed_bytes") for c in cs], "v-.", label=f"RAM needed ({quant})")
        a_b.plot(x, [c["per_figure"]["disk_bytes"] for c in cs], "s--", label=f"disk ({quant})")
        for kind in ("image", "hybrid", *FILTER_NAMES):
            a_l.plot(x, [c["queries"][kind]["p95_ms"] for c in cs], "o-", label=f"{kind} ({quant})")
        for kind in ("image", *FILTER_NAMES):
            a_r.plot(x, [c["queries"][kind]["recall@10"] for c in cs], "o-", label=f"{kind} ({quant})")
    for ax, title, ylabel in (
        (a_t, "build time", "seconds"),
        (a_b, "bytes per figure", "bytes"),
        (a_l, "p95 latency", "ms"),
        (a_r, "recall@10 vs exact", "recall@10"),
    ):
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("figures")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    a_t.set_yscale("log")
    a_r.set_ylim(0, 1.02)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
