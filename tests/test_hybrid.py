"""Hybrid search: image + words fused inside Qdrant on both backends, words with a zero-shot encoder, aliases,
filters in every prefetch, and ``pir reindex`` of an old single-vector collection with nothing lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pir.core.config import Settings, get_settings
from pir.encoder.model import ImageEncoder, load_encoder
from pir.encoder.text import TextEmbeddingCache, TextEncoder, load_text_encoder, text_cache_path
from pir.pipeline import ensure_collection, ingest
from pir.search import HybridQuery, LegacyLayoutError, SearchFilter, VectorStore, open_store
from pir.search.edge import EdgeStore, hybrid_request
from pir.search.migrate import copy_points, reindex
from pir.search.query import IMAGE, LEGACY, NAMED, Ask
from pir.search.request import DEFAULT_TEXT_WEIGHT
from pir.search.service import search_hybrid, search_like, search_recommend, search_text, text_query
from pir.search.store import PAYLOAD_INDEXES
from pir.search.words import figure_words, query_words, words_query_vector, words_vector
from pir.synth import synthesize_corpus
from tests.helpers import make_tiny_encoder


@pytest.fixture(scope="module")
def te() -> TextEncoder:
    return load_text_encoder("minilm")


@pytest.fixture(scope="module")
def enc(tmp_path_factory: pytest.TempPathFactory) -> ImageEncoder:
    return load_encoder(make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny"))  # zero-shot: not text-aligned


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    synthesize_corpus(out, patents=8, seed=5, image_size=64)
    return out


def _settings(root: Path, url: str | None) -> Settings:
    return get_settings(data_dir=root, qdrant={"url": url}, worker={"broker_url": None}, enrich={"k": 3})


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, corpus: Path, enc: ImageEncoder, te: TextEncoder
) -> Iterator[dict[str, Any]]:
    """The synthetic corpus ingested into Qdrant Edge, and copied point for point into qdrant-client ':memory:'."""
    root = tmp_path_factory.mktemp("stores")
    edge_settings = _settings(root / "edge", None)
    out: dict[str, Any] = {"settings": edge_settings, "edge": open_store(edge_settings)}
    summary = ingest(corpus, edge_settings, encoder=enc, store=out["edge"], text_encoder=te, show_progress=False)
    assert summary.n_failed == 0 and summary.store_count == summary.discovered
    out["server"] = open_store(_settings(root / "mem", ":memory:"))
    ensure_collection(out["server"], enc, te)
    assert copy_points(out["edge"], out["server"]) == summary.discovered  # stored text and words as they are
    yield out
    out["edge"].close()
    out["server"].close()


def _points(store: VectorStore) -> dict[str, Any]:
    return {p.id: p for p in store.scroll(with_vectors=True)}


def test_ingest_writes_image_text_and_words(stores: dict[str, Any], te: TextEncoder) -> None:
    for kind in ("edge", "server"):
        st = stores[kind]
        assert st.layout() == NAMED and st.text_dim() == te.dim and st.text_encoder() == te.name
        pts = list(_points(st).values())
        assert all(p.text is not None and p.words is not None for p in pts), kind
        np.testing.assert_allclose([np.linalg.norm(p.text) for p in pts], 1.0, atol=1e-5)
        assert pts[0].words == words_vector(figure_words(pts[0].payload))  # exactly the figure's own words


def _same_ranking(a: list[Any], b: list[Any], tol: float = 1e-4) -> bool:
    """Same ids in the same order, except that points with tied scores (figures with the same words) may come in
    either order: where the ids differ, the score must tie a neighbour's in both lists."""
    if len(a) != len(b):
        return False
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.id == y.id:
            continue
        tied = [abs(h[i].score - h[j].score) <= tol for h in (a, b) for j in (i - 1, i + 1) if 0 <= j < len(h)]
        if not any(tied) or abs(x.score - y.score) > tol:
            return False
    return {h.id for h in a[:-1]} <= {h.id for h in b} and {h.id for h in b[:-1]} <= {h.id for h in a}


