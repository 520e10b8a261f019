"""The ``make demo`` store answers as a searcher expects: words find armchairs, words keep the drawing's armchair on
top, and no template sentence reaches a search vector (issue 15).

The store is built the way ``make demo`` builds it: ``pir synth DIR --patents 60 --seed 0``, ingested with the
default settings (zero-shot encoder, template enrichment at the default level); the query drawings are the first two
views of ``pir synth Q --patents 2 --seed 99``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pir.core.config import get_settings
from pir.encoder.model import ImageEncoder, load_encoder
from pir.encoder.text import TextEncoder, load_text_encoder
from pir.enrich.template import OBJECT_PATTERNS
from pir.pipeline import ingest
from pir.search import VectorStore, open_store
from pir.search.service import search_hybrid
from pir.search.words import figure_words, words_vector
from pir.synth import synthesize_corpus
from tests.helpers import make_tiny_encoder

ARMCHAIR = "Armchair"


def _build(root: Path, encoder: ImageEncoder | None) -> dict[str, Any]:
    synthesize_corpus(root / "corpus", patents=60, seed=0)
    synthesize_corpus(root / "query", patents=2, seed=99)
    settings = get_settings(data_dir=root / "store", qdrant={"url": None}, worker={"broker_url": None})
    enc = encoder or load_encoder(settings.encoder.name, device="cpu", image_size=settings.image_size)
    te: TextEncoder = load_text_encoder(settings.text.model)
    store: VectorStore = open_store(settings)
    summary = ingest(root / "corpus", settings, encoder=enc, store=store, text_encoder=te, show_progress=False)
    assert summary.n_failed == 0
    views = sorted((root / "query" / "images").glob("SYN0000001_FIG*.png"))[:2]
    return {"settings": settings, "encoder": enc, "te": te, "store": store, "views": views}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo corpus and words (a tiny image encoder: the words tests do not depend on it)."""
    root = tmp_path_factory.mktemp("demo")
    out = _build(root, load_encoder(make_tiny_encoder(root / "tiny")))
    yield out
    out["store"].close()


@pytest.fixture(scope="module")
def demo_real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The ``make demo`` store exactly: the default (zero-shot) image encoder."""
    out = _build(tmp_path_factory.mktemp("demo-real"), None)
    yield out
    out["store"].close()


def _search(demo: dict[str, Any], **kw: Any) -> list[Any]:
    return search_hybrid(
        demo["store"], demo["settings"], encoder=demo["encoder"], text_encoder=demo["te"], **kw
    ).results


def test_words_alone_find_armchairs(demo: dict[str, Any]) -> None:
    top = _search(demo, text="chair with arms", k=5)
    assert [r.title for r in top].count(ARMCHAIR) >= 3, [r.title for r in top]
    assert top[0].title == ARMCHAIR


@pytest.mark.slow  # ingests the 268 demo figures with the real image encoder
def test_words_keep_the_drawings_armchair_on_top(demo_real: dict[str, Any]) -> None:
    demo = demo_real
    alone = _search(demo, images=demo["views"], k=20)
    armchair = next(r for r in alone if r.title == ARMCHAIR)  # the armchair the drawings alone rank best
    assert armchair.rank <= 5, [(r.rank, r.title) for r in alone]
    fused = _search(demo, images=demo["views"], text="chair with arms", k=3)  # default text weight and fusion
    assert armchair.id in [r.id for r in fused], [(r.rank, r.title, r.figure_id) for r in fused]


def test_no_template_sentence_in_a_search_vector(demo: dict[str, Any]) -> None:
    """Every stored text/words vector is built from the figure's search words, and none of those is a template
    sentence of the enrichment (the descriptions are in the payload, for training, and nowhere else)."""
    fixed = [fmt.split("{")[0].strip() for _, fmt in OBJECT_PATTERNS if not fmt.startswith("{")]
    fixed = [f for f in fixed if len(f) > 8]  # "Line drawing of", "Monochrome patent illustration of", ...
    points = list(demo["store"].scroll(with_vectors=True))
    assert points and all(p.payload.get("descriptions") for p in points)  # enrichment ran (training targets)
    for p in points:
        words = figure_words(p.payload)
        assert not set(words) & set(p.payload["descriptions"]) - {p.payload.get("description")}
        assert not any(w.startswith(f) for w in words for f in fixed), words
        assert p.words == words_vector(words)
    assert any(p.payload.get("aliases") for p in points) and any(p.payload.get("about") for p in points)


def test_why_it_matched_quotes_the_matched_search_words(demo: dict[str, Any]) -> None:
    from pir.search.words import matched_words

    hits = _search(demo, text="chair with arms", k=5)
    for r in hits:
        why = matched_words("chair with arms", r.words)
        assert why and set(why) <= set(r.words), (why, r.words)
        assert not set(why) & set(r.descriptions)  # a template sentence is never quoted
    top = matched_words("chair with arms", hits[0].words)
    assert any("arms" in w for w in top), top  # the gloss "chair with a support on each side for arms"
