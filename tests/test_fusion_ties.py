"""zscore fusion on two builds of one corpus: ties at a leg's prefetch cut-off do not change the hits."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from pir.search.edge import EdgeStore
from pir.search.query import HybridQuery
from pir.search.words import words_query_vector, words_vector

N, DIM, TEXT_DIM = 120, 16, 8


def _build(path: Path, order: list[int], img: np.ndarray, txt: np.ndarray, words: list[list[str]]) -> EdgeStore:
    store = EdgeStore(path, "figs")
    store.ensure_collection(DIM, text_dim=TEXT_DIM)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"fig{i}")) for i in order]
    store.upsert(
        ids,
        img[order],
        [{"patent_id": f"P{i:03d}", "figure_id": "FIG1"} for i in order],
        text=txt[order],
        words=[words_vector(words[i]) for i in order],
    )
    return store


def test_zscore_fusion_keeps_a_whole_tie_at_the_cut_off(tmp_path: Path) -> None:
    """100 figures share the words "chair" (one BM25 score, a tie across the words leg's prefetch of 50); the same
    drawing + words query on a store built in the opposite order gives the same hits and scores."""
    rng = np.random.default_rng(7)
    img = rng.normal(size=(N, DIM)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt = rng.normal(size=(N, TEXT_DIM)).astype(np.float32)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    words = [["chair"] if i < 100 else ["lamp shade"] for i in range(N)]
    order = list(range(N))
    q = HybridQuery(image=img[3] + 0.5 * img[110], words=words_query_vector("chair"), fusion="zscore", text_weight=0.5)
    with _build(tmp_path / "a", order, img, txt, words) as a, _build(tmp_path / "b", order[::-1], img, txt, words) as b:
        plain = a.hybrid_search(HybridQuery(words=words_query_vector("chair")), k=60)
        assert len({round(h.score, 6) for h in plain}) == 1  # the tie the test is about: 60 equal BM25 scores
        got_a, got_b = a.hybrid_search(q, k=10), b.hybrid_search(q, k=10)
    assert [h.id for h in got_a] == [h.id for h in got_b]
    assert np.allclose([h.score for h in got_a], [h.score for h in got_b])
