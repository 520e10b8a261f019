"""Relevance feedback (Qdrant's recommend query) on both backends, against a numpy oracle on a hand-built store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from pir.ingest.schema import point_id
from pir.search import SearchFilter, StoreError, VectorStore
from pir.search.edge import EdgeStore
from pir.search.server import ServerStore
from pir.search.service import search_hybrid, search_recommend

DIM, TEXT_DIM, N = 8, 4, 60
CLASSES = ["A", "B", "C"]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _data() -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Three classes around the first three axes (image) and the first three text axes, with noise."""
    rng = np.random.default_rng(7)
    cls = np.arange(N) % 3
    image = _unit(np.eye(DIM)[cls] + 0.3 * rng.standard_normal((N, DIM)))
    text = _unit(np.eye(TEXT_DIM)[cls] + 0.4 * rng.standard_normal((N, TEXT_DIM)))
    ids = [point_id(f"US{i // 2}", f"F{i % 2}") for i in range(N)]
    payloads = [
        {"patent_id": f"US{i // 2}", "figure_id": f"F{i % 2}", "class_label": CLASSES[c], "classes": [CLASSES[c]]}
        for i, c in enumerate(cls)
    ]
    return ids, image, text, payloads


IDS, X, T, PAYLOADS = _data()
LABEL = {i: p["class_label"] for i, p in zip(IDS, PAYLOADS, strict=True)}
Q = _unit(np.array([1.0, 1.0, 0.2, 0, 0, 0, 0, 0], np.float32))  # between class A and class B


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    out: dict[str, VectorStore] = {
        "edge": EdgeStore(tmp_path_factory.mktemp("reco") / "figs", "figs"),
        "server": ServerStore(QdrantClient(":memory:"), "figs", owns_client=True),
    }
    for st in out.values():
        st.ensure_collection(DIM, encoder="toy", text_dim=TEXT_DIM)
        st.upsert(IDS, X, PAYLOADS, text=T)
    yield out
    for st in out.values():
        st.close()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (x / (1.0 + np.abs(x)) + 1.0)  # Qdrant's scaled fast sigmoid


def oracle(
    pos: list[np.ndarray],
    neg: list[np.ndarray],
    strategy: str,
    k: int,
    *,
    space: np.ndarray = X,
    skip: frozenset[str] | set[str] = frozenset(),
) -> list[tuple[str, float]]:
    """Qdrant's recommend strategies over the cosine similarities, by brute force."""
    if strategy == "average_vector":
        avg = np.mean(pos, axis=0)
        q = avg + avg - np.mean(neg, axis=0) if neg else avg
        scores = space @ _unit(q)
    else:
        sp = np.stack([space @ p for p in pos]) if pos else np.full((1, N), -np.inf)
        sn = np.stack([space @ n for n in neg]) if neg else np.full((1, N), -np.inf)
        if strategy == "sum_scores":
            scores = sp.sum(0) - (sn.sum(0) if neg else 0.0)
        else:
            best_p, best_n = sp.max(0), sn.max(0)
            scores = np.where(best_p > best_n, _sigmoid(best_p), -_sigmoid(best_n))
    order = [i for i in np.argsort(-scores, kind="stable") if IDS[i] not in skip]
    return [(IDS[i], float(scores[i])) for i in order[:k]]


def _row(point: str) -> np.ndarray:
    return X[IDS.index(point)]


def _first(label: str) -> str:
    return next(i for i in IDS if LABEL[i] == label)


