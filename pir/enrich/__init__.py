"""Figure enrichment: K diverse, alias-rich descriptions per patent figure (template, OpenAI-compatible or llama.cpp).

Typical use::

    from pir.enrich import enrich_figures, get_descriptions
    summary = enrich_figures(figures, settings)          # fills the cache under settings.cache_dir
    texts = get_descriptions(figure, settings)           # latest cached (any backend), or generated and cached

The package face is lazy: ``import pir.enrich.aliases`` (the search path's alias table) does not load the LLM HTTP
client; a name below is imported from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "class_aliases": "pir.enrich.aliases",
    "load_lexicon": "pir.enrich.aliases",
    "BACKENDS": "pir.enrich.backends",
    "LlamaCppEnricher": "pir.enrich.backends",
    "OpenAIEnricher": "pir.enrich.backends",
    "backend_identity": "pir.enrich.backends",
    "clear_shared_enrichers": "pir.enrich.backends",
    "make_enricher": "pir.enrich.backends",
    "shared_enricher": "pir.enrich.backends",
    "PROMPT_VERSION": "pir.enrich.base",
    "Enricher": "pir.enrich.base",
    "EnrichError": "pir.enrich.base",
    "Generation": "pir.enrich.base",
    "ClassTitle": "pir.enrich.classes",
    "class_titles": "pir.enrich.classes",
    "FigureInputs": "pir.enrich.inputs",
    "figure_inputs": "pir.enrich.inputs",
    "EnrichSummary": "pir.enrich.pipeline",
    "cached_descriptions": "pir.enrich.pipeline",
    "enrich_figures": "pir.enrich.pipeline",
    "enrich_path": "pir.enrich.pipeline",
    "figure_descriptions": "pir.enrich.pipeline",
    "get_descriptions": "pir.enrich.pipeline",
    "latest_descriptions": "pir.enrich.pipeline",
    "make_captioner": "pir.enrich.pipeline",
    "TemplateEnricher": "pir.enrich.template",
    "template_descriptions": "pir.enrich.template",
}

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pir.enrich' has no attribute {name!r}")
