"""What enrichment adds to a figure's SEARCH words, by ``settings.enrich.level`` (never phrasing, never boilerplate).

- ``none``: nothing; the figure is searched by the patent's own words (title, figure text, caption, object name).
- ``aliases``: the object's other names as short phrases (WordNet synonyms and the broader term, curated table):
  ``"armchair"`` -> ``["chair", "seat"]``.
- ``full``: also what the object is and is for, in a few words (WordNet's gloss of the object's ``noun.artifact``
  sense): ``"lamp"`` -> ``["a piece of furniture holding one or more electric light bulbs"]``.

The backends' descriptions (templates, LLM output) stay in the payload for training targets and for showing; they
are not search words (``tests/test_fusion_gate.py`` and ``tests/test_demo_search.py`` check that no template
sentence reaches a search vector).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pir.ingest.schema import PatentFigure

#: Enrichment levels, from least to most added.
LEVELS = ("none", "aliases", "full")
#: At most this many alias phrases per figure (best first).
MAX_ALIASES = 4


@dataclass(frozen=True)
class FigureKnowledge:
    """Search words enrichment adds to one figure: alias phrases and short statements of what it is (for)."""

    aliases: list[str] = field(default_factory=list)
    about: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, list[str]]:
        """The payload fields (``aliases``, ``about``), empty ones left out."""
        return {k: v for k, v in (("aliases", self.aliases), ("about", self.about)) if v}


def figure_knowledge(figure: PatentFigure, level: str, *, max_aliases: int = MAX_ALIASES) -> FigureKnowledge:
    """The aliases (level ``aliases`` and up) and the gloss (level ``full``) of the object a figure shows.

    The object is the figure's object name, else its title's head noun (:func:`pir.enrich.inputs.object_name_of`);
    class labels are never used here (a leak-free figure has none).
    """
    if level not in LEVELS:
        raise ValueError(f"unknown enrichment level {level!r}: use one of {', '.join(LEVELS)}")
    if level == "none":
        return FigureKnowledge()
    from pir.enrich.aliases import load_lexicon  # lazy: WordNet lexicon, loaded only when knowledge is asked for
    from pir.enrich.inputs import object_name_of  # lazy: only the knowledge path needs it

    obj = object_name_of(figure)
    if not obj or obj == "design":
        return FigureKnowledge()
    lex = load_lexicon()
    aliases = lex.aliases(obj, max_aliases)
    about = [g for g in [lex.gloss(obj)] if g] if level == "full" else []
    return FigureKnowledge(aliases, about)
