"""The synthetic corpus: Zipf-long-tailed classes, several views per patent, metadata.jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pir.synth.catalog import _VIEW_ANGLES, _VIEW_PHRASES, CLASS_ALIASES, CLASS_CODES, CLASSES, VIEWS
from pir.synth.objects._common import _pick
from pir.synth.registry import builders, sample_params
from pir.synth.render import draw_object


def _title(cls: str, p: dict[str, Any], rng: np.random.Generator) -> str:
    style = p.get("style")
    options: dict[str, list[str]] = {
        "chair": ["Office chair", "Chair", "Task chair"]
        if style == "office"
        else (["Armchair", "Chair"] if p.get("arms") else ["Chair", "Side chair", "Dining chair"]),
        "lamp": ["Desk lamp", "Lamp", "Task lamp"] if style == "desk" else ["Table lamp", "Lamp", "Lighting fixture"],
        "bottle": ["Bottle", "Beverage bottle", "Container"],
        "table": {"pedestal": ["Pedestal table", "Table"], "trestle": ["Trestle table", "Table"]}.get(
            str(style), ["Coffee table", "Table"] if p.get("h", 1) < 0.55 else ["Table", "Dining table"]
        ),
        "shoe": {"boot": ["Boot", "Footwear"], "loafer": ["Shoe", "Loafer"]}.get(
            str(style), ["Shoe", "Athletic shoe", "Footwear"]
        ),
        "mug": ["Mug", "Cup", "Coffee mug"],
        "faucet": ["Faucet", "Kitchen faucet"] if p.get("spout") == "goose" else ["Faucet", "Lavatory faucet"],
        "vase": ["Vase", "Flower vase"],
        "wrench": {"combination": ["Combination wrench", "Wrench"], "double_open": ["Open-end wrench", "Wrench"]}.get(
            str(style), ["Box-end wrench", "Wrench"]
        ),
        "hinge": ["Hinge", "Door hinge", "Butt hinge"] if p.get("shape") != "tapered" else ["Strap hinge", "Hinge"],
    }
    return str(_pick(rng, options[cls]))


# ----------------------------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SynthSummary:
    """What :func:`synthesize_corpus` wrote."""

    n_patents: int
    n_figures: int
    class_counts: dict[str, int]
    out: Path

    def table(self) -> str:
        """A small text table of patents per class."""
        width = max([len("class"), *map(len, self.class_counts)])
        lines = [f"{'class':<{width}}  patents", f"{'-' * width}  -------"]
        lines += [f"{c:<{width}}  {n:>7}" for c, n in self.class_counts.items()]
        lines.append(f"{'total':<{width}}  {self.n_patents:>7}  ({self.n_figures} figures in {self.out})")
        return "\n".join(lines)


def zipf_counts(total: int, n_classes: int, exponent: float = 1.2, minimum: int = 2) -> list[int]:
    """Split ``total`` into ``n_classes`` counts with share ~ 1/rank**exponent, each at least ``minimum``."""
    if n_classes < 1:
        raise ValueError("need at least one class")
    if total < minimum * n_classes:
        raise ValueError(f"{total} patents cannot give each of {n_classes} classes at least {minimum} patents")
    w = 1.0 / np.arange(1, n_classes + 1) ** exponent
    spare = total - minimum * n_classes
    ideal = total * w / w.sum()
    extra = np.maximum(ideal - minimum, 0)
    extra = extra / extra.sum() * spare if extra.sum() > 0 else np.zeros(n_classes)
    counts = minimum + np.floor(extra).astype(int)
    rest = total - int(counts.sum())
    order = np.argsort(-(extra - np.floor(extra)), kind="stable")
    for k in order[:rest]:
        counts[k] += 1
    return [int(c) for c in counts]


def _pick_views(rng: np.random.Generator) -> list[str]:
    extra = ["rear", "side", "top", "bottom"]
    chosen = set(rng.choice(extra, size=int(rng.integers(1, 5)), replace=False).tolist())
    return ["perspective", "front"] + [v for v in extra if v in chosen]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _describe(view: str, fig: int, object_name: str, first: bool) -> str:
    if first:
        return f"FIG. {fig} is {_VIEW_PHRASES[view]} of {_article(object_name)} {object_name} showing our new design."
    return f"FIG. {fig} is {_VIEW_PHRASES[view]} thereof."


def _tuesday(rng: np.random.Generator) -> date:
    start, end = date(2008, 1, 1), date(2022, 12, 31)  # 2008-01-01 is a Tuesday
    d = start + timedelta(days=int(rng.integers(0, (end - start).days + 1)))
    return d - timedelta(days=(d.weekday() - 1) % 7)  # US patents issue on Tuesdays


def synthesize_corpus(
    out: Path,
    *,
    patents: int = 120,
    seed: int = 0,
    image_size: int = 256,
    views: tuple[str, ...] | None = None,
    classes: list[str] | None = None,
) -> SynthSummary:
    """Write a synthetic design-patent corpus under ``out``.

    Writes ``images/<patent>_<figure>.png`` (grayscale), ``metadata.jsonl`` (one record per figure, keys as
    :class:`pir.ingest.schema.PatentFigure` plus a relative ``file``) and ``classes.json`` (class -> aliases).

    Args:
        out: Output folder (created; existing files with the same names are overwritten).
        patents: Number of patents (objects); classes get Zipf-like shares, each at least 2.
        seed: Random seed; the same seed gives byte-identical files.
        image_size: Side of the square images in pixels.
        views: Viewpoints drawn for every patent (default: perspective, front and 1-4 more per patent).
        classes: Object classes in rank order (head first). Default: :data:`CLASSES`, or its first
            ``patents // 2`` classes when there are fewer than 2 patents per class.

    Raises:
        ValueError: Unknown class or view, too few patents for 2 per class, image size below 32.

    Returns:
        A :class:`SynthSummary`.
    """
    if classes is None:
        if patents < 2:
            raise ValueError(f"need at least 2 patents, got {patents}")
        classes = list(CLASSES[: min(len(CLASSES), patents // 2)])  # small corpora keep the head classes
    classes = list(classes)
    unknown = [c for c in classes if c not in builders()]
    if unknown or not classes:
        raise ValueError(f"unknown object classes {unknown}; known: {', '.join(CLASSES)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"duplicate classes in {classes}")
    if views is not None:
        bad = [v for v in views if v not in _VIEW_ANGLES]
        if bad or not views:
            raise ValueError(f"unknown views {bad}; known: {', '.join(VIEWS)}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    counts = zipf_counts(patents, len(classes))
    master = np.random.default_rng(seed)
    labels = [c for c, n in zip(classes, counts, strict=True) for _ in range(n)]
    labels = [labels[k] for k in master.permutation(len(labels))]
    plans = []
    for k, cls in enumerate(labels):
        rng = np.random.default_rng([seed, k])
        params = sample_params(cls, rng)
        title = _title(cls, params, rng)
        pub = _tuesday(rng)
        uspc_opts, locarno = CLASS_CODES[cls]
        uspc = [str(_pick(rng, uspc_opts))]
        fig_views = list(views) if views is not None else _pick_views(rng)
        plans.append((pub, k, cls, params, title, uspc, list(locarno), fig_views))
    plans.sort(key=lambda t: (t[0], t[1]))
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n_figures = 0
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as meta:
        for number, (pub, k, cls, params, title, uspc, locarno, fig_views) in enumerate(plans, start=1):
            patent_id = f"SYN{number:07d}"
            object_name = title.lower()
            for fig, view in enumerate(fig_views, start=1):
                rng = np.random.default_rng([seed, k, fig])
                label = f"FIG. {fig}" if rng.random() < 0.5 else None
                img = draw_object(cls, params, view, image_size, rng, label)
                name = f"{patent_id}_FIG{fig}.png"
                img.save(out / "images" / name, format="PNG")
                record = {
                    "patent_id": patent_id,
                    "figure_id": f"FIG{fig}",
                    "title": title,
                    "object_name": object_name,
                    "viewpoint": view,
                    "uspc": uspc,
                    "locarno": locarno,
                    "publication_date": pub.isoformat(),
                    "description": _describe(view, fig, object_name, fig == 1),
                    "class_label": cls,
                    "source_format": "synthetic",
                    "file": f"images/{name}",
                }
                meta.write(json.dumps(record) + "\n")
                n_figures += 1
    (out / "classes.json").write_text(
        json.dumps({c: CLASS_ALIASES[c] for c in classes}, indent=2) + "\n", encoding="utf-8"
    )
    return SynthSummary(len(plans), n_figures, dict(zip(classes, counts, strict=True)), out)
