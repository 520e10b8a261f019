"""Human-readable titles of design classification codes (USPC design classes, Locarno classes).

The tables are public classification facts shipped in ``pir/data``: ``uspc_design_classes.csv`` (USPC design
classes D1..D34 and D99; D31 and D33 are not assigned) and ``locarno_classes.csv`` (Locarno classes 1..32 and a few
subclasses). Codes are accepted in the spellings found in real data: ``D26/25``, ``D26-25``, ``D26 25``, the
fixed-width USPTO form ``D14486`` / ``D 2728`` (class right-justified in two characters), Locarno ``0202``,
``02-02`` or ``2``.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

_SEPARATORS = re.compile(r"[/\-.]")


@dataclass(frozen=True)
class ClassTitle:
    """One classification code with its title, e.g. ``ClassTitle("USPC", "D26", "Lighting")``."""

    system: str
    code: str
    title: str

    @property
    def label(self) -> str:
        """``"USPC D26"`` / ``"Locarno 26-05"``."""
        return f"{self.system} {self.code}"


@functools.cache
def _table(name: str) -> dict[str, str]:
    text = resources.files("pir").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return {row["code"].strip(): row["title"].strip() for row in csv.DictReader(io.StringIO(text))}


def uspc_table() -> dict[str, str]:
    """USPC design class -> title (``{"D26": "Lighting", ...}``)."""
    return _table("uspc_design_classes.csv")


def locarno_table() -> dict[str, str]:
    """Locarno class or subclass -> title (``{"26": "Lighting apparatus", "26-05": "Lamps, ...", ...}``)."""
    return _table("locarno_classes.csv")


def parse_uspc_design(code: str, known_mains: Iterable[str] = ()) -> tuple[str, str | None] | None:
    """Split a USPC design code into (main class, subclass); None when it is not a design code.

    The compact USPTO form is ambiguous for one-digit classes once its padding is lost (``" D2840"`` is D2/840,
    ``"D2840"`` could be D28/40): a one-digit reading is chosen when the code keeps its leading space, when the
    two-digit class does not exist, or when the one-digit class is among ``known_mains`` (the figure's other codes).

    Examples:
        >>> parse_uspc_design("D14486"), parse_uspc_design("D 2728"), parse_uspc_design("D26/25")
        (('D14', '486'), ('D2', '728'), ('D26', '25'))
    """
    padded_one_digit = code.startswith(" ") and code.strip()[:1].upper() == "D"
    s = code.strip().upper()
    if not s.startswith("D") or len(s) < 2:
        return None
    rest = s[1:]
    if _SEPARATORS.search(rest):
        main, sub = _SEPARATORS.split(rest, maxsplit=1)
    elif len(rest.strip()) <= 2 and rest.strip().isdigit():
        main, sub = rest, ""
    elif rest[:1] == " " or rest[1:2] == " ":
        main, sub = rest[:2], rest[2:]
    elif rest.isdigit() and (padded_one_digit or f"D{rest[:2]}" not in uspc_table() or f"D{rest[0]}" in known_mains):
        main, sub = rest[:1], rest[1:]
    else:
        main, sub = rest[:2], rest[2:]
    main, sub = main.strip(), sub.strip().lstrip("0") or None
    if not main.isdigit():
        return None
    return f"D{int(main)}", sub


def _unambiguous_mains(codes: Iterable[str]) -> set[str]:
    out = set()
    for code in codes:
        rest = code.strip().upper()[1:]
        if code.strip().upper().startswith("D") and (_SEPARATORS.search(rest) or " " in rest or len(rest) <= 2):
            parsed = parse_uspc_design(code)
            if parsed:
                out.add(parsed[0])
    return out


def parse_locarno(code: str) -> tuple[str, str | None] | None:
    """Split a Locarno code into zero-padded (class, subclass): ``"0202"`` / ``"2-2"`` -> ``("02", "02")``."""
    s = code.strip()
    if _SEPARATORS.search(s):
        main, sub = (p.strip() for p in _SEPARATORS.split(s, maxsplit=1))
    elif s.isdigit() and len(s) == 4:
        main, sub = s[:2], s[2:]
    else:
        main, sub = s, ""
    if not main.isdigit() or (sub and not sub.isdigit()):
        return None
    return f"{int(main):02d}", (f"{int(sub):02d}" if sub else None)


def uspc_class_title(code: str, known_mains: Iterable[str] = ()) -> ClassTitle | None:
    """Title of the USPC design main class of ``code`` (None when unknown)."""
    parsed = parse_uspc_design(code, known_mains)
    if parsed is None:
        return None
    title = uspc_table().get(parsed[0])
    return ClassTitle("USPC", parsed[0], title) if title else None


def locarno_class_title(code: str) -> ClassTitle | None:
    """Title of the Locarno subclass of ``code`` when known, else of its class (None when unknown)."""
    parsed = parse_locarno(code)
    if parsed is None:
        return None
    main, sub = parsed
    table = locarno_table()
    if sub and f"{main}-{sub}" in table:
        return ClassTitle("Locarno", f"{main}-{sub}", table[f"{main}-{sub}"])
    title = table.get(main)
    return ClassTitle("Locarno", main, title) if title else None


def class_titles(uspc: list[str], locarno: list[str], extra: list[str] | None = None) -> list[ClassTitle]:
    """Titles for a figure's codes, de-duplicated by (system, code), order kept; unknown codes are skipped.

    ``extra`` holds further codes of unknown system (e.g. a ``class_label`` such as ``"D14"``); they are tried as
    USPC design codes.
    """
    out: list[ClassTitle] = []
    us_codes = [*uspc, *(extra or [])]
    known = _unambiguous_mains(us_codes)
    candidates = [uspc_class_title(c, known) for c in us_codes] + [locarno_class_title(c) for c in locarno]
    for ct in candidates:
        if ct is not None and all((ct.system, ct.code) != (o.system, o.code) for o in out):
            out.append(ct)
    return out


def title_for_class_name(name: str) -> str | None:
    """The title when ``name`` is itself a class code (``"D26"`` -> ``"Lighting"``), else None."""
    ct = uspc_class_title(name) if name.strip().upper().startswith("D") else locarno_class_title(name)
    return ct.title if ct else None
