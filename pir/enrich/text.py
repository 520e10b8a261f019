"""Text checks shared by all backends: names the object, length limit, near-duplicate removal."""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of in on at to for from with by and or as is are be this that its it his her their our my "
    "shown showing seen view drawing".split()
)


#: Phrases that address a language model rather than describe a drawing (prompt injection in patent text).
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|prompts?|rules|above|previous|prior)\b"
    r"|\b(?:system prompt|you are now|act as|new instructions?|reply (?:with|only)|respond (?:with|only)|"
    r"output only|say only|print only)\b",
    re.IGNORECASE | re.DOTALL,
)


def looks_like_instruction(text: str | None) -> bool:
    """True when ``text`` contains an instruction aimed at a language model ("ignore previous instructions")."""
    return bool(text) and bool(_INSTRUCTION.search(text or ""))


def injected_tokens(texts: Iterable[str | None], allowed: Iterable[str]) -> frozenset[str]:
    """Distinctive words of the instruction-like parts of ``texts`` (from the instruction to the end of its
    sentence), minus the words of ``allowed`` (object, aliases): an answer that repeats one of them followed the
    injected instruction."""
    allowed_toks: set[str] = set()
    for a in allowed:
        allowed_toks |= content_tokens(a)
    out: set[str] = set()
    for text in texts:
        if not text:
            continue
        for m in _INSTRUCTION.finditer(text):
            tail = re.split(r"[.!?\n]", text[m.start() :], maxsplit=1)[0]
            out |= content_tokens(tail)
    return frozenset(out - allowed_toks)


def content_tokens(text: str) -> frozenset[str]:
    """Lower-case word tokens without stop words (a crude plural fold: ``lamps`` -> ``lamp``)."""
    out = set()
    for tok in _TOKEN.findall(text.lower()):
        if tok in _STOP:
            continue
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.add(tok)
    return frozenset(out)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two token sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _name_pattern(name: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", name.strip().lower()) if w]
    body = r"[\s\-]+".join(words)
    return re.compile(rf"(?<![a-z0-9]){body}(?:s|es)?(?![a-z0-9])")


def mentions(text: str, names: Iterable[str]) -> bool:
    """True when ``text`` names one of ``names`` as whole words (case-insensitive, plural allowed)."""
    low = text.lower()
    return any(name.strip() and _name_pattern(name).search(low) for name in names)


def clip(text: str, max_chars: int) -> str:
    """Shorten ``text`` to ``max_chars`` at a word boundary, ending with a full stop."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[: max(1, max_chars - 1)].rsplit(" ", 1)[0].rstrip(" ,;:(-")
    return cut + "."


def select_distinct(
    candidates: Iterable[str],
    *,
    k: int,
    max_chars: int,
    names: Iterable[str],
    threshold: float = 0.75,
    taken: Iterable[str] = (),
    banned: frozenset[str] = frozenset(),
) -> list[str]:
    """The first ``k`` candidates that are non-empty, at most ``max_chars`` long, name one of ``names``, contain no
    ``banned`` token (see :func:`injected_tokens`) and are not near-duplicates (token Jaccard >= ``threshold``) of an
    earlier pick or of ``taken``."""
    names = [n for n in names if n and n.strip()]
    kept: list[str] = []
    seen = [content_tokens(t) for t in taken]
    for cand in candidates:
        if len(kept) >= k:
            break
        if not isinstance(cand, str):
            continue
        text = " ".join(cand.split())
        if not text or len(text) > max_chars or not mentions(text, names):
            continue
        toks = content_tokens(text)
        if toks & banned:
            continue
        if any(jaccard(toks, s) >= threshold for s in seen):
            continue
        kept.append(text)
        seen.append(toks)
    return kept


def carries_alias(text: str, aliases: Iterable[str], object_name: str | None = None) -> bool:
    """True when ``text`` names an alias beyond the object name: "lamp" inside "table lamp" does not count, an
    alias that contains the object name ("computer keyboard" for "keyboard") does."""
    low = text.lower()
    obj = _name_pattern(object_name) if object_name and object_name.strip() else None
    without_obj = obj.sub(" ", low) if obj else low
    for alias in aliases:
        if not alias or not alias.strip():
            continue
        inside = obj is not None and obj.search(alias.lower()) is not None
        if _name_pattern(alias).search(low if inside else without_obj):
            return True
    return False


def alias_share(descriptions: Iterable[str], aliases: Iterable[str], object_name: str | None = None) -> tuple[int, int]:
    """(descriptions that carry at least one alias, all descriptions)."""
    aliases = [a for a in aliases if a]
    items = list(descriptions)
    return sum(1 for d in items if carries_alias(d, aliases, object_name)), len(items)