def test_backends_are_congruent_for_hybrid_queries(stores: dict[str, Any], te: TextEncoder) -> None:
    edge, server = stores["edge"], stores["server"]
    tq = text_query("lamp with a curved arm", te)
    probe = sorted(_points(edge).values(), key=lambda p: p.id)[:3]
    cases = [
        ("rrf", 0.3, None),
        ("rrf", 0.7, ["lamp", "chair"]),
        ("weighted", 0.3, ["lamp", "bottle"]),
        ("weighted", 0.7, None),
        ("zscore", DEFAULT_TEXT_WEIGHT, None),
        ("zscore", 0.5, ["lamp", "chair"]),
    ]
    for p in probe:
        for fusion, w, classes in cases:
            q = HybridQuery(image=p.vector, text=tq.text, words=tq.words, fusion=fusion, text_weight=w)
            flt = SearchFilter(classes=classes)
            a, b = edge.hybrid_search(q, 8, filter=flt), server.hybrid_search(q, 8, filter=flt)
            if fusion == "rrf":  # ranks of points tied in a leg (same words) may differ: near-equal, not equal
                assert len(a) == 8 and len({h.id for h in a} & {h.id for h in b}) >= 7, (fusion, w, classes)
                np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=0.02)
                continue
            assert len(a) == 8 and _same_ranking(a, b), (fusion, w, classes)
            # Fused scores may differ in the 3rd decimal: where a prefetch's candidate list ends on float ties, the two
            # engines may keep a different tied point, and a point missing from one leg scores 0 there.
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-2, atol=5e-3)
    resp = search_hybrid(edge, image_vector=probe[0].vector, text="lamp", text_encoder=te, k=8)
    assert resp.query["mode"] == "image+text" and len(resp.results) == 8


def test_relevance_feedback_with_words_on_a_real_corpus(stores: dict[str, Any], te: TextEncoder) -> None:
    """Feedback plus typed words: recommend on ``image`` fused with the words' ``text`` + ``words`` legs."""
    pts = _points(stores["edge"]).values()
    lamp = next(p.id for p in pts if p.payload["class_label"] == "lamp")
    chair = next(p.id for p in pts if p.payload["class_label"] == "chair")
    got = {}
    for kind in ("edge", "server"):
        resp = search_recommend(stores[kind], [lamp], [chair], text="lamp", text_encoder=te, k=5)
        assert (
            resp.query["mode"] == "recommend"
            and resp.query["text_weight"] == DEFAULT_TEXT_WEIGHT
            and resp.query["aliases"]
        )
        assert {lamp, chair}.isdisjoint(r.id for r in resp.results)
        assert [r.class_label for r in resp.results[:3]] == ["lamp"] * 3, kind
        got[kind] = [r.id for r in resp.results]
    assert got["edge"] == got["server"]


def test_image_only_is_todays_knn(stores: dict[str, Any]) -> None:
    for kind in ("edge", "server"):
        st = stores[kind]
        q = next(iter(_points(st).values())).vector
        want = st.search(q, 5)
        got = search_hybrid(st, image_vector=q, k=5)
        assert got.query["mode"] == "image"
        assert [r.id for r in got.results] == [h.id for h in want]
        np.testing.assert_allclose([r.score for r in got.results], [h.score for h in want], atol=1e-5)


def test_words_alone_find_the_object_with_a_zero_shot_encoder(stores: dict[str, Any], te: TextEncoder) -> None:
    settings = stores["settings"]
    for kind in ("edge", "server"):
        for words in ("lamp with a curved arm", "luminaire"):
            resp = search_text(words, settings, store=stores[kind], text_encoder=te, k=3)
            assert resp.query["mode"] == "text"
            assert [r.class_label for r in resp.results] == ["lamp"] * 3, (kind, words)


