"""Synthetic patent-drawing corpus: parametric 3-D objects drawn as black-on-white patent design figures.

Each synthetic "patent" is one object of a class (chair, lamp, bottle, ...) whose proportions and parts are
sampled per patent, drawn from several viewpoints (perspective, front, rear, side, top, bottom) by orthographic
projection of its 3-D parts: surfaces of revolution and height fields (with their exact contour lines), tubes,
extruded outlines (with back-face culling) and curves on surfaces. Class sizes follow a Zipf-like law so the corpus
is long-tailed like real design-patent classes. Classification codes use the real USPC design main class and
Locarno class of each object; subclasses are plausible but not guaranteed to match the USPTO schedule.

Everything is deterministic by seed (same seed, same bytes) and needs only numpy and Pillow.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Viewpoints a figure can show, in the order the USPTO lists them.
VIEWS: tuple[str, ...] = ("perspective", "front", "rear", "side", "top", "bottom")

#: Object classes, head first (rank order of the long tail).
CLASSES: tuple[str, ...] = ("chair", "lamp", "bottle", "table", "shoe", "mug", "faucet", "vase", "wrench", "hinge")

#: Words a patent (or a searcher) may use for each class; written to ``classes.json``.
CLASS_ALIASES: dict[str, list[str]] = {
    "chair": ["chair", "seat", "armchair", "office chair", "seating furniture"],
    "lamp": ["lamp", "lighting fixture", "luminaire", "light", "desk lamp"],
    "bottle": ["bottle", "flask", "container", "beverage bottle", "carafe"],
    "table": ["table", "desk", "dining table", "side table", "tabletop"],
    "shoe": ["shoe", "footwear", "sneaker", "boot", "shoe upper"],
    "mug": ["mug", "cup", "drinking cup", "coffee mug", "tankard"],
    "faucet": ["faucet", "tap", "spout", "mixer tap", "plumbing fixture"],
    "vase": ["vase", "flower vase", "urn", "planter", "ornamental vessel"],
    "wrench": ["wrench", "spanner", "hand tool", "open-end wrench", "box wrench"],
    "hinge": ["hinge", "butt hinge", "door hinge", "pivot hinge", "hinge leaf"],
}

#: USPC design subclasses (real main class) and Locarno class per object class.
CLASS_CODES: dict[str, tuple[list[str], list[str]]] = {
    "chair": (["D6-361", "D6-366", "D6-367", "D6-492", "D6-500", "D6-501", "D6-502"], ["06-01"]),
    "lamp": (["D26-60", "D26-81", "D26-94", "D26-96", "D26-104"], ["26-05"]),
    "bottle": (["D9-500", "D9-516", "D9-542", "D9-558", "D9-574"], ["09-01"]),
    "table": (["D6-446", "D6-474", "D6-484", "D6-488", "D6-511"], ["06-03"]),
    "shoe": (["D2-896", "D2-916", "D2-929", "D2-969", "D2-972"], ["02-04"]),
    "mug": (["D7-509", "D7-513", "D7-523", "D7-532"], ["07-01"]),
    "faucet": (["D23-238", "D23-239", "D23-243", "D23-250"], ["23-01"]),
    "vase": (["D11-143", "D11-151", "D11-156", "D11-157"], ["11-02"]),
    "wrench": (["D8-17", "D8-21", "D8-28", "D8-29"], ["08-05"]),
    "hinge": (["D8-323", "D8-324", "D8-330", "D8-331"], ["08-08"]),
}

_VIEW_ANGLES: dict[str, tuple[float, float]] = {
    "perspective": (-35.0, 24.0),
    "front": (0.0, 0.0),
    "rear": (180.0, 0.0),
    "side": (-90.0, 0.0),
    "top": (0.0, 90.0),
    "bottom": (0.0, -90.0),
}

_VIEW_PHRASES: dict[str, str] = {
    "perspective": "a perspective view",
    "front": "a front elevational view",
    "rear": "a rear elevational view",
    "side": "a right side elevational view",
    "top": "a top plan view",
    "bottom": "a bottom plan view",
}


# ----------------------------------------------------------------------------------------------------------------
# Projection and primitives
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """An orthographic camera: ``forward`` points into the scene, ``right``/``up`` span the picture plane."""

    name: str
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray

    @classmethod
    def from_angles(cls, name: str, azimuth_deg: float, elevation_deg: float) -> View:
        """Camera at ``azimuth`` (0 = in front, on -y; -90 = on the object's right, +x) and ``elevation`` above."""
        a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
        f = np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), -math.sin(e)])
        r = np.array([math.cos(a), -math.sin(a), 0.0])
        return cls(name, f, r, np.cross(r, f))

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) picture coordinates (x right, y up)."""
        return np.stack([pts @ self.right, pts @ self.up], axis=-1)


def _unit(v: Any) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _perp(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.array([1.0, 0.0, 0.0]) if abs(a[2]) > 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = _unit(np.cross(a, h))
    return e1, np.cross(a, e1)


def _runs(mask: np.ndarray, closed: bool, grow: bool = True) -> list[np.ndarray]:
    """Index runs where ``mask`` holds (wrapping for closed loops), each grown by one index on both sides."""
    n = len(mask)
    if n == 0 or not mask.any():
        return []
    if mask.all():
        idx = np.arange(n)
        return [np.append(idx, 0)] if closed else [idx]
    order = (np.arange(n) + int(np.argmin(mask))) % n if closed else np.arange(n)
    runs: list[list[int]] = []
    cur: list[int] = []
    for k in order:
        if mask[k]:
            cur.append(int(k))
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    out = []
    for r in runs:
        if grow:
            lo, hi = r[0] - 1, r[-1] + 1
            r = ([lo % n] if closed or lo >= 0 else []) + r + ([hi % n] if closed or hi < n else [])
        if len(r) >= 2:
            out.append(np.array(r))
    return out


def _spline(pts: Any, m: int = 8, closed: bool = False) -> np.ndarray:
    """Centripetal Catmull-Rom through ``pts`` (K, d), ``m`` samples per span; knot k lands on sample k*m."""
    p = np.asarray(pts, dtype=float)
    if len(p) < 2:
        return p.copy()
    ext = np.vstack([p[-1], p, p[0], p[1]]) if closed else np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    for k in range(len(ext) - 3):
        p0, p1, p2, p3 = ext[k : k + 4]
        t1 = max(float(np.linalg.norm(p1 - p0)) ** 0.5, 1e-6)
        t2 = t1 + max(float(np.linalg.norm(p2 - p1)) ** 0.5, 1e-6)
        t3 = t2 + max(float(np.linalg.norm(p3 - p2)) ** 0.5, 1e-6)
        t = np.linspace(t1, t2, m, endpoint=False)[:, None]
        a1 = (t1 - t) / t1 * p0 + t / t1 * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / t2 * a1 + t / t2 * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    if not closed:
        out.append(p[-1:])
    return np.vstack(out)


def _polyline_resample(pts: Any, m: int) -> np.ndarray:
    p = np.asarray(pts, dtype=float)
    t = np.linspace(0, 1, m, endpoint=False)[:, None]
    return np.vstack([p[k] + t * (p[k + 1] - p[k]) for k in range(len(p) - 1)] + [p[-1:]])


def _circle(center: Any, normal: Any, r: float, n: int = 64, aspect: float = 1.0) -> np.ndarray:
    e1, e2 = _perp(_unit(normal))
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)[:, None]
    return np.asarray(center, dtype=float) + r * (np.cos(a) * e1 + aspect * np.sin(a) * e2)


def _arc2(c: Any, r: float, a0: float, a1: float, step_deg: float = 6.0) -> np.ndarray:
    n = max(2, int(abs(a1 - a0) / math.radians(step_deg)) + 1)
    a = np.linspace(a0, a1, n)
    return np.asarray(c, dtype=float) + r * np.stack([np.cos(a), np.sin(a)], axis=1)


def _rounded_rect(w: float, h: float, r: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    r = min(r, w / 2 - 1e-4, h / 2 - 1e-4)
    if r <= 1e-3:
        return np.array(
            [[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]]
        )
    pts = []
    for (sx, sy), a0 in zip([(1, -1), (1, 1), (-1, 1), (-1, -1)], [-90, 0, 90, 180], strict=True):
        c = (cx + sx * (w / 2 - r), cy + sy * (h / 2 - r))
        pts.append(_arc2(c, r, math.radians(a0), math.radians(a0 + 90), 15))
    return np.vstack(pts)


class Primitive:
    """A part of an object that can produce its visible 2-D polylines for a view."""

    def lines(self, view: View) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Curve(Primitive):
    """A 3-D polyline, optionally culled point-wise by surface normals (one (3,) or one per point (N, 3))."""

    pts: np.ndarray
    normals: np.ndarray | None = None
    closed: bool = False

    def lines(self, view: View) -> list[np.ndarray]:
        pts = np.asarray(self.pts, dtype=float)
        if self.normals is None:
            mask = np.ones(len(pts), dtype=bool)
        else:
            mask = np.broadcast_to(np.asarray(self.normals) @ view.forward, (len(pts),)) <= 0.02
        return [view.project(pts[r]) for r in _runs(mask, self.closed)]


@dataclass
class Ring(Primitive):
    """A circle around ``axis``: ``mode`` "full", "front" (the half facing the camera) or "cap+"/"cap-"."""

    center: np.ndarray
    axis: np.ndarray
    radius: float
    mode: str = "front"
    aspect: float = 1.0

    def lines(self, view: View) -> list[np.ndarray]:
        a = _unit(self.axis)
        pts = _circle(self.center, a, self.radius, 72, self.aspect)
        radial = pts - np.asarray(self.center, dtype=float)
        fa = float(a @ view.forward)
        if self.mode == "full" or (self.mode == "cap+" and fa < -0.05) or (self.mode == "cap-" and fa > 0.05):
            mask = np.ones(len(pts), dtype=bool)
        else:
            mask = radial @ view.forward <= 1e-9
        return [view.project(pts[r]) for r in _runs(mask, True)]


@dataclass
class Sphere(Primitive):
    """A ball: its outline is a circle in every view."""

    center: np.ndarray
    radius: float

    def lines(self, view: View) -> list[np.ndarray]:
        c = view.project(np.asarray(self.center, dtype=float))
        a = np.linspace(0, 2 * math.pi, 49)
        return [c + self.radius * np.stack([np.cos(a), np.sin(a)], axis=1)]


@dataclass
class Tube(Primitive):
    """A round rod of constant radius along a 3-D path, outlined in the picture plane, with optional end caps."""

    path: np.ndarray
    radius: float
    caps: tuple[bool, bool] = (True, True)

    def lines(self, view: View) -> list[np.ndarray]:
        path = np.asarray(self.path, dtype=float)
        q = view.project(path)
        steps = np.linalg.norm(np.diff(q, axis=0), axis=1)
        keep = np.concatenate([[0], np.nonzero(steps > 1e-3 * self.radius)[0] + 1])
        qk = q[keep]
        length = float(np.sum(np.linalg.norm(np.diff(qk, axis=0), axis=1))) if len(qk) > 1 else 0.0
        if len(qk) < 2 or length < 0.3 * self.radius:
            a = np.linspace(0, 2 * math.pi, 49)
            return [q.mean(axis=0) + self.radius * np.stack([np.cos(a), np.sin(a)], axis=1)]
        d = np.diff(qk, axis=0)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        sn = np.stack([-d[:, 1], d[:, 0]], axis=1)
        vn = np.vstack([sn[:1], sn[:-1] + sn[1:], sn[-1:]])
        vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-9)
        cosang = np.concatenate([[1.0], np.sum(vn[1:-1] * sn[1:], axis=1), [1.0]])
        off = vn * (self.radius / np.maximum(cosang, 0.45))[:, None]
        out = [qk + off, qk - off]
        for end, idx, nxt in ((0, 0, 1), (1, -1, -2)):
            if not self.caps[end]:
                continue
            t3 = _unit(path[idx] - path[nxt])
            ring = Ring(path[idx], t3, self.radius, "cap+")
            out.extend(ring.lines(view))
        return out


@dataclass
class Surface(Primitive):
    """A sampled parametric surface (nu, nv, 3): draws its contour (silhouette) lines, feature rows and shading.

    Row modes: "front" (the part facing the camera), "full", "cap+"/"cap-" (full when the end cap along +/-``axis``
    faces the camera, else front), "edge" (full, but only in views roughly across ``axis``).
    """

    grid: np.ndarray
    closed_v: bool = True
    rows: list[tuple[int, str]] = field(default_factory=list)
    axis: np.ndarray | None = None
    shade: int = 0

    def _normals(self) -> np.ndarray:
        p = self.grid
        dv = np.roll(p, -1, axis=1) - np.roll(p, 1, axis=1) if self.closed_v else np.gradient(p, axis=1)
        du = np.gradient(p, axis=0)
        n = np.cross(du, dv)
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
        if np.sum(n * (p - p.reshape(-1, 3).mean(axis=0))) < 0:
            n = -n
        return n

    def lines(self, view: View) -> list[np.ndarray]:
        p = self.grid
        g = self._normals() @ view.forward
        out = [view.project(c) for c in _contours(g + 1e-7, p, self.closed_v)]
        fa = float(_unit(self.axis) @ view.forward) if self.axis is not None else 0.0
        for i, mode in self.rows:
            row = p[i]
            if np.ptp(row, axis=0).max() < 1e-4:
                continue
            if mode == "edge" and abs(fa) >= 0.5:
                continue
            if mode in ("full", "edge") or (mode == "cap+" and fa < -0.05) or (mode == "cap-" and fa > 0.05):
                mask = np.ones(len(row), dtype=bool)
            else:
                mask = g[i] <= 0.02
            out.extend(view.project(row[r]) for r in _runs(mask, self.closed_v))
        if self.shade > 0 and abs(fa) < 0.75:
            out.extend(self._shading(view, g))
        return out

    def _shading(self, view: View, g: np.ndarray) -> list[np.ndarray]:
        """Patent-style surface shading: a few lines along v-columns near the right-hand silhouette."""
        q = view.project(self.grid)
        cx = 0.5 * (q[..., 0].min() + q[..., 0].max())
        ok = (g > -0.6) & (g < -0.04) & (q[..., 0] > cx)
        nu = ok.shape[0]
        frac = ok.mean(axis=0)
        cols = [j for j in range(ok.shape[1]) if frac[j] > 0.3]
        if not cols:
            return []
        gm = np.array([np.mean(np.where(ok[:, j], g[:, j], 0.0)) / max(frac[j], 1e-9) for j in cols])
        chosen = [cols[k] for k in np.argsort(-gm, kind="stable")[::2][: self.shade]]
        out = []
        lo, hi = int(0.08 * nu), int(math.ceil(0.92 * nu))
        for j in sorted(chosen):
            m = ok[:, j].copy()
            m[:lo] = False
            m[hi:] = False
            out.extend(q[r, j] for r in _runs(m, False, grow=False))
        return out


def _contours(g: np.ndarray, p: np.ndarray, closed_v: bool) -> list[np.ndarray]:
    """Zero lines of ``g`` over the grid ``p`` (marching squares, chained into polylines)."""
    if closed_v:
        g = np.concatenate([g, g[:, :1]], axis=1)
        p = np.concatenate([p, p[:, :1]], axis=1)
    nu, nv = g.shape
    nvo = nv - 1 if closed_v else nv
    s = g > 0
    hx = s[:, :-1] != s[:, 1:]
    vx = s[:-1, :] != s[1:, :]
    off = nu * (nv - 1)
    pts: dict[int, np.ndarray] = {}
    for i, j in zip(*np.nonzero(hx), strict=True):
        t = g[i, j] / (g[i, j] - g[i, j + 1])
        pts[int(i * (nv - 1) + j)] = p[i, j] + t * (p[i, j + 1] - p[i, j])
    for i, j in zip(*np.nonzero(vx), strict=True):
        t = g[i, j] / (g[i, j] - g[i + 1, j])
        pts[int(off + i * nvo + (j % nvo))] = p[i, j] + t * (p[i + 1, j] - p[i, j])
    count = hx[:-1, :].astype(int) + hx[1:, :] + vx[:, :-1] + vx[:, 1:]
    adj: dict[int, list[int]] = defaultdict(list)

    def link(a: int, b: int) -> None:
        adj[a].append(b)
        adj[b].append(a)

    for i, j in zip(*np.nonzero(count >= 2), strict=True):
        top = int(i * (nv - 1) + j) if hx[i, j] else None
        bot = int((i + 1) * (nv - 1) + j) if hx[i + 1, j] else None
        left = int(off + i * nvo + (j % nvo)) if vx[i, j] else None
        right = int(off + i * nvo + ((j + 1) % nvo)) if vx[i, j + 1] else None
        ks = [k for k in (top, bot, left, right) if k is not None]
        if len(ks) == 2:
            link(ks[0], ks[1])
        elif len(ks) == 4:
            link(ks[0], ks[2])  # saddle: top-left, bottom-right
            link(ks[1], ks[3])
    seen: set[int] = set()
    chains = []
    for start in sorted(adj, key=lambda k: len(adj[k]) != 1):
        if start in seen:
            continue
        chain, cur = [start], start
        seen.add(start)
        while True:
            nxt = [k for k in adj[cur] if k not in seen]
            if not nxt:
                if len(chain) > 2 and start in adj[cur]:
                    chain.append(start)
                break
            cur = nxt[0]
            seen.add(cur)
            chain.append(cur)
        if len(chain) >= 2:
            chains.append(np.array([pts[k] for k in chain]))
    return chains


@dataclass
class Prism(Primitive):
    """Planar loops extruded by ``depth`` along ``normal``; ``loops[0]`` is the outline (CCW), the rest are holes."""

    loops: list[np.ndarray]
    normal: np.ndarray
    depth: float
    corner_deg: float = 25.0

    def lines(self, view: View) -> list[np.ndarray]:
        f = view.forward
        nrm = _unit(self.normal)
        e = nrm * self.depth
        bottom_vis = float(-nrm @ f) < -1e-6
        top_vis = float(nrm @ f) < -1e-6
        out: list[np.ndarray] = []
        cos_c = math.cos(math.radians(self.corner_deg))
        for li, a in enumerate(self.loops):
            if li > 0 and not (top_vis or bottom_vis):
                continue  # a hole seen edge-on is hidden by the outer walls
            n = len(a)
            t = np.roll(a, -1, axis=0) - a
            side = np.cross(t, nrm)
            side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-12)
            vis = side @ f < -1e-6
            for base, cap in ((a, bottom_vis), (a + e, top_vis)):
                for r in _runs(vis | cap, True, grow=False):
                    idx = np.append(r, (r[-1] + 1) % n) if len(r) < n + 1 else r
                    out.append(view.project(base[idx]))
                if (vis | cap).sum() == 1:
                    k = int(np.argmax(vis | cap))
                    out.append(view.project(base[[k, (k + 1) % n]]))
            prev = np.roll(vis, 1)
            tu = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
            corner = np.sum(np.roll(tu, 1, axis=0) * tu, axis=1) < cos_c
            draw = (prev != vis) | (corner & (prev | vis))
            for k in np.nonzero(draw)[0]:
                out.append(view.project(np.stack([a[k], a[k] + e])))
        return out


def prism(
    loops2d: list[np.ndarray],
    origin: Any,
    a1: Any,
    a2: Any,
    depth: float,
    centered: bool = True,
) -> Prism:
    """Extrude 2-D loops drawn in the plane (origin, a1, a2); the first loop is the outline, the others holes."""
    a1, a2 = _unit(a1), _unit(a2)
    nrm = _unit(np.cross(a1, a2))
    o = np.asarray(origin, dtype=float) - (0.5 * depth * nrm if centered else 0.0)
    loops = []
    for k, lp in enumerate(loops2d):
        lp = np.asarray(lp, dtype=float)
        x, y = lp[:, 0], lp[:, 1]
        area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
        if (area < 0) == (k == 0):
            lp = lp[::-1]
        loops.append(o + lp[:, :1] * a1 + lp[:, 1:2] * a2)
    return Prism(loops, nrm, depth)


def bar(p0: Any, p1: Any, size_a: float, size_b: float, a_dir: Any = (0.0, 0.0, 1.0), round_r: float = 0.0) -> Prism:
    """A straight bar of rectangular section (size_a along ``a_dir``, size_b across) from p0 to p1."""
    p0, p1 = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
    n = _unit(p1 - p0)
    a = np.asarray(a_dir, dtype=float)
    a = a - (a @ n) * n
    if np.linalg.norm(a) < 1e-6:
        a = _perp(n)[0]
    a1 = _unit(a)
    a2 = np.cross(n, a1)
    # outline in (a1, a2) with normal a1 x a2 = n
    return prism([_rounded_rect(size_a, size_b, round_r)], p0, a1, a2, float(np.linalg.norm(p1 - p0)), False)


def revolve(
    profile: Any,
    *,
    center: Any = (0.0, 0.0, 0.0),
    axis: Any = (0.0, 0.0, 1.0),
    smooth: bool = True,
    m: int = 6,
    nv: int = 72,
    rings: dict[int, str] | None = None,
    shade: int = 0,
    aspect: float = 1.0,
) -> Surface:
    """Surface of revolution of a (radius, height) profile; ``rings`` maps knot index -> row mode."""
    prof = np.asarray(profile, dtype=float)
    k = len(prof)
    s = _spline(prof, m) if smooth and k > 2 else _polyline_resample(prof, m)
    r = np.maximum(s[:, 0], 1e-3)
    a = _unit(axis)
    e1, e2 = _perp(a)
    phi = np.linspace(0, 2 * math.pi, nv, endpoint=False)
    circ = np.cos(phi)[:, None] * e1 + aspect * np.sin(phi)[:, None] * e2
    grid = np.asarray(center, dtype=float) + r[:, None, None] * circ[None] + s[:, 1][:, None, None] * a
    if rings is None:
        rings = {0: "cap-", k - 1: "cap+", **{i: "front" for i in range(1, k - 1)}}
    rows = sorted(((i % k) * m, mode) for i, mode in rings.items())
    return Surface(grid, True, rows, a, shade)


# ----------------------------------------------------------------------------------------------------------------
# Object classes: parameters and parts
# ----------------------------------------------------------------------------------------------------------------


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng: np.random.Generator, items: list[Any], p: list[float] | None = None) -> Any:
    return items[int(rng.choice(len(items), p=p))]


def _chair_params(rng: np.random.Generator) -> dict[str, Any]:
    office = rng.random() < 0.35
    return {
        "style": "office" if office else "side",
        "w": _u(rng, 0.42, 0.56),
        "d": _u(rng, 0.40, 0.50),
        "h": _u(rng, 0.42, 0.50),
        "t": _u(rng, 0.06, 0.09) if office else _u(rng, 0.025, 0.06),
        "corner": _u(rng, 0.05, 0.13) if office else _u(rng, 0.0, 0.08),
        "back_h": _u(rng, 0.35, 0.62),
        "tilt": _u(rng, 3.0, 16.0),
        "arms": bool(rng.random() < (0.6 if office else 0.3)),
        "back_kind": _pick(rng, ["panel", "slats", "rails"], [0.4, 0.35, 0.25]),
        "n_slats": int(rng.integers(2, 6)),
        "leg_r": _u(rng, 0.013, 0.024),
        "splay": _u(rng, 0.0, 0.05),
        "square_legs": bool(rng.random() < 0.45),
        "stretchers": bool(rng.random() < 0.5),
        "n_star": 5 if rng.random() < 0.85 else 4,
        "star_r": _u(rng, 0.26, 0.34),
        "caster_r": _u(rng, 0.025, 0.035),
        "rail_h": _u(rng, 0.05, 0.11),
    }


def _chair_parts(p: dict[str, Any]) -> list[Primitive]:
    w, d, h, t = p["w"], p["d"], p["h"], p["t"]
    hw, hd, ins = w / 2, d / 2, 0.03
    tilt = math.radians(p["tilt"])
    parts: list[Primitive] = []
    up = np.array([0.0, math.sin(tilt), math.cos(tilt)])
    parts.append(prism([_rounded_rect(w, d, p["corner"])], (0, 0, h - t / 2), (1, 0, 0), (0, 1, 0), t))
    if p["style"] == "office":
        n, rr, cr = p["n_star"], p["star_r"], p["caster_r"]
        hub_z = 0.13
        parts.append(revolve([(0.05, hub_z - 0.04), (0.05, hub_z + 0.02)], smooth=False))
        for k in range(n):
            a = 2 * math.pi * k / n + math.pi / 2
            end = np.array([rr * math.cos(a), rr * math.sin(a), 2 * cr + 0.01])
            mid = 0.5 * (end + np.array([0, 0, hub_z])) + np.array([0, 0, 0.01])
            parts.append(Tube(_spline([(0, 0, hub_z), mid, end], 6), 0.018, (False, True)))
            parts.append(Sphere(end - np.array([0, 0, cr + 0.008]), cr))
        parts.append(
            revolve(
                [(0.035, hub_z + 0.02), (0.035, hub_z + 0.15), (0.024, hub_z + 0.16), (0.024, h - t - 0.06)],
                smooth=False,
                shade=2,
            )
        )
        parts.append(bar((-0.11, 0, h - t - 0.06), (0.11, 0, h - t - 0.06), 0.06, 0.2, (0, 0, 1), 0.02))
        y0 = hd + 0.03
        z0 = h + 0.06
        bw = w * 0.92
        bh = p["back_h"]
        parts.append(
            prism([_rounded_rect(bw, bh, min(0.12, bw / 3))], np.array([0, y0, z0]) + up * bh / 2, (1, 0, 0), up, 0.05)
        )
        parts.append(
            Tube(np.array([(0, hd - 0.08, h - t - 0.03), (0, y0, h - t - 0.01), (0, y0 + 0.01, z0 + 0.06)]), 0.02)
        )
        if p["arms"]:
            for sx in (-1, 1):
                x = sx * (hw + 0.01)
                parts.append(Tube(np.array([(x, 0.02, h - t), (x, 0.02, h + 0.2), (x, -0.05, h + 0.2)]), 0.016))
                parts.append(bar((x, -0.16, h + 0.21), (x, 0.13, h + 0.21), 0.03, 0.06, (0, 0, 1), 0.012))
        return parts
    legr, s = p["leg_r"], p["splay"]
    xs, yf, yb = hw - ins, -(hd - ins), hd - ins
    top = np.array([0.0, p["back_h"] * math.tan(tilt), p["back_h"]])

    for sx in (-1, 1):
        x = sx * xs
        front = [(x + sx * s, yf - s, 0.0), (x, yf, h - t)]
        rear = [(x + sx * s, yb + s, 0.0), (x, yb, h - t), np.array([x, yb, h]) + top]
        if p["square_legs"]:
            parts.append(bar(front[0], front[1], 2 * legr * 1.6, 2 * legr * 1.6, (1, 0, 0)))
            parts.append(bar(rear[0], rear[1], 2 * legr * 1.6, 2 * legr * 1.6, (1, 0, 0)))
            parts.append(bar(rear[1], rear[2], 2 * legr * 1.6, 2 * legr * 1.6, (1, 0, 0)))
        else:
            parts.append(Tube(np.asarray(front, dtype=float), legr))
            parts.append(Tube(np.asarray(rear, dtype=float), legr))
        if p["stretchers"]:
            z = 0.16
            fa = np.array(front[0]) + (np.array(front[1]) - np.array(front[0])) * z / (h - t)
            ra = np.array(rear[0]) + (np.array(rear[1]) - np.array(rear[0])) * z / (h - t)
            parts.append(Tube(np.stack([fa, ra]), legr * 0.6, (False, False)))
        if p["arms"]:
            y_post = yb + (0.22 / p["back_h"]) * top[1]
            path = _spline(
                [(x, yf + 0.02, h), (x, yf - 0.01, h + 0.16), (x, yf + 0.08, h + 0.22), (x, y_post, h + 0.22)], 6
            )
            parts.append(Tube(path, legr * 0.9, (False, False)))
    if p["stretchers"]:
        parts.append(
            Tube(
                np.array([(-xs - s * 0.6, yf - s * 0.6, 0.12), (xs + s * 0.6, yf - s * 0.6, 0.12)]),
                legr * 0.6,
                (False, False),
            )
        )
    rail_h = p["rail_h"]

    def y_at(z: float) -> float:  # depth of the (tilted) back at height z
        return float(yb + (z - h) / p["back_h"] * top[1])

    zt = h + p["back_h"] - 0.01
    kind = p["back_kind"]
    if kind == "panel":
        ph = p["back_h"] * 0.55
        zc = zt - ph / 2
        parts.append(prism([_rounded_rect(2 * xs, ph, 0.03)], (0, y_at(zc), zc), (1, 0, 0), up, 0.025))
    else:
        parts.append(
            bar(
                (-xs, y_at(zt - rail_h), zt - rail_h),
                (xs, y_at(zt - rail_h), zt - rail_h),
                0.022,
                rail_h * 1.0,
                (0, 1, 0),
            )
        )
        if kind == "slats":
            n = p["n_slats"]
            z0, z1 = h + 0.06, zt - rail_h
            for k in range(n):
                x = -xs + 2 * xs * (k + 1) / (n + 1)
                parts.append(bar((x, y_at(z0), z0), (x, y_at(z1), z1), 0.03 + 0.1 / n, 0.018, (1, 0, 0)))
            parts.append(bar((-xs, y_at(z0), z0), (xs, y_at(z0), z0), 0.022, 0.035, (0, 1, 0)))
        else:
            n = 2 + p["n_slats"] // 2
            for k in range(1, n):
                z = h + 0.05 + (zt - rail_h - h - 0.05) * k / n
                parts.append(bar((-xs, y_at(z), z), (xs, y_at(z), z), 0.02, 0.03, (0, 1, 0)))
    return parts


def _table_params(rng: np.random.Generator) -> dict[str, Any]:
    style = _pick(rng, ["four_leg", "pedestal", "trestle"], [0.55, 0.25, 0.2])
    return {
        "style": style,
        "w": _u(rng, 0.9, 1.6),
        "d": _u(rng, 0.5, 0.9),
        "h": _u(rng, 0.42, 0.76),
        "top_t": _u(rng, 0.025, 0.06),
        "corner": _u(rng, 0.0, 0.15) if rng.random() < 0.6 else 0.0,
        "leg_w": _u(rng, 0.035, 0.065),
        "square_legs": bool(rng.random() < 0.6),
        "apron": bool(rng.random() < 0.6),
        "apron_h": _u(rng, 0.05, 0.11),
        "shelf": bool(rng.random() < 0.3),
        "radius": _u(rng, 0.35, 0.6),
        "feet": int(rng.integers(3, 5)) if rng.random() < 0.6 else 0,
        "splay": _u(rng, 0.0, 0.06),
    }


def _table_parts(p: dict[str, Any]) -> list[Primitive]:
    h, tt = p["h"], p["top_t"]
    parts: list[Primitive] = []
    if p["style"] == "pedestal":
        r = p["radius"]
        parts.append(revolve([(r, h - tt), (r, h)], smooth=False, rings={0: "cap-", 1: "cap+"}))
        parts.append(
            revolve(
                [
                    (0.05, 0.05),
                    (0.04, 0.18),
                    (0.07, 0.3),
                    (0.045, 0.45 * h + 0.1),
                    (0.04, h - tt - 0.04),
                    (0.09, h - tt),
                ],
                shade=2,
            )
        )
        if p["feet"]:
            n = p["feet"]
            for k in range(n):
                a = 2 * math.pi * k / n + math.pi / 2
                c, s = math.cos(a), math.sin(a)
                path = _spline([(0.04 * c, 0.04 * s, 0.1), (0.2 * c, 0.2 * s, 0.05), (0.34 * c, 0.34 * s, 0.02)], 6)
                parts.append(Tube(path, 0.025))
        else:
            parts.append(revolve([(0.3, 0.0), (0.3, 0.03), (0.08, 0.06)], smooth=False))
        return parts
    w, d = p["w"], p["d"]
    parts.append(prism([_rounded_rect(w, d, p["corner"])], (0, 0, h - tt / 2), (1, 0, 0), (0, 1, 0), tt))
    lw = p["leg_w"]
    if p["style"] == "trestle":
        xs = w / 2 - 0.12
        for sx in (-1, 1):
            x = sx * xs
            parts.append(bar((x, 0, 0.05), (x, 0, h - tt - 0.05), lw * 1.4, lw * 2.2, (1, 0, 0)))
            parts.append(bar((x, -d / 2 + 0.04, 0.0), (x, d / 2 - 0.04, 0.0), 0.06, lw * 1.4, (0, 0, 1), 0.01))
            parts.append(
                bar((x, -d / 2 + 0.1, h - tt - 0.05), (x, d / 2 - 0.1, h - tt - 0.05), 0.05, lw * 1.4, (0, 0, 1))
            )
        parts.append(bar((-xs, 0, 0.22), (xs, 0, 0.22), 0.07, 0.035, (0, 0, 1)))
        return parts
    xs, ys, s = w / 2 - lw, d / 2 - lw, p["splay"]
    for sx in (-1, 1):
        for sy in (-1, 1):
            top = (sx * xs, sy * ys, h - tt)
            foot = (sx * (xs + s), sy * (ys + s), 0.0)
            if p["square_legs"]:
                parts.append(bar(foot, top, lw, lw, (1, 0, 0)))
            else:
                parts.append(Tube(np.array([foot, top]), lw / 2, (True, False)))
    if p["apron"]:
        za = h - tt - p["apron_h"] / 2
        ah = p["apron_h"]
        for sy in (-1, 1):
            parts.append(bar((-xs, sy * ys, za), (xs, sy * ys, za), ah, 0.02, (0, 0, 1)))
        for sx in (-1, 1):
            parts.append(bar((sx * xs, -ys, za), (sx * xs, ys, za), ah, 0.02, (0, 0, 1)))
    if p["shelf"]:
        zs = 0.15
        parts.append(prism([_rounded_rect(2 * xs + 0.02, 2 * ys + 0.02, 0.0)], (0, 0, zs), (1, 0, 0), (0, 1, 0), 0.02))
    return parts


def _lamp_params(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "style": "desk" if rng.random() < 0.55 else "table",
        "base_r": _u(rng, 0.12, 0.18),
        "base_h": _u(rng, 0.03, 0.06),
        "square_base": bool(rng.random() < 0.3),
        "a1": _u(rng, 8, 35),
        "l1": _u(rng, 0.35, 0.5),
        "a2": _u(rng, -25, 12),
        "l2": _u(rng, 0.32, 0.48),
        "bend": _u(rng, -0.07, 0.07),
        "twin": bool(rng.random() < 0.4),
        "shade_kind": _pick(rng, ["cone", "dome", "cylinder"]),
        "shade_r": _u(rng, 0.08, 0.15),
        "shade_l": _u(rng, 0.12, 0.2),
        "shade_tilt": _u(rng, 0, 35),
        "body_h": _u(rng, 0.15, 0.42),
        "body_r": _u(rng, 0.07, 0.15),
        "body_kind": _pick(rng, ["urn", "column", "disc"]),
        "stem": _u(rng, 0.1, 0.3),
        "drum_h": _u(rng, 0.18, 0.3),
        "drum_rb": _u(rng, 0.16, 0.26),
        "drum_taper": _u(rng, 0.55, 1.0),
    }


def _lamp_parts(p: dict[str, Any]) -> list[Primitive]:
    parts: list[Primitive] = []
    if p["style"] == "desk":
        br, bh = p["base_r"], p["base_h"]
        if p["square_base"]:
            parts.append(prism([_rounded_rect(2 * br, 2 * br, 0.03)], (0, 0, bh / 2), (1, 0, 0), (0, 1, 0), bh))
        else:
            parts.append(revolve([(br, 0.0), (br, bh * 0.6), (br * 0.8, bh)], smooth=False))
        base = np.array([0, 0, bh])
        parts.append(Sphere(base + (0, 0, 0.02), 0.025))
        a1, a2 = math.radians(p["a1"]), math.radians(p["a2"])
        elbow = base + p["l1"] * np.array([-math.sin(a1), 0, math.cos(a1)])
        head = elbow + p["l2"] * np.array([math.cos(a2), 0, -math.sin(a2)])
        mid = 0.5 * (elbow + head) + p["bend"] * np.array([math.sin(a2), 0, math.cos(a2)])
        upper = _spline([elbow, mid, head], 8)
        offsets = [np.array([0, -0.018, 0]), np.array([0, 0.018, 0])] if p["twin"] else [np.zeros(3)]
        for o in offsets:
            parts.append(Tube(np.stack([base + (0, 0, 0.02), elbow]) + o, 0.011, (False, False)))
            parts.append(Tube(upper + o, 0.011, (False, False)))
        parts.append(revolve([(0.035, -0.03), (0.035, 0.03)], center=elbow, axis=(0, 1, 0), smooth=False))
        tilt = math.radians(p["shade_tilt"])
        ax = _unit((math.sin(tilt), 0, -math.cos(tilt)))
        r, ln = p["shade_r"], p["shade_l"]
        kind = p["shade_kind"]
        if kind == "cone":
            prof = [(0.025, 0.0), (0.03, 0.04), (r * 0.55, ln * 0.5), (r, ln)]
        elif kind == "dome":
            prof = [(0.02, 0.0), (r * 0.55, ln * 0.15), (r * 0.9, ln * 0.55), (r, ln)]
        else:
            prof = [(0.03, 0.0), (r * 0.8, 0.01), (r * 0.8, ln)]
        parts.append(revolve(prof, center=head, axis=ax, rings={0: "cap-", len(prof) - 1: "cap+"}, shade=2))
        parts.append(Sphere(head - 0.01 * ax, 0.02))
        return parts
    # table lamp
    br, bh = p["body_r"], p["body_h"]
    kind = p["body_kind"]
    if kind == "urn":
        prof = [(br * 0.7, 0.0), (br * 0.75, 0.03), (br, bh * 0.45), (br * 0.55, bh * 0.85), (br * 0.3, bh)]
        parts.append(revolve(prof, shade=3, rings={0: "cap-", 1: "front", 4: "cap+"}))
    elif kind == "column":
        parts.append(
            revolve([(br * 1.2, 0.0), (br * 1.2, 0.03), (br * 0.45, 0.05), (br * 0.45, bh)], smooth=False, shade=2)
        )
    else:
        parts.append(revolve([(br * 1.3, 0.0), (br * 1.3, 0.04), (br * 0.3, 0.07)], smooth=False))
        bh = 0.07
    z0 = bh
    z1 = z0 + p["stem"]
    parts.append(Tube(np.array([(0, 0, z0), (0, 0, z1 + 0.05)]), 0.012, (False, False)))
    rb = p["drum_rb"]
    rt = rb * p["drum_taper"]
    dh = p["drum_h"]
    parts.append(revolve([(rb, z1), (rt, z1 + dh)], smooth=False, rings={0: "cap-", 1: "cap+"}, shade=3))
    parts.append(Sphere((0, 0, z1 + dh + 0.03), 0.018))
    parts.append(Tube(np.array([(0, 0, z1 + 0.05), (0, 0, z1 + dh + 0.012)]), 0.006, (False, False)))
    return parts


def _bottle_params(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "style": _pick(rng, ["cylinder", "waisted", "flask", "oval"]),
        "r": _u(rng, 0.12, 0.2),
        "body_h": _u(rng, 0.42, 0.62),
        "shoulder_h": _u(rng, 0.1, 0.22),
        "neck_r": _u(rng, 0.04, 0.065),
        "neck_h": _u(rng, 0.05, 0.16),
        "cap_h": _u(rng, 0.06, 0.14),
        "label": bool(rng.random() < 0.5),
        "ribs": int(rng.integers(0, 4)),
        "aspect": _u(rng, 0.55, 0.8),
    }


def _bottle_parts(p: dict[str, Any]) -> list[Primitive]:
    r, hb, hs, rn, hn, hc = p["r"], p["body_h"], p["shoulder_h"], p["neck_r"], p["neck_h"], p["cap_h"]
    style = p["style"]
    body = [(r * 0.85, 0.0), (r, 0.035)]
    if style == "waisted":
        body += [(r * 0.97, hb * 0.3), (r * 0.82, hb * 0.55), (r, hb * 0.85)]
    elif style == "flask":
        body += [(r * 1.08, hb * 0.45)]
    else:
        body += [(r, hb * 0.3), (r, hb * 0.7)] if p["label"] else [(r, hb * 0.5)]
    body += [(r, hb), (r * 0.72, hb + hs * 0.6), (rn * 1.05, hb + hs), (rn, hb + hs + hn * 0.5), (rn, hb + hs + hn)]
    zt = hb + hs + hn
    body += [(rn * 1.15, zt + 0.004), (rn * 1.15, zt + 0.014)]
    n = len(body)
    rings = {0: "cap-", 1: "front", n - 6: "front", n - 3: "front", n - 2: "front", n - 1: "cap+"}
    if style == "waisted":
        rings.update({3: "front"})
    elif style != "flask" and p["label"]:
        rings.update({2: "front", 3: "front"})
    aspect = p["aspect"] if style == "oval" else 1.0
    parts: list[Primitive] = [revolve(body, rings=rings, shade=3, aspect=aspect)]
    for k in range(p["ribs"]):
        z = 0.06 + 0.025 * k
        parts.append(Ring(np.array([0, 0, z]), np.array([0, 0, 1.0]), r, "front", aspect))
    zc = zt + 0.016
    rc = rn * 1.22
    parts.append(revolve([(rc, zc), (rc, zc + hc * 0.8), (rc * 0.9, zc + hc)], smooth=False, shade=6))
    return parts


def _mug_params(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "style": _pick(rng, ["cylinder", "tapered", "barrel", "footed"]),
        "r": _u(rng, 0.3, 0.42),
        "h": _u(rng, 0.75, 1.05),
        "rim": _u(rng, 0.025, 0.05),
        "taper": _u(rng, 1.1, 1.28),
        "handle": _pick(rng, ["C", "D", "angled"]),
        "handle_r": _u(rng, 0.035, 0.06),
        "z1": _u(rng, 0.68, 0.86),
        "z2": _u(rng, 0.14, 0.32),
        "reach": _u(rng, 0.2, 0.34),
        "bands": int(rng.integers(0, 3)),
    }


def _mug_parts(p: dict[str, Any]) -> list[Primitive]:
    r, h, style = p["r"], p["h"], p["style"]
    if style == "tapered":
        prof = [(r, 0.0), (r * (1 + (p["taper"] - 1) * 0.5), h * 0.5), (r * p["taper"], h)]
    elif style == "barrel":
        prof = [(r * 0.9, 0.0), (r * 1.12, h * 0.5), (r * 0.92, h)]
    elif style == "footed":
        prof = [(r * 0.75, 0.0), (r * 0.75, 0.05), (r * 0.95, 0.12), (r * 1.05, h * 0.6), (r * 1.08, h)]
    else:
        prof = [(r, 0.0), (r, h * 0.5), (r, h)]
    smooth = style in ("barrel", "footed")
    n = len(prof)
    rings = {0: "cap-", n - 1: "cap+"}
    if style == "footed":
        rings[1] = "front"
    parts: list[Primitive] = [revolve(prof, smooth=smooth, m=10, rings=rings, shade=3)]
    top_r = prof[-1][0]
    parts.append(Ring(np.array([0, 0, h]), np.array([0, 0, 1.0]), top_r - p["rim"], "cap+"))
    for k in range(p["bands"]):
        z = h * (0.82 - 0.06 * k)
        rz = np.interp(z, [q[1] for q in prof], [q[0] for q in prof])
        parts.append(Ring(np.array([0, 0, z]), np.array([0, 0, 1.0]), float(rz), "front"))

    def rad(z: float) -> float:
        return float(np.interp(z, [q[1] for q in prof], [q[0] for q in prof]))

    z1, z2, reach = h * p["z1"], h * p["z2"], p["reach"]
    a = np.array([rad(z1) - 0.01, 0, z1])
    b = np.array([rad(z2) - 0.01, 0, z2])
    x_out = max(a[0], b[0]) + reach
    if p["handle"] == "C":
        ctrl = [
            a,
            (a[0] + reach * 0.55, 0, z1 + 0.03),
            (x_out, 0, 0.5 * (z1 + z2)),
            (b[0] + reach * 0.55, 0, z2 - 0.03),
            b,
        ]
    elif p["handle"] == "D":
        ctrl = [a, (x_out - 0.05, 0, z1), (x_out, 0, z1 - 0.06), (x_out, 0, z2 + 0.06), (x_out - 0.05, 0, z2), b]
    else:
        ctrl = [a, (x_out, 0, z1 + 0.02), (x_out - 0.02, 0, z2 + 0.1), b]
    parts.append(Tube(_spline(ctrl, 8), p["handle_r"], (False, False)))
    return parts


def _vase_params(rng: np.random.Generator) -> dict[str, Any]:
    rb = _u(rng, 0.18, 0.34)
    rn = _u(rng, 0.07, 0.15)
    return {
        "rf": _u(rng, 0.1, 0.2),
        "foot_h": _u(rng, 0.0, 0.08),
        "rb": rb,
        "zb": _u(rng, 0.25, 0.55),
        "rn": rn,
        "zn": _u(rng, 0.7, 0.85),
        "rl": rn * _u(rng, 1.1, 1.9),
        "h": _u(rng, 0.9, 1.15),
        "bands": int(rng.integers(0, 3)),
        "shoulder": bool(rng.random() < 0.5),
    }


def _vase_parts(p: dict[str, Any]) -> list[Primitive]:
    h = p["h"]
    prof = [(p["rf"], 0.0), (p["rf"] * 1.02, 0.02)]
    if p["foot_h"] > 0.03:
        prof += [(p["rf"] * 0.75, p["foot_h"])]
    prof += [(p["rb"], p["zb"] * h)]
    if p["shoulder"]:
        prof += [(0.5 * (p["rb"] + p["rn"]) * 1.05, 0.5 * (p["zb"] + p["zn"]) * h)]
    prof += [(p["rn"], p["zn"] * h), (p["rl"], h)]
    n = len(prof)
    rings = {0: "cap-", 1: "front", n - 1: "cap+"}
    if p["foot_h"] > 0.03:
        rings[2] = "front"
    parts: list[Primitive] = [revolve(prof, m=8, rings=rings, shade=3)]
    parts.append(Ring(np.array([0, 0, h]), np.array([0, 0, 1.0]), p["rl"] - 0.018, "cap+"))
    s = _spline(prof, 8)
    for k in range(p["bands"]):
        z = (p["zb"] + 0.06 * (k + 1)) * h
        rz = float(np.interp(z, s[:, 1], s[:, 0]))
        parts.append(Ring(np.array([0, 0, z]), np.array([0, 0, 1.0]), rz, "front"))
    return parts


def _faucet_params(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "base": _pick(rng, ["disc", "plate"]),
        "body_r": _u(rng, 0.045, 0.075),
        "body_h": _u(rng, 0.25, 0.45),
        "spout": _pick(rng, ["goose", "straight", "curved"]),
        "spout_r": _u(rng, 0.018, 0.03),
        "reach": _u(rng, 0.22, 0.38),
        "rise": _u(rng, 0.18, 0.35),
        "handle": _pick(rng, ["lever", "cross", "knob"]),
        "lever_l": _u(rng, 0.1, 0.18),
    }


def _faucet_parts(p: dict[str, Any]) -> list[Primitive]:
    rb, hb, sr, reach, rise = p["body_r"], p["body_h"], p["spout_r"], p["reach"], p["rise"]
    parts: list[Primitive] = []
    if p["base"] == "disc":
        parts.append(revolve([(rb * 1.9, 0.0), (rb * 1.9, 0.015), (rb * 1.2, 0.04)], smooth=False))
    else:
        parts.append(prism([_rounded_rect(rb * 4.5, rb * 2.6, rb * 0.8)], (0, 0, 0.012), (1, 0, 0), (0, 1, 0), 0.024))
    top = hb
    parts.append(revolve([(rb, 0.02), (rb, hb * 0.85), (rb * 0.8, hb)], smooth=False, shade=3))
    if p["spout"] == "goose":
        ctrl = [
            (0, 0, top - 0.01),
            (0, 0, top + rise * 0.6),
            (0, -reach * 0.35, top + rise),
            (0, -reach * 0.8, top + rise * 0.85),
            (0, -reach, top + rise * 0.4),
        ]
    elif p["spout"] == "straight":
        ctrl = [(0, -rb * 0.5, hb * 0.75), (0, -reach, hb * 0.68)]
    else:
        ctrl = [(0, -rb * 0.5, hb * 0.8), (0, -reach * 0.6, hb * 0.85), (0, -reach, hb * 0.7)]
    path = _spline(ctrl, 8) if len(ctrl) > 2 else np.asarray(ctrl, dtype=float)
    parts.append(Tube(path, sr, (False, True)))
    end = path[-1]
    if p["spout"] != "goose":
        parts.append(revolve([(sr * 1.15, -0.02), (sr * 1.15, 0.012)], center=end, smooth=False))
    ll = p["lever_l"]
    if p["handle"] == "lever":
        if p["spout"] == "goose":
            pivot = np.array([rb, 0, hb * 0.7])
            parts.append(revolve([(0.025, 0.0), (0.025, 0.03)], center=pivot, axis=(1, 0, 0), smooth=False))
            parts.append(Tube(np.array([pivot + (0.03, 0, 0), pivot + (0.03 + ll * 0.3, 0, ll * 0.7)]), 0.012))
        else:
            pivot = np.array([0, 0, top])
            parts.append(revolve([(rb * 0.7, 0.0), (rb * 0.7, 0.04), (rb * 0.4, 0.06)], center=pivot, smooth=False))
            parts.append(Tube(np.array([pivot + (0, 0.0, 0.05), pivot + (0, ll, 0.05 + ll * 0.45)]), 0.014))
    elif p["handle"] == "cross":
        for sx in (-1, 1):
            c = np.array([sx * rb * 3.2, 0, 0.0])
            parts.append(revolve([(0.035, 0.0), (0.035, 0.03), (0.02, 0.05), (0.02, 0.09)], center=c, smooth=False))
            for a in (0.0, math.pi / 2):
                d = np.array([math.cos(a), math.sin(a), 0]) * 0.06
                parts.append(Tube(np.array([c + (0, 0, 0.09) - d, c + (0, 0, 0.09) + d]), 0.01))
    else:
        for sx in (-1, 1):
            c = np.array([sx * rb, 0, hb * 0.55])
            parts.append(revolve([(0.035, 0.0), (0.04, 0.04), (0.03, 0.07)], center=c, axis=(sx, 0, 0), shade=2))
    return parts


def _wrench_params(rng: np.random.Generator) -> dict[str, Any]:
    r1 = _u(rng, 0.10, 0.15)
    return {
        "style": _pick(rng, ["combination", "double_open", "double_box"], [0.5, 0.3, 0.2]),
        "L": _u(rng, 0.9, 1.2),
        "r1": r1,
        "r2": r1 * _u(rng, 0.8, 1.05),
        "hw1": _u(rng, 0.035, 0.05),
        "hw2": _u(rng, 0.03, 0.05),
        "jaw": _u(rng, 0.5, 0.62),
        "alpha": _u(rng, 10, 22) * (1 if rng.random() < 0.5 else -1),
        "thick": _u(rng, 0.035, 0.06),
        "hole": _pick(rng, ["hex", "star"]),
        "groove": bool(rng.random() < 0.6),
        "offset": _u(rng, 0.0, 0.08) if rng.random() < 0.5 else 0.0,
    }


def _wrench_outline(p: dict[str, Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Outline (x, z) of a wrench lying in the picture plane, with its box-end holes."""
    half = p["L"] / 2
    heads = [  # (center, radius, handle half width, open?, jaw direction)
        (np.array([half, 0.0]), p["r1"], p["hw1"], p["style"] != "double_box", math.radians(p["alpha"])),
        (np.array([-half, 0.0]), p["r2"], p["hw2"], p["style"] == "double_open", math.pi + math.radians(p["alpha"])),
    ]
    holes = []
    pts: list[np.ndarray] = []
    for k, (c, r, hw, open_end, a) in enumerate(heads):
        g = math.asin(min(hw / r, 0.95))
        # the arc runs counter-clockwise from the lower handle junction to the upper one, away from the handle
        a0, a1 = (math.pi + g, 3 * math.pi - g) if k == 0 else (g, 2 * math.pi - g)
        if open_end:
            wj = r * p["jaw"]  # jaw opening (across flats)
            d = np.array([math.cos(a), math.sin(a)])
            dn = np.array([-d[1], d[0]])
            hj = wj / 2
            rim = math.sqrt(r * r - hj * hj)
            lo = c + d * rim - hj * dn
            hi = c + d * rim + hj * dn
            ang_lo = math.atan2(lo[1] - c[1], lo[0] - c[0])
            ang_hi = math.atan2(hi[1] - c[1], hi[0] - c[0])
            while ang_lo < a0:
                ang_lo += 2 * math.pi
            while ang_hi < ang_lo:
                ang_hi += 2 * math.pi
            bottom = c + d * (-0.1 * r)
            slot = [lo, bottom - hj * dn]
            psi = np.linspace(1.5 * math.pi, 0.5 * math.pi, 13)
            arc = bottom + hj * (np.cos(psi)[:, None] * d + np.sin(psi)[:, None] * dn)
            pts.append(_arc2(c, r, a0, ang_lo))
            pts.append(np.array(slot))
            pts.append(arc)
            pts.append(_arc2(c, r, ang_hi, a1))
        else:
            pts.append(_arc2(c, r, a0, a1))
            ri = r * 0.55
            n = 6 if p["hole"] == "hex" else 24
            ang = np.linspace(0, 2 * math.pi, n, endpoint=False) + math.radians(p["alpha"])
            rad = np.full(n, ri) if n == 6 else np.where(np.arange(n) % 2 == 0, ri, ri * 0.87)
            holes.append(c + np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1))
    return np.vstack(pts), holes


