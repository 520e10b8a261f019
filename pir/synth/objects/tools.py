"""Object family: wrenches (parameters and 3-D parts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pir.synth.geometry import Curve, Primitive, _arc2, _rounded_rect, prism
from pir.synth.objects._common import _pick, _u
from pir.synth.registry import register


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


register("wrench", _wrench_params, _wrench_parts)
