"""Figure enrichment: K diverse, alias-rich descriptions per patent figure (template, OpenAI-compatible or llama.cpp).

Typical use::

    from pir.enrich import enrich_figures, get_descriptions
    summary = enrich_figures(figures, settings)          # fills the cache under settings.cache_dir
    texts = get_descriptions(figure, settings)           # latest cached (any backend), or generated and cached
"""

from __future__ import annotations

from pir.enrich.aliases import class_aliases, load_lexicon
from pir.enrich.backends import (
    BACKENDS,
    LlamaCppEnricher,
    OpenAIEnricher,
    backend_identity,
    clear_shared_enrichers,
    make_enricher,
    shared_enricher,
)
from pir.enrich.base import PROMPT_VERSION, Enricher, EnrichError, Generation
from pir.enrich.classes import ClassTitle, class_titles
from pir.enrich.inputs import FigureInputs, figure_inputs
from pir.enrich.pipeline import (
    EnrichSummary,
    cached_descriptions,
    enrich_figures,
    enrich_path,
    figure_descriptions,
    get_descriptions,
    latest_descriptions,
    make_captioner,
)
from pir.enrich.template import TemplateEnricher, template_descriptions

__all__ = [
    "BACKENDS",
    "PROMPT_VERSION",
    "ClassTitle",
    "EnrichError",
    "EnrichSummary",
    "Enricher",
    "FigureInputs",
    "Generation",
    "LlamaCppEnricher",
    "OpenAIEnricher",
    "TemplateEnricher",
    "backend_identity",
    "cached_descriptions",
    "class_aliases",
    "class_titles",
    "clear_shared_enrichers",
    "enrich_figures",
    "enrich_path",
    "figure_descriptions",
    "figure_inputs",
    "get_descriptions",
    "latest_descriptions",
    "load_lexicon",
    "make_captioner",
    "make_enricher",
    "shared_enricher",
    "template_descriptions",
]