def _wrench_parts(p: dict[str, Any]) -> list[Primitive]:
    outline, holes = _wrench_outline(p)
    t = p["thick"]
    parts: list[Primitive] = [prism([outline, *holes], (0, 0, 0), (1, 0, 0), (0, 0, 1), t)]
    if p["groove"]:
        half = p["L"] / 2
        x0, x1 = -half + p["r2"] + 0.06, half - p["r1"] - 0.06
        hw = min(p["hw1"], p["hw2"]) * 0.45
        loop = _rounded_rect(x1 - x0, 2 * hw, hw * 0.99, (x0 + x1) / 2, 0)
        for sgn in (-1, 1):
            pts = np.stack([loop[:, 0], np.full(len(loop), sgn * t / 2), loop[:, 1]], axis=1)
            parts.append(Curve(np.vstack([pts, pts[:1]]), np.array([0, sgn, 0.0]), True))
    return parts


def _shoe_params(rng: np.random.Generator) -> dict[str, Any]:
    style = _pick(rng, ["sneaker", "boot", "loafer"], [0.5, 0.25, 0.25])
    return {
        "style": style,
        "W": _u(rng, 0.15, 0.2),
        "sole_t": _u(rng, 0.04, 0.09) if style == "sneaker" else _u(rng, 0.025, 0.05),
        "collar_h": _u(rng, 0.26, 0.36),
        "toe_h": _u(rng, 0.11, 0.15),
        "power": _u(rng, 2.2, 3.2),
        "laces": int(rng.integers(3, 7)),
        "shaft_h": _u(rng, 0.3, 0.5),
        "toe_cap": bool(rng.random() < 0.5),
        "collar_len": _u(rng, 0.16, 0.22),
    }


