"""Vector store: both backends (Qdrant Edge on disk, qdrant-client ":memory:") against a numpy exact oracle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from pir.core.config import get_settings
from pir.ingest.schema import point_id
from pir.search import Hit, SearchFilter, StoreError, VectorStore, open_store
from pir.search.edge import EdgeStore
from pir.search.query import Ask
from pir.search.server import ServerStore

DIM = 32
N = 600
ENCODER = "test-encoder"
CLASSES = ["D14", "D12", "D06", "D07", "D23", "D26"]
VIEWS = ["perspective", "front", "rear", "left", "right", "top", "bottom"]
OBJECTS = ["chair", "lamp", "phone", "bottle", "shoe"]


def make_data(n: int, dim: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Random unit vectors with patent-like payloads (several figures per patent, some missing fields)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids, payloads = [], []
    for i in range(n):
        patent = f"US{1000 + i // 6}"  # 6 figures per patent
        main = CLASSES[(i // 6) % len(CLASSES)]
        ids.append(point_id(patent, f"fig{i % 6}"))
        payloads.append(
            {
                "patent_id": patent,
                "figure_id": f"fig{i % 6}",
                "classes": [main, f"{main}/{100 + (i // 6) % 7}"],
                "class_label": main,
                "year": None if i % 17 == 0 else 1990 + (i // 6) % 30,
                "viewpoint": VIEWS[i % len(VIEWS)],
                "object_name": None if i % 11 == 0 else OBJECTS[(i // 6) % len(OBJECTS)],
            }
        )
    return ids, x, payloads


IDS, X, PAYLOADS = make_data(N, DIM)
QUERIES = np.random.default_rng(1).standard_normal((6, DIM)).astype(np.float32)
QUERIES /= np.linalg.norm(QUERIES, axis=1, keepdims=True)


def matches(p: dict[str, Any], f: SearchFilter | None) -> bool:
    """Reference implementation of :class:`SearchFilter` over one payload."""
    if f is None:
        return True
    if f.classes and not set(f.classes) & set(p.get("classes") or []):
        return False
    if f.year_from is not None or f.year_to is not None:
        y = p.get("year")
        if y is None or (f.year_from is not None and y < f.year_from) or (f.year_to is not None and y > f.year_to):
            return False
    for key, values in (("viewpoint", f.viewpoints), ("object_name", f.object_names), ("patent_id", f.patent_ids)):
        if values and p.get(key) not in values:
            return False
    return not (f.exclude_patents and p.get("patent_id") in f.exclude_patents)


def brute(
    q: np.ndarray,
    k: int,
    f: SearchFilter | None = None,
    min_score: float | None = None,
    group: bool = False,
    ids: list[str] = IDS,
    x: np.ndarray = X,
    payloads: list[dict[str, Any]] = PAYLOADS,
) -> list[tuple[str, float]]:
    """Exact numpy search: (id, score) best first."""
    scores = x @ q
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for i in np.argsort(-scores, kind="stable"):
        if not matches(payloads[i], f) or (min_score is not None and scores[i] < min_score):
            continue
        if group:
            if payloads[i]["patent_id"] in seen:
                continue
            seen.add(payloads[i]["patent_id"])
        out.append((ids[i], float(scores[i])))
        if len(out) == k:
            break
    return out


def assert_same(hits: list[Hit], expected: list[tuple[str, float]], tol: float = 1e-4) -> None:
    assert [h.id for h in hits] == [e[0] for e in expected]
    np.testing.assert_allclose([h.score for h in hits], [e[1] for e in expected], atol=tol)


def new_store(kind: str, root: Path, **kwargs: Any) -> VectorStore:
    if kind == "edge":
        return EdgeStore(root / "figs", "figs", **kwargs)
    return ServerStore(QdrantClient(":memory:"), "figs", owns_client=True, **kwargs)


@pytest.fixture(params=["edge", "server"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    store = new_store(request.param, tmp_path)
    yield store
    store.close()


@pytest.fixture()
def store(empty_store: VectorStore) -> VectorStore:
    empty_store.ensure_collection(DIM, encoder=ENCODER)
    empty_store.upsert(IDS, X, PAYLOADS)
    return empty_store


FILTERS: dict[str, SearchFilter] = {
    "classes": SearchFilter(classes=["D14"]),
    "subclass_any": SearchFilter(classes=["D12/101", "D06/103"]),
    "year_range": SearchFilter(year_from=2000, year_to=2005),
    "year_from": SearchFilter(year_from=2015),
    "viewpoints": SearchFilter(viewpoints=["front", "top"]),
    "object_names": SearchFilter(object_names=["lamp"]),
    "patent_ids": SearchFilter(patent_ids=["US1003", "US1010", "US1042"]),
    "exclude_patents": SearchFilter(exclude_patents=[f"US{1000 + i}" for i in range(0, 100, 2)]),
    "combined": SearchFilter(classes=["D14", "D23"], year_from=1995, viewpoints=["perspective", "front", "left"]),
}


# ------------------------------------------------------------------------------------------------ basic operations
def test_empty_store_reports_no_collection(empty_store: VectorStore) -> None:
    assert empty_store.dim() is None
    assert empty_store.count() == 0
    assert list(empty_store.scroll()) == []
    assert empty_store.retrieve([IDS[0]]) == []
    with pytest.raises(StoreError, match="does not exist yet"):
        empty_store.search(X[0])
    with pytest.raises(StoreError, match="ensure_collection"):
        empty_store.upsert(IDS[:1], X[:1], PAYLOADS[:1])


def test_upsert_retrieve_count_info(store: VectorStore) -> None:
    assert store.dim() == DIM
    assert store.count() == N
    unknown = point_id("NOPE", "fig")
    got = store.retrieve([IDS[5], unknown, IDS[2]], with_vectors=True)
    assert [p.id for p in got] == [IDS[5], IDS[2]]
    assert got[0].payload == PAYLOADS[5]
    assert got[0].vector is not None
    np.testing.assert_allclose(got[0].vector, X[5], atol=1e-5)
    assert store.retrieve([IDS[1]])[0].vector is None
    info = store.info()
    assert info["backend"] == store.backend
    assert (info["collection"], info["dim"], info["count"], info["encoder"]) == ("figs", DIM, N, ENCODER)
    assert info["location"]


def test_reupsert_same_ids_keeps_count_and_overwrites(store: VectorStore) -> None:
    new_payloads = [{**p, "title": "v2"} for p in PAYLOADS[:50]]
    store.upsert(IDS[:50], X[:50], new_payloads)
    store.upsert(IDS[:50], X[:50], new_payloads)
    assert store.count() == N
    assert store.retrieve([IDS[3]])[0].payload["title"] == "v2"
    assert "title" not in store.retrieve([IDS[60]])[0].payload


def test_scroll_and_delete(store: VectorStore) -> None:
    seen = [p.id for p in store.scroll(batch_size=64)]
    assert len(seen) == N and set(seen) == set(IDS)
    f = SearchFilter(classes=["D14"])
    filtered = list(store.scroll(batch_size=50, filter=f, with_vectors=True))
    assert len(filtered) == sum(matches(p, f) for p in PAYLOADS) == store.count(f)
    assert all(p.vector is not None and p.vector.shape == (DIM,) for p in filtered)
    store.delete(IDS[:10])
    assert store.count() == N - 10
    assert store.retrieve(IDS[:10]) == []
    assert_same(store.search(X[0], k=5), brute(X[0], 5, ids=IDS[10:], x=X[10:], payloads=PAYLOADS[10:]))


def test_upsert_rejects_bad_input(store: VectorStore) -> None:
    with pytest.raises(StoreError, match="same length"):
        store.upsert(IDS[:3], X[:2], PAYLOADS[:3])
    with pytest.raises(StoreError, match="not a uuid"):
        store.upsert(["figure-1"], X[:1], PAYLOADS[:1])
    bad = X[:2].copy()
    bad[1, 3] = np.nan
    with pytest.raises(StoreError, match="NaN"):
        store.upsert(IDS[:2], bad, PAYLOADS[:2])
    with pytest.raises(StoreError, match="holds 32-d vectors but got 16-d"):
        store.upsert(IDS[:2], X[:2, :16], PAYLOADS[:2])
    with pytest.raises(StoreError, match="holds 32-d"):
        store.search(X[0, :16])
    assert store.count() == N


# ------------------------------------------------------------------------------------------------------- searching
def test_unfiltered_search_is_exact_knn(store: VectorStore) -> None:
    for q in QUERIES:
        assert_same(store.search(q, k=10), brute(q, 10))
    hits = store.search(X[7], k=3, with_vectors=True)
    assert hits[0].id == IDS[7] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].vector is not None and hits[0].payload["patent_id"] == PAYLOADS[7]["patent_id"]


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_kind(store: VectorStore, name: str) -> None:
    f = FILTERS[name]
    expected_count = sum(matches(p, f) for p in PAYLOADS)
    assert 0 < expected_count < N
    assert store.count(f) == expected_count
    for q in QUERIES[:3]:
        hits = store.search(q, k=10, filter=f)
        assert hits and all(matches(h.payload, f) for h in hits)
        assert_same(hits, brute(q, 10, f))


def test_exclude_patents_drops_those_patents(store: VectorStore) -> None:
    top = store.search(QUERIES[0], k=5)
    excluded = sorted({h.payload["patent_id"] for h in top})
    hits = store.search(QUERIES[0], k=20, filter=SearchFilter(exclude_patents=excluded))
    assert len(hits) == 20
    assert not {h.payload["patent_id"] for h in hits} & set(excluded)


def test_min_score(store: VectorStore) -> None:
    q = QUERIES[1]
    ranked = brute(q, 26)
    threshold = (ranked[24][1] + ranked[25][1]) / 2  # between the 25th and the 26th score
    hits = store.search(q, k=100, min_score=threshold)
    assert len(hits) == 25 and all(h.score >= threshold for h in hits)
    assert store.search(q, k=10, min_score=1.01) == []


def test_group_by_patent(store: VectorStore) -> None:
    for q in QUERIES[:3]:
        hits = store.search(q, k=15, group_by_patent=True)
        patents = [h.payload["patent_id"] for h in hits]
        assert len(hits) == 15 and len(set(patents)) == 15
        assert_same(hits, brute(q, 15, group=True))
    f = FILTERS["combined"]
    assert_same(store.search(QUERIES[0], k=8, filter=f, group_by_patent=True), brute(QUERIES[0], 8, f, group=True))
    # Fewer patents than k: all of them.
    f = SearchFilter(patent_ids=["US1003", "US1010"])
    assert len(store.search(QUERIES[0], k=10, filter=f, group_by_patent=True)) == 2


def test_search_batch_matches_single_searches(store: VectorStore) -> None:
    f = FILTERS["year_range"]
    batch = store.search_batch(QUERIES, k=7, filter=f)
    assert len(batch) == len(QUERIES)
    for q, hits in zip(QUERIES, batch, strict=True):
        assert [h.id for h in hits] == [h.id for h in store.search(q, k=7, filter=f)]
    grouped = store.search_batch(QUERIES[:2], k=5, group_by_patent=True)
    assert_same(grouped[1], brute(QUERIES[1], 5, group=True))


# ----------------------------------------------------------------------------------- collection checks and errors
def test_dimension_mismatch_is_clear_and_harmless(store: VectorStore) -> None:
    with pytest.raises(StoreError) as err:
        store.ensure_collection(DIM * 2, encoder=ENCODER)
    msg = str(err.value)
    assert "'figs'" in msg and f"stores {DIM}-d" in msg and f"{DIM * 2}-d" in msg and "another collection" in msg
    assert store.dim() == DIM and store.count() == N
    store.ensure_collection(DIM, encoder=ENCODER)  # same settings: fine
    assert_same(store.search(QUERIES[0], k=5), brute(QUERIES[0], 5))


def test_encoder_mismatch_is_refused(store: VectorStore) -> None:
    with pytest.raises(StoreError, match="built with encoder 'test-encoder', not 'other'"):
        store.ensure_collection(DIM, encoder="other")
    assert store.count() == N


def test_open_store_picks_backend(tmp_path: Path) -> None:
    edge_settings = get_settings(data_dir=tmp_path / "pir", qdrant={"url": None})
    with open_store(edge_settings, collection="c1") as s:
        assert isinstance(s, EdgeStore) and s.backend == "edge"
        s.ensure_collection(8, encoder="e")
        s.upsert(IDS[:2], X[:2, :8], PAYLOADS[:2])
        assert s.info()["location"] == str(edge_settings.store_dir / "c1")
    mem_settings = get_settings(data_dir=tmp_path / "pir", qdrant={"url": ":memory:", "hnsw_ef": 64})
    with open_store(mem_settings) as s:
        assert isinstance(s, ServerStore) and s.backend == "server" and s.collection == "pir_figures"
        assert s.hnsw_ef == 64 and s.dim() is None
    with pytest.raises(StoreError, match="invalid collection name"):
        open_store(edge_settings, collection="../escape")


class ToyStore(ServerStore):
    """A toy backend: qdrant-client in memory, opened for ``toy://`` urls."""

    backend = "toy"


