"""The offline, deterministic ``template`` backend: K varied descriptions composed from a figure's metadata."""

from __future__ import annotations

import hashlib
import random

from pir.enrich.base import PROMPT_VERSION, Enricher
from pir.enrich.inputs import FigureInputs
from pir.enrich.text import clip, looks_like_instruction, select_distinct

_MAX_TITLE_CHARS = 120
_MAX_CAPTION_CHARS = 200

#: Nouns used without an article ("clothing", not "a clothing").
MASS_NOUNS = frozenset(
    "clothing apparel clothes footwear footgear fabric textile cloth cutlery furniture equipment lighting signage "
    "headwear headgear eyewear outerwear handwear jewelry jewellery packaging shelving tableware crockery dishware "
    "napery linen hardware material software lights glasses spectacles shades trousers pants scissors pliers "
    "shears headphones earphones".split()
)

Slots = dict[str, str]

# Patterns are (required slots, format). Slots: obj, alias, alias2 and the article forms a_obj / A_obj / a_alias /
# A_alias, view / View, in_view / comma_view (empty without a viewpoint), title, desc, desc_open, desc2, caption,
# cls / Cls (first class title), clsc (class title with its code), cls2 (second class with its code).
ALIAS_PATTERNS: list[tuple[str, str]] = [
    ("alias view", "{View} of {a_obj}, also called {a_alias}."),
    ("alias", "Patent drawing of {a_alias} ({obj}){in_view}."),
    ("alias", "Black-and-white line drawing of {a_obj} or {alias}{in_view}."),
    ("alias title", '{A_alias} design from the patent "{title}".'),
    ("alias alias2", "Ornamental design for {a_obj} ({alias}, {alias2})."),
    ("alias view", "Technical sketch of {a_alias}: {view} of the claimed {obj}."),
    ("alias cls", "{Cls} design: {a_alias} drawn in outline{in_view}."),
    ("alias clsc", "{A_obj}, that is {a_alias}, in the class of {clsc}."),
    ("alias", "Design patent sheet showing {a_alias}; the claimed article is {a_obj}."),
    ("alias view", "{A_alias} seen in {view}, drawn as a patent figure."),
    ("alias", "Outline of {a_alias} with shading lines, as in a design patent for {a_obj}."),
    ("alias desc", "{desc_open} ({alias})."),
]

# Object-only patterns (always available, so K descriptions exist even without aliases). The first two (the
# patent's own figure text and the caption) always come first.
OBJECT_PATTERNS: list[tuple[str, str]] = [
    ("desc", "{desc}"),
    ("caption", "Drawing of {a_obj}: {caption}"),
    ("view", "{View} of {a_obj}."),
    ("clsc", "Design patent drawing of {a_obj} in the class of {clsc}."),
    ("title", 'Figure from the design patent "{title}"{comma_view}.'),
    ("", "Line drawing of {a_obj} from a US design patent{comma_view}."),
    ("", "The claimed {obj} drawn in black lines on a white background."),
    ("cls2", "{A_obj}, classified as {cls2}."),
    ("", "Ornamental design of {a_obj} shown as a patent figure."),
    ("view", "Patent sketch: {a_obj} seen in {view}."),
    ("", "Isolated {obj} drawn for a design patent, without background."),
    ("", "Engineering-style outline drawing of {a_obj}."),
    ("", "Drawing sheet depicting {a_obj}."),
    ("", "{A_obj} as claimed in a design patent."),
    ("", "Monochrome patent illustration of {a_obj}."),
    ("", "Drawing of the ornamental appearance of {a_obj}."),
    ("", "Sketch of {a_obj} with contour and shading lines."),
    ("desc2", "{desc2}"),
]


def article(phrase: str) -> str:
    """``"a lamp"``, ``"an abutment"``; plural-looking and mass nouns get none (``"game pieces"``, ``"clothing"``)."""
    if not phrase.split():
        return phrase
    head = phrase.lower().split(" of ")[0].split()[-1]
    if head in MASS_NOUNS:
        return phrase
    if len(head) > 3 and head.endswith("s") and not head.endswith(("ss", "us", "is")):
        return phrase
    if phrase.isupper() and len(phrase) <= 5:  # acronyms: "a GUI"
        return f"a {phrase}"
    return f"{'an' if phrase[0].lower() in 'aeiou' else 'a'} {phrase}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _data(text: str | None) -> str:
    """Patent text for a template slot; text that addresses a language model is left out (it is not a description)."""
    return "" if not text or looks_like_instruction(text) else text


