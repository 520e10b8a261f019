"""Object family: bottles, mugs and vases (parameters and 3-D parts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pir.synth.geometry import Primitive, Ring, Tube, _spline, revolve
from pir.synth.objects._common import _pick, _u
from pir.synth.registry import register


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


register("bottle", _bottle_params, _bottle_parts)
register("mug", _mug_params, _mug_parts)
register("vase", _vase_params, _vase_parts)