def open_toy(settings: Any, collection: str) -> ToyStore:
    return ToyStore(QdrantClient(":memory:"), collection, location=settings.qdrant.url, owns_client=True)


def test_a_new_store_backend_is_one_registration_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pir.search import factory

    monkeypatch.setattr(factory, "REGISTRY", dict(factory.REGISTRY))  # leave the process registry as it was
    settings = get_settings(data_dir=tmp_path / "pir", qdrant={"url": "toy://figures"})
    assert factory.get_store_backend(settings).name == "server"  # unregistered: a url is a server's
    factory.register_store(factory.StoreSpec("toy", lambda s: s.qdrant.url.startswith("toy://"), __name__, "open_toy"))
    with open_store(settings, collection="c2") as s:
        assert isinstance(s, ToyStore) and s.collection == "c2"
        s.ensure_collection(8, encoder="e")
        s.upsert(IDS[:3], X[:3, :8], PAYLOADS[:3])
        assert s.search(X[0, :8], k=1)[0].id == IDS[0]
        assert s.info()["backend"] == "toy" and s.info()["location"] == "toy://figures"
    for url, name in ((None, "edge"), (":memory:", "memory"), ("http://localhost:6333", "server")):
        assert factory.get_store_backend(get_settings(data_dir=tmp_path, qdrant={"url": url})).name == name


