"""Training data for ``pir train``: pre-loaded line art, line-drawing augmentations, balanced sampling, text targets.

The datasets here are small (hundreds to a few thousand drawings), so every image is decoded once with
:func:`pir.ingest.images.load_line_art` and kept in memory as ``uint8`` (``N x S x S``); epochs then only index,
augment and normalise tensors. Augmentations run batched on the training device and draw their randomness from an
explicit ``torch.Generator``, so a seeded run is reproducible and a resumed run sees the same batches.

Augmentations suited to line drawings (dark ink on white; everything that uncovers background fills it WHITE):

* random resized crop (area ``scale`` 0.6-1, aspect 3/4-4/3), horizontal flip, small rotation (±10°): one affine
  warp per image (``affine_grid`` / ``grid_sample`` on the inverted image, so the padding is white);
* random erasing of a rectangle and grid masking (``GridMask``-style squares), both painted white;
* line thickness jitter: a 3x3 min filter (thicker ink) or max filter (thinner ink).

Class-balanced sampling draws images with replacement, weight ∝ ``count(class) ** -power`` (``power = 1``:
every class equally often; ``power = 0.5``, the default: square-root balancing, a milder re-weighting that still
shows head classes more often but tail classes far more than their share).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler

from pir.encoder.train_config import AugmentConfig
from pir.ingest.images import ImageLoadError, load_line_art
from pir.ingest.schema import PatentFigure

if TYPE_CHECKING:
    from pir.core.config import Settings

log = logging.getLogger(__name__)

#: Template of the class-name text (the ``no-llm-text`` baseline and the class prototypes).
CLASS_TEMPLATE = "a drawing of a {}"


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LoadFailure:
    """A drawing that could not be decoded (reported and skipped)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class LoadedImages:
    """Decoded line art of a list of figures; ``figures[i]`` belongs to ``images[i]``."""

    images: torch.Tensor  # uint8 (N, S, S), dark lines on white
    figures: list[PatentFigure]
    failures: list[LoadFailure] = field(default_factory=list)


def preload_images(
    figures: Sequence[PatentFigure], size: int, *, trim: bool = True, num_workers: int = 0
) -> LoadedImages:
    """Decode every figure's image once (``uint8``, ``size x size``); bad files are logged, listed and skipped.

    Args:
        figures: The figures to load.
        size: Output side in pixels.
        trim: Trim white margins (as :class:`pir.encoder.model.PreprocessConfig` ``trim``).
        num_workers: Decoding threads (0 = in the calling thread).
    """

    def load(fig: PatentFigure) -> np.ndarray | LoadFailure:
        try:
            return np.asarray(load_line_art(fig.image_path, size, trim=trim), dtype=np.uint8)
        except ImageLoadError as e:
            return LoadFailure(e.path, e.reason)

    if num_workers > 0:
        with ThreadPoolExecutor(num_workers) as pool:
            results = list(pool.map(load, figures))
    else:
        results = [load(f) for f in figures]
    arrays: list[np.ndarray] = []
    kept: list[PatentFigure] = []
    failures: list[LoadFailure] = []
    for fig, res in zip(figures, results, strict=True):
        if isinstance(res, LoadFailure):
            log.warning("skipping %s", res)
            failures.append(res)
        else:
            arrays.append(res)
            kept.append(fig)
    stacked = np.stack(arrays) if arrays else np.zeros((0, size, size), dtype=np.uint8)
    return LoadedImages(torch.from_numpy(stacked), kept, failures)


