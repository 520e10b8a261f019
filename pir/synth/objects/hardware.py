"""Object family: hinges (parameters and 3-D parts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pir.synth.geometry import Curve, Primitive, Sphere, _arc2, _circle, _rounded_rect, prism, revolve
from pir.synth.objects._common import _pick, _u
from pir.synth.registry import register


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


register("hinge", _hinge_params, _hinge_parts)
