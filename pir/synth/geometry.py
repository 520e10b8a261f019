"""Orthographic views and 3-D primitives with exact contour lines."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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

    center: np.ndarray | tuple[float, float, float]
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
        out: list[np.ndarray] = []
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
            for k in np.nonzero(draw)[0].tolist():
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
