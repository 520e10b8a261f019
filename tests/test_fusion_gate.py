"""Issue 15: the fused query keeps a drawing that stands out on top, and a figure's own words lead its text vector.

Both checked against naive numpy references on real stores (Qdrant Edge and qdrant-client local mode)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from pir.search.edge import EdgeStore
from pir.search.query import GATE_GAIN, GATE_Z, HybridQuery
from pir.search.server import ServerStore
from pir.search.words import ADDED_WEIGHT, FigureWords, figure_word_parts, normalize, text_vectors

DIM, TEXT_DIM, N = 16, 8, 120


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _corpus() -> dict[str, Any]:
    """N figures; the query drawing's near-duplicate (``dup``) has related words, the best words match
    (``best_text``) an ordinary drawing."""
    rng = np.random.default_rng(7)
    img, txt = _unit(rng, N, DIM), _unit(rng, N, TEXT_DIM)
    q_img, q_txt = _unit(rng, 1, DIM)[0], _unit(rng, 1, TEXT_DIM)[0]
    dup, best_text = 5, 9
    img[dup] = normalize(q_img + 0.05 * rng.normal(size=DIM).astype(np.float32))
    txt[best_text] = normalize(q_txt + 0.2 * rng.normal(size=TEXT_DIM).astype(np.float32))
    # the near-duplicate's words are related, less than the best text match's
    txt[dup] = normalize(q_txt + 0.3 * np.random.default_rng(11).normal(size=TEXT_DIM).astype(np.float32))
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"fig{i}")) for i in range(N)]
    return {"img": img, "txt": txt, "q_img": q_img, "q_txt": q_txt, "ids": ids, "dup": dup, "best_text": best_text}


def _fill(store: Any, c: dict[str, Any]) -> Any:
    store.ensure_collection(DIM, text_dim=TEXT_DIM)
    store.upsert(c["ids"], c["img"], [{"patent_id": f"P{i}", "figure_id": "1"} for i in range(N)], text=c["txt"])
    return store


@pytest.fixture(params=["edge", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    c = _corpus()
    if request.param == "edge":
        st: Any = EdgeStore(tmp_path / "edge", "gate")
    else:
        st = ServerStore(QdrantClient(location=":memory:"), "gate", owns_client=True)
    yield _fill(st, c), c
    st.close()


def _naive(c: dict[str, Any], w: float, gain: float) -> np.ndarray:
    """The zscore fusion of the image and text legs by hand: each leg standardised over all its candidates (the
    pool holds the whole collection here), image side ``(1 - w) * (z + gain * max(z - GATE_Z, 0))``."""
    si, st = c["img"] @ c["q_img"], c["txt"] @ c["q_txt"]
    zi, zt = (si - si.mean()) / si.std(), (st - st.mean()) / st.std()
    return (1 - w) * (zi + gain * np.maximum(zi - GATE_Z, 0.0)) + w * zt


def test_a_near_duplicate_drawing_keeps_its_lead_over_the_words(store: Any) -> None:
    st, c = store
    w = 0.9
    hits = st.hybrid_search(HybridQuery(image=c["q_img"], text=c["q_txt"], text_weight=w, prefetch=N), k=10)
    got = [c["ids"].index(h.id) for h in hits]
    want = np.argsort(-_naive(c, w, GATE_GAIN), kind="stable")[:10].tolist()
    plain = np.argsort(-_naive(c, w, 0.0), kind="stable")[:10].tolist()
    assert got == want, (got, want)
    assert np.allclose([h.score for h in hits], np.sort(_naive(c, w, GATE_GAIN))[::-1][:10], atol=1e-3)
    assert got[0] == c["dup"]  # the drawing that stands out is first ...
    assert plain[0] == c["best_text"] and plain.index(c["dup"]) > 0  # ... where plain z-score fusion put it below


def test_words_alone_and_the_image_alone_have_no_gate(store: Any) -> None:
    st, c = store
    by_words = st.hybrid_search(HybridQuery(text=c["q_txt"]), k=3)
    assert c["ids"].index(by_words[0].id) == c["best_text"]
    assert HybridQuery(image=c["q_img"], text=c["q_txt"], text_weight=1.0).legs()[0].gate == 0.0
    legs = HybridQuery(image=c["q_img"], text=c["q_txt"], text_weight=0.9).legs()
    assert [leg.gate for leg in legs] == [pytest.approx(0.1 * GATE_GAIN), 0.0]


class _Enc:
    """A deterministic text encoder: each text hashed to a fixed random unit vector (the weighting is what's tested)."""

    name = "hash"

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        return np.stack([_unit(np.random.default_rng(abs(hash(t)) % 2**32), 1, 32)[0] for t in texts])


def test_own_words_lead_the_text_vector_naive_reference() -> None:
    enc = _Enc()
    fw = FigureWords(["Desk lamp", "A front view of the desk lamp."], ["lamp, light", "a piece of furniture"])
    (got,) = text_vectors([fw], enc)  # type: ignore[arg-type]  # a stand-in encoder with the same encode()
    e = {t: enc.encode([t])[0] for t in fw.pieces}
    own = (e[fw.own[0]] + e[fw.own[1]]) / 2
    added = (e[fw.added[0]] + e[fw.added[1]]) / 2
    want = (own + ADDED_WEIGHT * added) / np.linalg.norm(own + ADDED_WEIGHT * added)
    assert np.allclose(got, want, atol=1e-6)
    assert float(got @ normalize(own)) > float(got @ normalize(added))  # closer to what the patent says
    (plain,) = text_vectors([fw.pieces], enc)  # type: ignore[arg-type]  # a plain list: all own, the plain mean
    assert np.allclose(plain, normalize(sum(e.values())), atol=1e-6)


def test_figure_word_parts_keep_enrichment_apart_and_no_template_sentence() -> None:
    payload = {
        "title": "Desk lamp",
        "description": "A front view of the desk lamp.",
        "aliases": ["lamp", "light"],
        "about": ["a piece of furniture holding electric light bulbs"],
        "descriptions": ["Line drawing of a desk lamp from a US design patent."],
        "class_label": "D26",
    }
    fw = figure_word_parts(payload, include_class=False)
    assert fw.own == ["Desk lamp", "A front view of the desk lamp."]
    assert fw.added == ["lamp, light", "a piece of furniture holding electric light bulbs"]
    assert not any("design patent" in p for p in fw.pieces)  # boilerplate never in a search vector
    assert "D26" in figure_word_parts(payload).own