@pytest.mark.parametrize("kind", ["edge", "server"])
@pytest.mark.parametrize("strategy", ["average_vector", "best_score", "sum_scores"])
def test_recommend_matches_the_oracle(stores: dict[str, VectorStore], kind: str, strategy: str) -> None:
    a, b = _first("A"), _first("B")
    hits = stores[kind].recommend([a, Q], [b], 12, strategy=strategy)
    expected = oracle([_row(a), Q], [_row(b)], strategy, 12, skip={a, b})
    assert [h.id for h in hits] == [e[0] for e in expected]
    np.testing.assert_allclose([h.score for h in hits], [e[1] for e in expected], atol=1e-4)


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_a_negative_pushes_its_neighbours_down(stores: dict[str, VectorStore], kind: str) -> None:
    st = stores[kind]
    plain = [LABEL[h.id] for h in st.search(Q, k=20)]
    b = _first("B")
    resp = search_recommend(st, [], [b], query_vector=Q, k=20)
    fed = [r.class_label for r in resp.results]
    assert plain[:10].count("B") >= 3  # the query sits between A and B: B is well up before feedback
    assert fed[:10].count("B") < plain[:10].count("B") and fed[:10].count("A") > plain[:10].count("A")
    assert b not in {r.id for r in resp.results}
    assert [r.id for r in resp.results] == [e[0] for e in oracle([Q], [_row(b)], "average_vector", 20, skip={b})]
    assert resp.query["mode"] == "recommend" and resp.query["negative"] == [b]


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_a_positive_pulls_its_class_up(stores: dict[str, VectorStore], kind: str) -> None:
    st = stores[kind]
    c = _first("C")
    plain = [LABEL[h.id] for h in st.search(Q, k=10)]
    fed = [r.class_label for r in search_recommend(st, [c], query_vector=Q, k=10).results]
    assert fed.count("C") >= plain.count("C") + 3, (plain, fed)
    assert fed == [LABEL[e[0]] for e in oracle([_row(c), Q], [], "average_vector", 10, skip={c})]


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_filter_and_grouping_apply(stores: dict[str, VectorStore], kind: str) -> None:
    st = stores[kind]
    a = _first("A")
    resp = search_recommend(st, [a], k=5, filter=SearchFilter(classes=["C"]))
    assert len(resp.results) == 5 and {r.class_label for r in resp.results} == {"C"}
    grouped = search_recommend(st, [a], k=8, group_by_patent=True)
    patents = [r.patent_id for r in grouped.results]
    assert len(patents) == 8 == len(set(patents)) and a not in {r.id for r in grouped.results}


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_text_side_uses_the_examples_text_vectors(stores: dict[str, VectorStore], kind: str) -> None:
    a, c = _first("A"), _first("C")
    t = {i: T[j] for j, i in enumerate(IDS)}
    hits = stores[kind].recommend([a], [c], 10, text_weight=1.0)  # the text side alone
    assert [h.id for h in hits] == [e[0] for e in oracle([t[a]], [t[c]], "average_vector", 10, space=T, skip={a, c})]
    both = stores[kind].recommend([a], [c], 10, text_weight=0.5)  # image and text, fused by RRF inside Qdrant
    assert len(both) == 10 and {a, c}.isdisjoint(h.id for h in both)
    # both legs count: the fused answer is neither the image side alone nor the text side alone
    image_only = stores[kind].recommend([a], [c], 10, text_weight=0.0)
    assert [(h.id, h.score) for h in both] != [(h.id, h.score) for h in image_only]
    assert [h.id for h in both] != [h.id for h in hits]


def test_backends_are_congruent(stores: dict[str, VectorStore]) -> None:
    a, b, c = (_first(x) for x in CLASSES)
    cases: list[dict[str, Any]] = [
        {"strategy": "average_vector"},
        {"strategy": "best_score", "text_weight": 0.5},
        {
            "strategy": "sum_scores",
            "text_weight": 0.3,
            "fusion": "weighted",
            "filter": SearchFilter(classes=["A", "C"]),
        },
        {"strategy": "best_score", "group_by_patent": True},
    ]
    for case in cases:
        got = {kind: st.recommend([a, Q], [b, c], 10, **case) for kind, st in stores.items()}
        assert [h.id for h in got["edge"]] == [h.id for h in got["server"]], case
        np.testing.assert_allclose([h.score for h in got["edge"]], [h.score for h in got["server"]], atol=1e-4)


def test_bad_feedback_is_refused_clearly(stores: dict[str, VectorStore]) -> None:
    st = stores["edge"]
    with pytest.raises(KeyError, match="not in collection 'figs'"):
        search_recommend(st, [point_id("US999", "F0")], [])
    with pytest.raises(ValueError, match="needs a relevant figure or the query"):
        search_recommend(st, [], [_first("B")])
    with pytest.raises(StoreError, match="unknown recommend strategy"):
        search_recommend(st, [_first("A")], strategy="nearest")
    assert search_recommend(st, [], [_first("B")], strategy="best_score", k=3).results  # negatives alone: allowed
    # the current query alone is a plain search for it
    alone = search_recommend(st, [], query_vector=Q, k=5)
    assert [r.id for r in alone.results] == [r.id for r in search_hybrid(st, image_vector=Q, k=5).results]
