"""Viewpoints, object classes, their aliases and USPC/Locarno codes."""

from __future__ import annotations

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
