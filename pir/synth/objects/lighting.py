"""Object family: lamps (parameters and 3-D parts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pir.synth.geometry import Primitive, Sphere, Tube, _rounded_rect, _spline, _unit, prism, revolve
from pir.synth.objects._common import _pick, _u
from pir.synth.registry import register


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


register("lamp", _lamp_params, _lamp_parts)