# --------------------------------------------------------------------------------------------- Qdrant Edge specifics
def test_edge_persists_across_reopen(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "figs", "figs")
    store.ensure_collection(DIM, encoder=ENCODER)
    store.upsert(IDS, X, PAYLOADS)
    before = [h.id for h in store.search(QUERIES[0], k=10, filter=FILTERS["classes"])]
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count()

    with EdgeStore(tmp_path / "figs", "figs") as again:
        assert (again.dim(), again.count(), again.encoder()) == (DIM, N, ENCODER)
        assert [h.id for h in again.search(QUERIES[0], k=10, filter=FILTERS["classes"])] == before
        np.testing.assert_allclose(again.retrieve([IDS[9]], with_vectors=True)[0].vector, X[9], atol=1e-5)
        with pytest.raises(StoreError, match="stores 32-d vectors, but 64-d"):
            again.ensure_collection(64)
        assert again.count() == N
        assert set(again.info()["payload_indexes"]) >= {"patent_id", "classes", "year", "viewpoint"}


def test_edge_second_open_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "figs"
    first = EdgeStore(path, "figs")
    first.ensure_collection(DIM)
    first.upsert(IDS[:20], X[:20], PAYLOADS[:20])
    with pytest.raises(StoreError) as err:
        EdgeStore(path, "figs")
    msg = str(err.value)
    assert "in use by another process" in msg and str(path) in msg and "Qdrant server" in msg
    assert first.count() == 20  # the first store is unaffected
    first.close()
    with EdgeStore(path, "figs") as again:
        assert again.count() == 20