def test_alias_expansion_reaches_the_query(te: TextEncoder) -> None:
    expanded, aliases = query_words("lamp with a curved arm")
    assert "luminaire" in aliases and "lighting fixture" in aliases
    assert "projection" not in aliases  # "arm" is a body part first: not expanded
    st = open_store(_settings(Path("/nonexistent"), ":memory:"), collection="aliases")
    try:
        st.ensure_collection(4, text_dim=te.dim)
        ids = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(3)]
        docs = ["Luminaire with a round shade", "Beverage bottle", "Office chair"]
        st.upsert(
            ids,
            np.eye(4, dtype=np.float32)[:3],
            [{"title": d} for d in docs],
            words=[words_vector([d]) for d in docs],
        )
        plain = st.hybrid_search(HybridQuery(words=words_query_vector("lamp")), 3)
        assert plain == []  # "lamp" alone matches no stored word
        hits = st.hybrid_search(HybridQuery(words=words_query_vector(expanded)), 3)
        assert [h.payload["title"] for h in hits] == [docs[0]]
        resp = search_hybrid(st, text="lamp", text_encoder=te, text_weight=1.0, k=3)
        assert "luminaire" in resp.query["aliases"] and resp.results[0].title == docs[0]
    finally:
        st.close()


def test_filters_apply_in_every_prefetch(stores: dict[str, Any], te: TextEncoder) -> None:
    flt = SearchFilter(classes=["bottle"])
    q = next(p for p in _points(stores["edge"]).values() if p.payload["class_label"] == "lamp").vector
    # the request itself: the filter is on each prefetch
    tq_words = words_query_vector("lamp")
    legs = HybridQuery(image=q, text=np.ones(te.dim, np.float32), words=tq_words).legs()
    req = hybrid_request(legs, HybridQuery(), Ask(5, flt, prefetch=3), 64)
    assert len(req.prefetches) == 3 and all(p.filter is not None for p in req.prefetches)
    # and its effect: with 3 candidates per prefetch, lamp-like candidates would leave nothing after the filter
    for kind in ("edge", "server"):
        st = stores[kind]
        n_bottle = st.count(flt)
        for fusion in ("rrf", "weighted"):
            resp = search_hybrid(
                st, image_vector=q, text="lamp", text_encoder=te, fusion=fusion, k=5, filter=flt, prefetch=3
            )
            assert resp.results and all(r.class_label == "bottle" for r in resp.results), (kind, fusion)
            assert len(resp.results) >= min(3, n_bottle)


def test_like_uses_the_figures_stored_vectors_and_words(stores: dict[str, Any]) -> None:
    for kind in ("edge", "server"):
        st = stores[kind]
        p = next(p for p in _points(st).values() if p.payload["class_label"] == "lamp")
        key = f"{p.payload['patent_id']}/{p.payload['figure_id']}"
        resp = search_like(key, st, k=4)
        assert resp.query["mode"] == "image+text" and p.id not in {r.id for r in resp.results}
        assert resp.results[0].class_label == "lamp"


def test_class_words_stay_out_when_asked() -> None:
    payload = {
        "title": "Desk lamp",
        "class_label": "D26",
        "classes": ["D26", "D26-24"],
        "description": "A front view of the desk lamp.",
        "descriptions": ["Line drawing of a desk lamp from a US design patent."],
        "aliases": ["lamp", "light"],
    }
    with_class = figure_words(payload)
    without = figure_words(payload, include_class=False)
    assert any("D26" in w for w in with_class) and any("lighting" in w.lower() for w in with_class)
    assert without == ["Desk lamp", "A front view of the desk lamp.", "lamp, light"]  # no template sentence