def _shoe_parts(p: dict[str, Any]) -> list[Primitive]:
    big_w, zs, pw = p["W"], p["sole_t"], p["power"]

    def width(v: np.ndarray | float) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        base = np.interp(v, [0, 0.3, 0.5, 0.72, 0.85, 1.0], [0.78, 0.74, 0.8, 1.0, 0.95, 0.85])
        return big_w * base * np.sqrt(np.clip(1 - np.abs(2 * v - 1) ** 6, 0, 1))

    hv = [0.0, 0.1, 0.3, 0.5, 0.72, 0.9, 1.0]
    hz = [
        p["collar_h"] * 0.95,
        p["collar_h"],
        p["collar_h"] * 0.8,
        p["collar_h"] * 0.85,
        p["toe_h"] * 1.4,
        p["toe_h"],
        p["toe_h"] * 0.55,
    ]
    hcurve = _spline(np.stack([hv, hz], axis=1), 10)

    def height(v: np.ndarray | float) -> np.ndarray:
        return np.interp(v, hcurve[:, 0], hcurve[:, 1])

    def point(c: np.ndarray, v: np.ndarray) -> np.ndarray:
        c, v = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(v, dtype=float))
        x = c * width(v)
        y = 0.5 - v  # heel at +y, toe at -y (the front)
        z = zs + height(v) * np.clip(1 - np.abs(c) ** pw, 0, 1) ** (1 / pw)
        return np.stack([x, y, z], axis=-1)

    def normal(c: np.ndarray, v: np.ndarray) -> np.ndarray:
        e = 1e-3
        du = point(c + e, v) - point(c - e, v)
        dv = point(c, v + e) - point(c, v - e)
        n = np.cross(du, dv)
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
        return np.where((n[..., 2:3] < 0), -n, n)

    def on_surface(c: np.ndarray, v: np.ndarray, closed: bool = False) -> Curve:
        return Curve(point(c, v) + normal(c, v) * 0.002, normal(c, v), closed)

    vs = np.linspace(0.0, 1.0, 61)
    cs = np.linspace(-1.0, 1.0, 41)
    grid = point(cs[None, :], vs[:, None])
    parts: list[Primitive] = [Surface(grid, False, [(0, "edge"), (len(vs) - 1, "edge")], np.array([0.0, 1.0, 0.0]))]
    # sole: outline loop slightly larger than the upper, as outsole + midsole
    vv = np.linspace(0.0, 1.0, 80)
    wv = width(vv) + 0.012
    loop = np.vstack([np.stack([wv, 0.5 - vv], axis=1), np.stack([-wv[::-1], 0.5 - vv[::-1]], axis=1)])
    z1 = zs * 0.45
    parts.append(prism([loop], (0, 0, 0), (1, 0, 0), (0, 1, 0), z1, False))
    parts.append(prism([loop], (0, 0, z1), (1, 0, 0), (0, 1, 0), zs - z1, False))
    th = np.linspace(0, 2 * math.pi, 64)
    cl = p["collar_len"]
    vc = cl * 0.55 + 0.02
    if p["style"] == "boot":
        ax, ay = 0.85, cl * 0.7
        rim = point(ax * np.cos(th), vc + ay * np.sin(th))
        z_top = float(rim[:, 2].max()) + p["shaft_h"]
        cxy = np.array([0.0, 0.5 - vc, 0.0])
        rx = float(width(vc)) * ax
        shaft = [(rx, float(rim[:, 2].min()) - 0.02), (rx * 1.04, z_top)]
        parts.append(revolve(shaft, center=cxy, smooth=False, aspect=ay / rx, rings={1: "cap+"}, shade=2))
        parts.append(on_surface(ax * np.cos(th), vc + ay * np.sin(th), True))
    else:
        parts.append(on_surface(0.62 * np.cos(th), vc + cl * 0.55 * np.sin(th), True))
        parts.append(on_surface(0.75 * np.cos(th), vc + cl * 0.62 * np.sin(th), True))
    v_front = vc + cl * 0.55
    if p["style"] in ("sneaker", "boot"):
        n = p["laces"]
        v_end = v_front + 0.06 + 0.035 * n
        for sgn in (-1, 1):
            vv = np.linspace(v_front - 0.02, v_end, 16)
            parts.append(on_surface(np.full_like(vv, sgn * 0.3), vv))
        for k in range(n):
            v = v_front + 0.03 + (v_end - v_front - 0.04) * k / max(n - 1, 1)
            cc = np.linspace(-0.3, 0.3, 9)
            parts.append(on_surface(cc, np.full_like(cc, v)))
        cc = np.linspace(-0.3, 0.3, 15)
        parts.append(on_surface(cc, v_end + 0.03 * (1 - (cc / 0.3) ** 2)))
    else:
        cc = np.linspace(-0.8, 0.8, 31)
        parts.append(on_surface(cc, v_front + 0.1 + 0.22 * (1 - (cc / 0.8) ** 2)))
        cc = np.linspace(-0.85, 0.85, 9)
        parts.append(on_surface(cc, np.full_like(cc, v_front + 0.06)))
    if p["toe_cap"]:
        cc = np.linspace(-0.98, 0.98, 31)
        parts.append(on_surface(cc, 0.84 + 0.1 * cc**2))
    return parts


