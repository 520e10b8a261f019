"""The enrichment cache key covers every input that changes an LLM's output, temperature and seed included."""

from __future__ import annotations

from pir.enrich.cache import cache_key
from pir.enrich.inputs import FigureInputs


def _inputs() -> FigureInputs:
    return FigureInputs(key="US1/D1", object_name="lamp", title="Desk lamp")


def test_cache_key_depends_on_temperature_and_seed() -> None:
    base = dict(backend="openai", model="qwen2.5-7b", k=10, max_chars=300, lexicon="x")
    a = cache_key(_inputs(), **base, temperature=0.7, seed=0)
    assert a == cache_key(_inputs(), **base, temperature=0.7, seed=0)
    assert a != cache_key(_inputs(), **base, temperature=0.0, seed=0)
    assert a != cache_key(_inputs(), **base, temperature=0.7, seed=1)
    # backends without sampling (the deterministic template) keep their key: existing caches stay valid
    assert cache_key(_inputs(), **base) == cache_key(_inputs(), **base, temperature=None, seed=None)
