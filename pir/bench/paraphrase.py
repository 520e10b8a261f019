"""Query words as an examiner might type them: the title with its object (head noun phrase) said another way.

:func:`paraphrase_title` replaces the object a design title names (``"Garment with a side pocket"`` -> object
``garment``) by its first alias from pir's own lexicon (curated aliases, WordNet synonyms and the broader term, see
:class:`pir.enrich.aliases.AliasLexicon`) that the title does not already contain: ``"Clothing with a side
pocket"``. When the whole phrase has no such alias, its head noun (last word) is tried on its own. Deterministic
(the lexicon's order; no randomness). None when no alias differs from the title's own words: the bench then keeps
the title and counts the query (``n_queries_not_paraphrased``).
"""

from __future__ import annotations

import re
from typing import Any

from pir.enrich.aliases import load_lexicon, normalize_name
from pir.enrich.inputs import object_from_title

#: Aliases looked at per phrase (best first).
MAX_CANDIDATES = 8


def _replace_once(text: str, phrase: str, by: str) -> str | None:
    """``text`` with the first whole-word, case-insensitive occurrence of ``phrase`` replaced by ``by``."""
    pattern = r"\b" + r"[\s_-]+".join(re.escape(w) for w in phrase.split()) + r"\b"
    m = re.search(pattern, text, flags=re.IGNORECASE)
    if m is None:
        return None
    if m.group(0)[:1].isupper():
        by = by[:1].upper() + by[1:]
    return text[: m.start()] + by + text[m.end() :]


def paraphrase_title(title: str | None, lexicon: Any | None = None) -> str | None:
    """The title with its object replaced by a synonym or broader term, or None when none is found.

    Args:
        title: A design title (``"Lamp shade"``).
        lexicon: An :class:`~pir.enrich.aliases.AliasLexicon` (default: :func:`~pir.enrich.aliases.load_lexicon`).

    Returns:
        A paraphrase that differs from the title, or None.
    """
    if not title or not title.strip():
        return None
    lex = lexicon if lexicon is not None else load_lexicon()
    norm_title = f" {normalize_name(title)} "
    phrase = object_from_title(title)
    words = phrase.split()
    targets = [phrase] + ([words[-1]] if len(words) > 1 else [])
    for target in targets:
        for alias in lex.aliases(target, MAX_CANDIDATES):
            norm = normalize_name(alias)
            if not norm or f" {norm} " in norm_title:
                continue  # a head phrase of the title itself ("garment top" of "women's garment top") is no paraphrase
            out = _replace_once(title.strip(), target, alias)
            if out is not None and normalize_name(out) != normalize_name(title):
                return out
    return None
