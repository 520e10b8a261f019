"""Rendering: named cameras, hidden-line drawing of an object's parts, patent-style figures."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pir.synth.catalog import _VIEW_ANGLES, VIEWS
from pir.synth.geometry import View
from pir.synth.registry import build_object

# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------


def make_view(view: str, rng: np.random.Generator | None = None) -> View:
    """The camera of a named viewpoint; perspective views get a small random azimuth/elevation jitter."""
    if view not in _VIEW_ANGLES:
        raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
    az, el = _VIEW_ANGLES[view]
    if view == "perspective" and rng is not None:
        az += float(rng.uniform(-10, 10))
        el += float(rng.uniform(-6, 8))
        if rng.random() < 0.3:
            az = -az
    return View.from_angles(view, az, el)


def render_lines(
    polylines: list[np.ndarray],
    size: int,
    rng: np.random.Generator,
    label: str | None = None,
    jitter: bool = True,
) -> Image.Image:
    """Draw 2-D polylines (picture coordinates, y up) as a black-on-white grayscale figure of ``size`` pixels."""
    ss = 2
    big = size * ss
    img = Image.new("L", (big, big), 255)
    polys = [np.asarray(q, dtype=float) for q in polylines if len(q) >= 2]
    lw = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25])) if jitter else 2
    rot = math.radians(float(rng.uniform(-2.5, 2.5))) if jitter else 0.0
    fill = float(rng.uniform(0.72, 0.88)) if jitter else 0.82
    shift = rng.uniform(-0.035, 0.035, size=2) * big if jitter else np.zeros(2)
    label_h = 0.13 * big if label else 0.0
    if polys:
        allp = np.vstack(polys)
        rmat = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
        allp = allp @ rmat.T
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        ext = np.maximum(hi - lo, 1e-6)
        scale = fill * min(big / ext[0], (big - label_h) / ext[1])
        ctr = 0.5 * (lo + hi)
        length = sum(float(np.sum(np.linalg.norm(np.diff(q, axis=0), axis=1))) for q in polys) * scale / ss
        while lw < 3 and length * lw < 0.02 * size * size:
            lw += 1  # sparse drawings (thin edge-on views) get heavier lines, as on a reduced drawing sheet
        ox, oy = big / 2 + shift[0], (big - label_h) / 2 + shift[1]
        draw = ImageDraw.Draw(img)
        for q in polys:
            r = (q @ rmat.T - ctr) * scale
            xy = np.column_stack([ox + r[:, 0], oy - r[:, 1]]).ravel().tolist()
            draw.line(xy, fill=0, width=lw * ss + (1 if lw == 1 else 0), joint="curve" if lw > 1 else None)
    if label:
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=max(8, int(0.055 * big)))
        tw = draw.textlength(label, font=font)
        x = big / 2 - tw / 2 + (float(rng.uniform(-0.2, 0.2)) * big if jitter else 0.0)
        draw.text((x, big - label_h * 0.85), label, fill=0, font=font)
    img = img.resize((size, size), Image.Resampling.BOX)
    if jitter and rng.random() < 0.4:
        img = img.point(lambda v: 0 if v < 150 else 255)
    if jitter and rng.random() < 0.3:
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 7))):
            x, y = rng.uniform(0, size, size=2)
            r = float(rng.uniform(0.4, 1.2))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
    return img


def draw_object(
    cls: str,
    params: dict[str, Any],
    view: str,
    size: int = 256,
    rng: np.random.Generator | None = None,
    label: str | None = None,
) -> Image.Image:
    """One figure: the object ``cls``/``params`` seen from ``view``, as a grayscale ("L") image.

    With ``rng`` the figure gets per-image jitter (line width, slight rotation, scale, offset, specks, thresholding,
    perspective angle); without it the drawing is plain and exactly reproducible.
    """
    parts = build_object(cls, params)
    v = make_view(view, rng)
    polylines: list[np.ndarray] = []
    for part in parts:
        polylines.extend(part.lines(v))
    return render_lines(polylines, size, rng if rng is not None else np.random.default_rng(0), label, rng is not None)
