"""Synthetic patent-drawing corpus: parametric 3-D objects drawn as black-on-white patent design figures.

Each synthetic "patent" is one object of a class (chair, lamp, bottle, ...) whose proportions and parts are
sampled per patent, drawn from several viewpoints (perspective, front, rear, side, top, bottom) by orthographic
projection of its 3-D parts: surfaces of revolution and height fields (with their exact contour lines), tubes,
extruded outlines (with back-face culling) and curves on surfaces. Class sizes follow a Zipf-like law so the corpus
is long-tailed like real design-patent classes. Classification codes use the real USPC design main class and
Locarno class of each object; subclasses are plausible but not guaranteed to match the USPTO schedule.

Everything is deterministic by seed (same seed, same bytes) and needs only numpy and Pillow.

One module per object family lives in :mod:`pir.synth.objects` (see :mod:`pir.synth.registry`).
"""

from __future__ import annotations

import pir.synth.objects  # noqa: F401  (registers the built-in object classes)
from pir.synth.catalog import CLASS_ALIASES, CLASS_CODES, CLASSES, VIEWS
from pir.synth.corpus import SynthSummary, synthesize_corpus, zipf_counts
from pir.synth.geometry import View
from pir.synth.registry import build_object, register, sample_params
from pir.synth.render import draw_object, make_view, render_lines

__all__ = [
    "CLASSES",
    "CLASS_ALIASES",
    "CLASS_CODES",
    "SynthSummary",
    "VIEWS",
    "View",
    "build_object",
    "draw_object",
    "make_view",
    "register",
    "render_lines",
    "sample_params",
    "synthesize_corpus",
    "zipf_counts",
]
