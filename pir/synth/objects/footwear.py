"""Object family: shoes (parameters and 3-D parts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pir.synth.geometry import Curve, Primitive, Surface, _spline, prism, revolve
from pir.synth.objects._common import _pick, _u
from pir.synth.registry import register


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


register("shoe", _shoe_params, _shoe_parts)