def _hinge_params(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "leaf_w": _u(rng, 0.35, 0.6),
        "rk": _u(rng, 0.045, 0.07),
        "tl": _u(rng, 0.022, 0.035),
        "knuckles": _pick(rng, [3, 5]),
        "holes": int(rng.integers(2, 5)),
        "hole_r": _u(rng, 0.03, 0.045),
        "countersink": bool(rng.random() < 0.6),
        "open": _u(rng, 90, 180) if rng.random() < 0.7 else 180.0,
        "shape": _pick(rng, ["rect", "rounded", "tapered"]),
        "tip": _pick(rng, ["flat", "ball", "button"]),
    }


def _hinge_parts(p: dict[str, Any]) -> list[Primitive]:
    hgt, wl, rk, tl = 1.0, p["leaf_w"], p["rk"], p["tl"]
    parts: list[Primitive] = []
    nk = p["knuckles"]
    zs = [hgt * k / nk for k in range(nk + 1)]
    prof = [(rk, z) for z in zs]
    parts.append(
        revolve(prof, smooth=False, m=2, rings={0: "cap-", nk: "cap+", **{k: "front" for k in range(1, nk)}}, shade=2)
    )
    s0, s1 = rk * 0.9, rk + wl
    for ang in (180.0, 180.0 - p["open"]):
        a = math.radians(ang)
        d = np.array([math.cos(a), math.sin(a), 0.0])
        if p["shape"] == "rect":
            outline = _rounded_rect(s1 - s0, hgt, 0.0, (s0 + s1) / 2, hgt / 2)
        elif p["shape"] == "rounded":
            outline = _rounded_rect(s1 - s0, hgt, min(0.12, wl / 3), (s0 + s1) / 2, hgt / 2)
        else:
            te = hgt * 0.12
            s1 = rk + wl * 1.8  # a strap leaf: long, tapering to a rounded end
            end = _arc2((s1 - te, hgt / 2), te, -math.pi / 2, math.pi / 2, 10)
            outline = np.vstack([[s0, 0.0], [s0 + 0.04, 0.0], end, [s0 + 0.04, hgt], [s0, hgt]])
        holes = []
        nh, hr = p["holes"], p["hole_r"]
        centers = []
        for j in range(nh):
            if p["shape"] == "tapered":
                if j >= 3:
                    break
                sx, z = s0 + 0.15 + (s1 - s0 - 0.15 - 0.12 * hgt) * j / max(min(nh, 3) - 1, 1), hgt / 2
            else:
                sx, z = s0 + (s1 - s0) * (0.45 if j % 2 == 0 else 0.68), hgt * (j + 1) / (nh + 1)
            centers.append((sx, z))
            holes.append(_arc2((sx, z), hr, 0, 2 * math.pi, 15)[:-1])
        pr = prism([outline, *holes], (0, 0, 0), d, (0, 0, 1), tl)
        parts.append(pr)
        if p["countersink"]:
            nrm = pr.normal
            for sx, z in centers:
                for sgn in (-1, 1):
                    c = sx * d + np.array([0, 0, z]) + sgn * nrm * (tl / 2 + 0.001)
                    parts.append(
                        Curve(
                            np.vstack([_circle(c, nrm, hr * 1.55, 40), _circle(c, nrm, hr * 1.55, 40)[:1]]),
                            sgn * nrm,
                            True,
                        )
                    )
    tip = p["tip"]
    if tip == "ball":
        parts.append(Sphere((0, 0, hgt + rk * 0.7), rk * 0.75))
        parts.append(Sphere((0, 0, -rk * 0.7), rk * 0.75))
    elif tip == "button":
        parts.append(revolve([(rk * 0.85, hgt), (rk * 0.85, hgt + 0.02), (rk * 0.45, hgt + 0.045)], smooth=False))
        parts.append(revolve([(rk * 0.45, -0.045), (rk * 0.85, -0.02), (rk * 0.85, 0.0)], smooth=False))
    return parts