def test_edge_rebuilds_its_record_from_the_shard(tmp_path: Path) -> None:
    path = tmp_path / "figs"
    with EdgeStore(path, "figs") as s:
        s.ensure_collection(DIM)
        s.upsert(IDS[:5], X[:5], PAYLOADS[:5])
    (path / "pir_collection.json").unlink()
    with EdgeStore(path, "figs") as s:
        assert s.dim() == DIM and s.count() == 5
    assert (path / "pir_collection.json").exists()


def test_edge_hnsw_recall_after_optimize(tmp_path: Path) -> None:
    n = 2000
    ids, x, payloads = make_data(n, DIM, seed=3)
    queries = np.random.default_rng(4).standard_normal((40, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with EdgeStore(tmp_path / "big", "big", hnsw_ef=128, full_scan_threshold_kb=1, indexing_threshold_kb=1) as store:
        store.ensure_collection(DIM)
        store.upsert(ids, x, payloads)
        store.optimize()
        assert store.info()["indexed_vectors"] > 0
        recalls = []
        for q in queries:
            truth = {i for i, _ in brute(q, 10, ids=ids, x=x, payloads=payloads)}
            recalls.append(len(truth & {h.id for h in store.search(q, k=10)}) / 10)
        assert np.mean(recalls) >= 0.95
        # Filtered queries (a filter matching fewer than exact_filter_threshold points) are answered exactly.
        f = SearchFilter(year_from=2000, year_to=2012)
        assert store._plan(Ask(10, f)).exact and not store._plan(Ask(10)).exact
        for q in queries[:5]:
            assert_same(store.search(q, k=10, filter=f), brute(q, 10, f, ids=ids, x=x, payloads=payloads))


# ------------------------------------------------------------------------------------------------------ congruence
CONGRUENCE_QUERIES: dict[str, dict[str, Any]] = {
    "plain": {},
    "exact": {"exact": True},
    "k25": {"k": 25},
    "min_score": {"min_score": 0.2, "k": 50},
    "grouped": {"group_by_patent": True},
    "grouped_exact_k30": {"group_by_patent": True, "k": 30, "exact": True},
    **{f"filter_{name}": {"filter": f} for name, f in FILTERS.items()},
    "filter_combined_grouped": {"filter": FILTERS["combined"], "group_by_patent": True},
    "exclude_grouped_min_score": {"filter": FILTERS["exclude_patents"], "group_by_patent": True, "min_score": 0.1},
}


@pytest.fixture(scope="module")
def congruent_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    """The same data in Edge (brute force), Edge after optimize() (HNSW graph) and the qdrant-client store."""
    root = tmp_path_factory.mktemp("congruence")
    stores = {
        "edge": EdgeStore(root / "plain", "figs"),
        "edge_hnsw": EdgeStore(root / "hnsw", "figs", full_scan_threshold_kb=1, indexing_threshold_kb=1),
        "server": ServerStore(QdrantClient(":memory:"), "figs", owns_client=True),
    }
    for s in stores.values():
        s.ensure_collection(DIM, encoder=ENCODER)
        s.upsert(IDS, X, PAYLOADS)
    stores["edge_hnsw"].optimize()
    assert stores["edge_hnsw"].info()["indexed_vectors"] > 0
    yield stores
    for s in stores.values():
        s.close()


@pytest.mark.parametrize("case", list(CONGRUENCE_QUERIES))
def test_backends_are_congruent(congruent_stores: dict[str, VectorStore], case: str) -> None:
    kwargs = CONGRUENCE_QUERIES[case]
    server = congruent_stores["server"]
    for q in QUERIES[:4]:
        expected = server.search(q, **kwargs)
        assert expected, kwargs
        for name in ("edge", "edge_hnsw"):
            hits = congruent_stores[name].search(q, **kwargs)
            assert [h.id for h in hits] == [h.id for h in expected], name
            np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], atol=1e-4)
            assert [h.payload for h in hits] == [h.payload for h in expected]
