"""Object family: faucets (parameters and 3-D parts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pir.synth.geometry import Primitive, Tube, _rounded_rect, _spline, prism, revolve
from pir.synth.objects._common import _pick, _u
from pir.synth.registry import register


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


register("faucet", _faucet_params, _faucet_parts)