_BUILDERS: dict[str, tuple[Any, Any]] = {
    "chair": (_chair_params, _chair_parts),
    "lamp": (_lamp_params, _lamp_parts),
    "bottle": (_bottle_params, _bottle_parts),
    "table": (_table_params, _table_parts),
    "shoe": (_shoe_params, _shoe_parts),
    "mug": (_mug_params, _mug_parts),
    "faucet": (_faucet_params, _faucet_parts),
    "vase": (_vase_params, _vase_parts),
    "wrench": (_wrench_params, _wrench_parts),
    "hinge": (_hinge_params, _hinge_parts),
}


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


def sample_params(cls: str, rng: np.random.Generator) -> dict[str, Any]:
    """Sample the parameters of one object (one synthetic patent) of class ``cls``."""
    if cls not in _BUILDERS:
        raise ValueError(f"unknown object class {cls!r}; known: {', '.join(CLASSES)}")
    return _BUILDERS[cls][0](rng)


def build_object(cls: str, params: dict[str, Any]) -> list[Primitive]:
    """The 3-D parts of an object of class ``cls`` with ``params``."""
    if cls not in _BUILDERS:
        raise ValueError(f"unknown object class {cls!r}; known: {', '.join(CLASSES)}")
    return _BUILDERS[cls][1](params)


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
    unknown = [c for c in classes if c not in _BUILDERS]
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
