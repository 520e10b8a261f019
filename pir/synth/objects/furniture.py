"""Object family: chairs and tables (parameters and 3-D parts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pir.synth.geometry import Primitive, Sphere, Tube, _rounded_rect, _spline, bar, prism, revolve
from pir.synth.objects._common import _pick, _u
from pir.synth.registry import register


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


register("chair", _chair_params, _chair_parts)
register("table", _table_params, _table_parts)