def to_input(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(B, S, S)`` uint8 or ``(B, 1, S, S)`` float in [0, 1] -> normalised ``(B, 3, S, S)`` float network input.

    Matches :func:`pir.encoder.model.preprocess_tensor` exactly (grey replicated to three channels).
    """
    x = images.float().div(255.0).unsqueeze(1) if images.dtype == torch.uint8 else images
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x.expand(-1, 3, -1, -1) - m) / s).contiguous()


# ----------------------------------------------------------------------------------------------------------------
# Augmentations
# ----------------------------------------------------------------------------------------------------------------


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


class LineArtAugment:
    """Batched, seeded augmentations of line drawings (white background stays white)."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augment a batch.

        Args:
            images: ``(B, S, S)`` uint8 line art (any device).
            g: CPU generator all random parameters are drawn from.

        Returns:
            ``(B, 1, S, S)`` float in [0, 1] on the images' device.
        """
        x = images.float().div(255.0).unsqueeze(1)
        cfg = self.cfg
        if not cfg.enabled or x.shape[0] == 0:
            return x
        b, _, s, _ = x.shape
        dev = x.device
        ink = 1.0 - x  # ink = 1, background = 0, so zero padding is white after inverting back

        # One affine warp per image: crop (scale, aspect, offset), flip, rotation.
        area = _uniform(b, *cfg.crop_scale, g)
        log_r = _uniform(b, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), g)
        ratio = log_r.exp()
        w = (area * ratio).sqrt().clamp(max=1.0)
        h = (area / ratio).sqrt().clamp(max=1.0)
        cx = (torch.rand(b, generator=g) * 2 - 1) * (1 - w)
        cy = (torch.rand(b, generator=g) * 2 - 1) * (1 - h)
        fx = torch.where(torch.rand(b, generator=g) < cfg.hflip, -1.0, 1.0)
        fy = torch.where(torch.rand(b, generator=g) < cfg.vflip, -1.0, 1.0)
        ang = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, g) * (math.pi / 180.0)
        cos, sin = ang.cos(), ang.sin()
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = w * cos * fx
        theta[:, 0, 1] = -w * sin * fy
        theta[:, 1, 0] = h * sin * fx
        theta[:, 1, 1] = h * cos * fy
        theta[:, 0, 2] = cx
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta.to(dev), list(ink.shape), align_corners=False)
        ink = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        # Line thickness: min filter on the drawing = max-pool on ink (thicker); the reverse thins the lines.
        mode = torch.rand(b, generator=g)
        thick = (mode < cfg.thickness_p / 2).to(dev).view(b, 1, 1, 1)
        thin = ((mode >= cfg.thickness_p / 2) & (mode < cfg.thickness_p)).to(dev).view(b, 1, 1, 1)
        if bool(thick.any()) or bool(thin.any()):
            dil = F.max_pool2d(ink, 3, stride=1, padding=1)
            ero = -F.max_pool2d(-ink, 3, stride=1, padding=1)
            ink = torch.where(thick, dil, torch.where(thin, ero, ink))

        keep = torch.ones(b, 1, s, s)
        # Random erasing (a white rectangle).
        erase = torch.rand(b, generator=g) < cfg.erase_p
        e_area = _uniform(b, *cfg.erase_scale, g)
        e_ratio = _uniform(b, math.log(0.3), math.log(3.3), g).exp()
        e_h = (e_area / e_ratio).sqrt().clamp(max=1.0)
        e_w = (e_area * e_ratio).sqrt().clamp(max=1.0)
        e_y = torch.rand(b, generator=g) * (1 - e_h)
        e_x = torch.rand(b, generator=g) * (1 - e_w)
        coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s
        for i in torch.nonzero(erase).flatten().tolist():
            rows = (coords >= e_y[i]) & (coords < e_y[i] + e_h[i])
            cols = (coords >= e_x[i]) & (coords < e_x[i] + e_w[i])
            keep[i, 0] *= ~(rows[:, None] & cols[None, :])
        # Grid masking: white squares on a regular grid with a random phase.
        grid_on = torch.rand(b, generator=g) < cfg.grid_p
        cells = torch.randint(cfg.grid_cells[0], cfg.grid_cells[1] + 1, (b,), generator=g)
        phase = torch.rand(b, 2, generator=g)
        for i in torch.nonzero(grid_on).flatten().tolist():
            period = 1.0 / int(cells[i])
            ry = torch.remainder(coords + phase[i, 0] * period, period) < cfg.grid_ratio * period
            rx = torch.remainder(coords + phase[i, 1] * period, period) < cfg.grid_ratio * period
            keep[i, 0] *= ~(ry[:, None] & rx[None, :])
        ink = ink * keep.to(dev)
        return (1.0 - ink).clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------------


class ClassBalancedSampler(Sampler[int]):
    """Draw ``num_samples`` indices with replacement, weight of an image ∝ ``count(its class) ** -power``.

    ``power=1.0`` samples every class equally often (inverse frequency); ``power=0.5`` (default) is square-root
    balancing. The generator makes the draw reproducible.
    """

    def __init__(
        self,
        labels: Sequence[int],
        *,
        power: float = 0.5,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not len(labels):
            raise ValueError("ClassBalancedSampler needs at least one label")
        counts = Counter(int(x) for x in labels)
        self.weights = torch.tensor([counts[int(x)] ** -power for x in labels], dtype=torch.float64)
        self.num_samples = int(num_samples or len(labels))
        self.generator = generator

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        idx = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=self.generator)
        return iter(idx.tolist())


def epoch_indices(
    labels: Sequence[int], n: int, g: torch.Generator, *, balanced: bool = False, power: float = 0.5
) -> list[int]:
    """``n`` training indices for one epoch: shuffled passes over the data, or class-balanced draws."""
    if balanced:
        return list(ClassBalancedSampler(labels, power=power, num_samples=n, generator=g))
    out: list[int] = []
    while len(out) < n:
        out.extend(torch.randperm(len(labels), generator=g).tolist())
    return out[:n]


# ----------------------------------------------------------------------------------------------------------------
# Text targets
# ----------------------------------------------------------------------------------------------------------------


def class_text(name: str) -> str:
    """The class-name text, ``"a drawing of a {name}"``."""
    return CLASS_TEMPLATE.format(name.strip())


def figure_texts(fig: PatentFigure, *, max_chars: int = 300) -> list[str]:
    """Descriptions built from a figure's own metadata (object name, title, viewpoint, the patent's description)."""
    obj = fig.object_name or None
    thing = obj or (fig.title.lower() if fig.title else None)
    texts: list[str] = []
    if obj:
        texts.append(class_text(obj))
    if fig.title:
        texts.append(fig.title.strip())
        texts.append(f"a patent drawing of a {fig.title.strip().lower()}")
    if fig.viewpoint and thing:
        texts.append(f"a {fig.viewpoint} view of a {thing}")
    if fig.description:
        texts.append(fig.description.strip()[:max_chars])
    if not texts and fig.class_label:
        texts.append(class_text(fig.class_label))
    return list(dict.fromkeys(t for t in texts if t))  # distinct, in order


def _enrich_funcs() -> tuple[Callable[..., list[str]] | None, Callable[[str], list[str]] | None]:
    try:
        from pir.enrich import class_aliases, get_descriptions  # lazy: start-up (httpx, tqdm)
    except ImportError:  # the enrichment package is optional at this layer
        return None, None
    return get_descriptions, class_aliases


def _search_words(fig: PatentFigure, settings: Settings) -> list[str]:
    """The words a figure is searched by (:func:`pir.search.words.figure_word_parts`, no class): its own title,
    figure text and object name, then what enrichment adds at ``settings.enrich.level`` (aliases, gloss)."""
    try:
        from pir.enrich.knowledge import figure_knowledge  # lazy: WordNet, only for enriched targets
    except ImportError:  # the enrichment package is optional at this layer
        return []
    own = [str(v) for v in (fig.title, fig.description, fig.object_name) if v and str(v).strip()]
    try:
        known = figure_knowledge(fig, settings.enrich.level)
    except (OSError, ValueError, LookupError) as e:
        log.debug("no enrichment knowledge for %s: %s", fig.key, e)
        return own
    return [*own, *([", ".join(known.aliases)] if known.aliases else []), *known.about]


def build_descriptions(
    figures: Sequence[PatentFigure],
    settings: Settings,
    *,
    mode: str = "enriched",
    max_descriptions: int | None = 10,
) -> tuple[list[list[str]], int]:
    """The text targets of each figure.

    Args:
        figures: Training figures.
        settings: Settings (enrichment backend and its cache).
        mode: ``enriched`` (pir.enrich descriptions, falling back to :func:`figure_texts` when enrichment fails or
            returns nothing) or ``class-name`` (only ``"a drawing of a {class}"``, the ``no-llm-text`` baseline).
        max_descriptions: Keep at most this many descriptions per figure (None = all).

    Returns:
        One non-empty list of texts per figure, and how many figures fell back to their own metadata.
    """
    if mode not in ("enriched", "class-name"):
        raise ValueError(f"unknown text mode {mode!r} (enriched, class-name)")
    get_descriptions, _ = _enrich_funcs()
    out: list[list[str]] = []
    n_fallback = n_failed = 0
    for fig in figures:
        if mode == "class-name":
            out.append([class_text(fig.class_label or fig.object_name or "patent drawing")])
            continue
        texts: list[str] = []
        if get_descriptions is not None:
            try:
                texts = [t for t in get_descriptions(fig, settings) if isinstance(t, str) and t.strip()]
            except Exception as e:  # noqa: BLE001  (any enrichment failure falls back to the metadata)
                n_failed += 1
                (log.warning if n_failed == 1 else log.debug)(
                    "enrichment failed for %s (%s); using its own metadata", fig.key, e
                )
        if not texts:
            n_fallback += 1
            texts = figure_texts(fig, max_chars=settings.enrich.max_chars)
        texts = [*_search_words(fig, settings), *texts]  # the figure's search words lead, as in its ``text`` vector
        texts = list(dict.fromkeys(t for t in texts if t.strip()))
        if not texts:
            texts = [class_text(fig.class_label or "patent drawing")]
        out.append(texts[:max_descriptions] if max_descriptions else texts)
    if n_failed > 1:
        log.warning("enrichment failed for %d of %d figures; they use their own metadata", n_failed, len(figures))
    return out, n_fallback


def class_prototype_texts(
    classes: Sequence[str], figures: Sequence[PatentFigure], *, max_titles: int = 20
) -> list[list[str]]:
    """Texts whose mean embedding is each class's prototype: the class name, its aliases and its figures' titles.

    Aliases come from :func:`pir.enrich.class_aliases` (e.g. the USPC class title for ``D14``); the titles and
    object names of the class's training figures (most frequent first, at most ``max_titles``) add the words the
    patents themselves use.
    """
    _, class_aliases = _enrich_funcs()
    titles: dict[str, Counter[str]] = {c: Counter() for c in classes}
    for fig in figures:
        if fig.class_label in titles:
            for t in (fig.object_name, fig.title):
                if t and t.strip():
                    titles[fig.class_label][t.strip().lower()] += 1
    out: list[list[str]] = []
    for c in classes:
        texts = [class_text(c)]
        if class_aliases is not None:
            try:
                texts += [class_text(a) for a in class_aliases(c) if a and a.strip()]
            except Exception as e:  # noqa: BLE001
                log.warning("class_aliases(%r) failed: %s", c, e)
        texts += [class_text(t) for t, _ in titles[c].most_common(max_titles)]
        out.append(list(dict.fromkeys(texts)))  # distinct, in order
    return out


@dataclass
class TextTargets:
    """All training texts embedded once: ``emb[offsets[i] + j]`` is figure ``i``'s ``j``-th description."""

    emb: torch.Tensor  # float32 (T, D), L2-normalised
    offsets: torch.Tensor  # int64 (N,)
    counts: torch.Tensor  # int64 (N,)
    text_ids: torch.Tensor  # int64 (T,): equal ids = identical text (extra positives in the contrastive loss)

    def sample(self, idx: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One random description per image: (text embeddings ``(B, D)``, text ids ``(B,)``)."""
        pick = (torch.rand(len(idx), generator=g) * self.counts[idx]).long()
        rows = self.offsets[idx] + pick
        return self.emb[rows], self.text_ids[rows]


def embed_text_targets(descriptions: Sequence[Sequence[str]], encode: Callable[[list[str]], np.ndarray]) -> TextTargets:
    """Embed every figure's descriptions through ``encode`` (a cached text encoder) in one call."""
    flat = [t for texts in descriptions for t in texts]
    counts = torch.tensor([len(t) for t in descriptions], dtype=torch.long)
    offsets = torch.cumsum(counts, 0) - counts
    unique: dict[str, int] = {}
    ids = torch.tensor([unique.setdefault(t, len(unique)) for t in flat], dtype=torch.long)
    emb = torch.from_numpy(np.ascontiguousarray(encode(flat), dtype=np.float32)) if flat else torch.zeros(0, 1)
    return TextTargets(F.normalize(emb, dim=-1), offsets, counts, ids)


def embed_prototypes(texts: Sequence[Sequence[str]], encode: Callable[[list[str]], np.ndarray]) -> torch.Tensor:
    """``(C, D)`` class prototypes: the normalised mean embedding of each class's texts."""
    flat = [t for group in texts for t in group]
    emb = torch.from_numpy(np.ascontiguousarray(encode(flat), dtype=np.float32))
    out = []
    start = 0
    for group in texts:
        out.append(emb[start : start + len(group)].mean(0))
        start += len(group)
    return F.normalize(torch.stack(out), dim=-1)