def _slots(inputs: FigureInputs, alias: str | None, alias2: str | None) -> Slots:
    view = _data(inputs.viewpoint)
    classes = inputs.class_phrases()
    sentences = [d.strip().rstrip(".") + "." for d in _data(inputs.description).split(". ") if d.strip()]
    cls_title = inputs.classes[0][2].lower().replace(";", ",") if inputs.classes else ""
    obj = inputs.object_name
    return {
        "obj": obj,
        "a_obj": article(obj),
        "A_obj": _cap(article(obj)),
        "alias": alias or "",
        "a_alias": article(alias) if alias else "",
        "A_alias": _cap(article(alias)) if alias else "",
        "alias2": alias2 or "",
        "view": view,
        "View": _cap(view),
        "in_view": f" in {view}" if view else "",
        "comma_view": f", {view}" if view else "",
        "title": clip(_data(inputs.title), _MAX_TITLE_CHARS).rstrip("."),
        "desc": sentences[0] if sentences else "",
        "desc_open": sentences[0].rstrip(".") if sentences else "",
        "desc2": sentences[1] if len(sentences) > 1 else "",
        "caption": clip(_data(inputs.caption), _MAX_CAPTION_CHARS),
        "cls": cls_title,
        "Cls": _cap(cls_title),
        "clsc": classes[0] if classes else "",
        "cls2": classes[1] if len(classes) > 1 else "",
    }


def _render(pattern: tuple[str, str], slots: Slots) -> str | None:
    required, fmt = pattern
    if not all(slots.get(name) for name in required.split()):
        return None
    return fmt.format(**slots)


def _seed(inputs: FigureInputs) -> int:
    return int.from_bytes(hashlib.sha256((inputs.to_json() + PROMPT_VERSION).encode()).digest()[:8], "big")


def template_descriptions(inputs: FigureInputs, k: int = 10, max_chars: int = 300) -> list[str]:
    """K deterministic descriptions with varied phrasing; most carry an alias when the object has any.

    The patent's own figure text and the caption (when given) come first, then alias-bearing patterns (each with
    the next alias), then object-only patterns; near-duplicates, over-long texts and texts naming neither the
    object nor an alias are dropped. The pattern order is shuffled by a seed derived from the inputs.
    """
    rng = random.Random(_seed(inputs))
    aliases = list(inputs.aliases)
    alias_pats = ALIAS_PATTERNS[:]
    object_pats = OBJECT_PATTERNS[2:]
    rng.shuffle(alias_pats)
    rng.shuffle(object_pats)
    object_pats = OBJECT_PATTERNS[:2] + object_pats

    alias_texts: list[str] = []
    for i, pat in enumerate(alias_pats if aliases else []):
        alias, alias2 = aliases[i % len(aliases)], aliases[(i + 1) % len(aliases)]
        text = _render(pat, _slots(inputs, alias, alias2 if alias2 != alias else None))
        if text:
            alias_texts.append(text)
    base = _slots(inputs, None, None)
    object_texts = [t for t in (_render(p, base) for p in object_pats) if t]

    n_first = 2 if aliases else len(object_texts)
    ordered = object_texts[:n_first] + alias_texts + object_texts[n_first:]
    clipped = [clip(t, max_chars) for t in ordered]
    return select_distinct(clipped, k=k, max_chars=max_chars, names=inputs.names())


class TemplateEnricher(Enricher):
    """Offline, deterministic descriptions from metadata (the default backend)."""

    name = "template"
    model = f"template-v{PROMPT_VERSION}"

    def __init__(self, max_chars: int = 300) -> None:
        super().__init__()
        self.max_chars = max_chars

    def describe(self, inputs: FigureInputs, k: int) -> list[str]:
        self._count_call()
        return template_descriptions(inputs, k, self.max_chars)