# ------------------------------------------------------------------------------------------------------- migration
def _legacy_edge(path: Path, name: str, dim: int, points: list[Any]) -> None:
    """An Edge collection exactly as pir wrote it before named vectors: one unnamed cosine vector."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeShard,
        EdgeVectorParams,
        HnswIndexConfig,
        PayloadSchemaType,
        Point,
        UpdateOperation,
    )

    path.mkdir(parents=True)
    sh = EdgeShard.create(
        str(path / "shard"),
        EdgeConfig(
            vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
            hnsw_config=HnswIndexConfig(m=16, ef_construct=128, full_scan_threshold=10_000),
        ),
    )
    kinds = {"keyword": PayloadSchemaType.Keyword, "integer": PayloadSchemaType.Integer}
    for field, kind in PAYLOAD_INDEXES.items():
        if kind in kinds:  # the indexes of those days (the datetime one came later; opening the store adds it)
            sh.update(UpdateOperation.create_field_index(field, kinds[kind]))
    sh.update(UpdateOperation.upsert_points([Point(p.id, p.vector, p.payload) for p in points]))
    sh.flush()
    sh.close()
    meta = {"collection": name, "dim": dim, "distance": "Cosine", "encoder": "tiny-test@x"}
    (path / "pir_collection.json").write_text(json.dumps(meta))


def _legacy_server(store: Any, dim: int, points: list[Any]) -> None:
    from qdrant_client import models as qm

    store.client.create_collection(
        store.collection,
        vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
        metadata={"encoder": "tiny-test@x", "dim": dim, "created_by": "pir"},
    )
    store.client.upsert(
        store.collection,
        points=qm.Batch(
            ids=[p.id for p in points],
            vectors=[p.vector.tolist() for p in points],
            payloads=[p.payload for p in points],
        ),
        wait=True,
    )


def _assert_nothing_lost(before: dict[str, Any], st: VectorStore, atol: float = 0.0) -> None:
    after = _points(st)
    assert st.layout() == NAMED and set(after) == set(before) and st.count() == len(before)
    for i, p in before.items():
        np.testing.assert_allclose(after[i].vector, p.vector, rtol=0, atol=atol)
        assert after[i].payload == p.payload
        assert after[i].text is not None and after[i].words is not None


def _check_legacy_message(st: VectorStore, dim: int) -> None:
    assert st.layout() == LEGACY
    with pytest.raises(LegacyLayoutError, match="pir reindex") as err:
        st.ensure_collection(dim)
    assert "\n" not in str(err.value)
    assert st.search(next(iter(_points(st).values())).vector, 3)  # image search still works meanwhile


def test_reindex_edge_loses_nothing(stores: dict[str, Any], tmp_path: Path, te: TextEncoder) -> None:
    src = _points(stores["server"])
    pts = [type(p)(id=p.id, payload=p.payload, vector=p.vector) for p in src.values()]
    s = _settings(tmp_path, None)
    dim = len(pts[0].vector)
    _legacy_edge(s.store_dir / s.qdrant.collection, s.qdrant.collection, dim, pts)
    with open_store(s) as st:
        _check_legacy_message(st, dim)
        before = _points(st)
    (s.store_dir / f".{s.qdrant.collection}.reindex").mkdir()  # debris of an interrupted run is redone
    with TextEmbeddingCache(text_cache_path(stores["settings"])) as cache:  # the ingest's cache: texts repeat
        summary = reindex(s, text_encoder=te, text_cache=cache)
    assert summary.points == len(pts) and summary.text_vectors == len(pts) and not summary.already
    assert not (s.store_dir / f".{s.qdrant.collection}.reindex").exists()
    with open_store(s) as st:
        _assert_nothing_lost(before, st)
        assert isinstance(st, EdgeStore) and st.encoder() == "tiny-test@x"
        resp = search_text("lamp", s, store=st, text_encoder=te, k=1)
        assert resp.results[0].class_label == "lamp"
    assert reindex(s, text_encoder=te).already


def test_reindex_server_loses_nothing(stores: dict[str, Any], tmp_path: Path, te: TextEncoder) -> None:
    pts = [type(p)(id=p.id, payload=p.payload, vector=p.vector) for p in _points(stores["edge"]).values()]
    s = _settings(tmp_path, ":memory:")
    with open_store(s) as st:
        dim = len(pts[0].vector)
        _legacy_server(st, dim, pts)
        _check_legacy_message(st, dim)
        before = _points(st)
        with TextEmbeddingCache(text_cache_path(stores["settings"])) as cache:
            summary = reindex(s, store=st, text_encoder=te, text_cache=cache)
        assert summary.points == len(pts) and summary.backend == "server"
        assert not st.client.collection_exists(st.collection + "__reindex")
        # qdrant-client re-normalises cosine vectors on insert: equal up to float32 rounding (1 ulp)
        _assert_nothing_lost(before, st, atol=1e-7)
        assert st.encoder() == "tiny-test@x" and st._image_using() == IMAGE
