"""The Edge/server congruence cases against a real Qdrant server in a container (testcontainers), where Docker exists.

The same cases as ``tests/test_store.py`` (plain, exact, k, min score, grouping, every filter) and
``tests/test_hybrid_recommend.py`` (recommend strategies with text fusion, filter and grouping), plus hybrid fusions
over image, text and words vectors, compared with Qdrant Edge on the same data; and the collection settings (shards,
quantization, payload indexes before the first point) and the planner's search params (exact, ACORN, rescoring) as a
real server takes them. Without a Docker daemon every test skips with the reason (as the Redis variant of
``tests/test_workers.py``); the qdrant-client local-mode tests in ``tests/test_collection_settings.py`` check the
request shapes here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pir.search import HybridQuery, SearchFilter, VectorStore
from pir.search.edge import EdgeStore
from pir.search.store import PAYLOAD_INDEXES
from pir.search.words import words_query_vector, words_vector
from tests import test_hybrid_recommend as reco
from tests import test_store as ts

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[1]


def _image() -> str:
    """The Qdrant image the compose file pins (the tier tests what the deployment runs)."""
    import yaml

    return str(yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["qdrant"]["image"])


@pytest.fixture(scope="module")
def qdrant_url() -> Iterator[str]:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as e:  # noqa: BLE001  (docker.errors.DockerException, requests errors)
        pytest.skip(f"no Docker daemon ({type(e).__name__}); testcontainers Qdrant tier skipped")
    from testcontainers.community.qdrant import QdrantContainer  # lazy: only with Docker

    with QdrantContainer(_image()) as q:
        yield f"http://{q.get_container_host_ip()}:{q.get_exposed_port(6333)}"


def _server(url: str, collection: str, **options: Any) -> VectorStore:
    from qdrant_client import QdrantClient

    from pir.search.server import ServerStore

    client = QdrantClient(url=url, timeout=30)
    if client.collection_exists(collection):
        client.delete_collection(collection)
    return ServerStore(client, collection, location=url, owns_client=True, **options)


@pytest.fixture(scope="module")
def pair(qdrant_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    """``tests/test_store.py``'s data in Qdrant Edge and in the container."""
    stores = {"edge": EdgeStore(tmp_path_factory.mktemp("tc") / "figs", "figs"), "server": _server(qdrant_url, "figs")}
    for s in stores.values():
        s.ensure_collection(ts.DIM, encoder=ts.ENCODER)
        s.upsert(ts.IDS, ts.X, ts.PAYLOADS)
    yield stores
    for s in stores.values():
        s.close()


@pytest.mark.parametrize("case", list(ts.CONGRUENCE_QUERIES))
def test_search_cases_are_congruent_on_a_server(pair: dict[str, VectorStore], case: str) -> None:
    kwargs = ts.CONGRUENCE_QUERIES[case]
    for q in ts.QUERIES[:4]:
        expected = pair["edge"].search(q, **kwargs)
        hits = pair["server"].search(q, **kwargs)
        assert expected and [h.id for h in hits] == [h.id for h in expected], case
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], atol=1e-4)
        assert [h.payload for h in hits] == [h.payload for h in expected]


@pytest.fixture(scope="module")
def reco_pair(qdrant_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    """``tests/test_hybrid_recommend.py``'s data (image and text vectors) plus words, in Edge and the container."""
    # every figure its own BM25 score for "lamp" (term count and length vary), so the words leg has no ties
    words = [
        words_vector([" ".join(["lamp"] * (1 + i % 7) + [f"part{chr(97 + j)}" for j in range(i % 11)])])
        for i in range(reco.N)
    ]
    stores = {"edge": EdgeStore(tmp_path_factory.mktemp("tcr") / "r", "r"), "server": _server(qdrant_url, "r")}
    for s in stores.values():
        s.ensure_collection(reco.DIM, encoder="toy", text_dim=reco.TEXT_DIM)
        s.upsert(reco.IDS, reco.X, reco.PAYLOADS, text=reco.T, words=words)
    yield stores
    for s in stores.values():
        s.close()


RECOMMEND_CASES: list[dict[str, Any]] = [  # as tests/test_hybrid_recommend.py::test_backends_are_congruent
    {"strategy": "average_vector"},
    {"strategy": "best_score", "text_weight": 0.5},
    {"strategy": "sum_scores", "text_weight": 0.3, "fusion": "weighted", "filter": SearchFilter(classes=["A", "C"])},
    {"strategy": "best_score", "group_by_patent": True},
]


@pytest.mark.parametrize("case", range(len(RECOMMEND_CASES)))
def test_recommend_cases_are_congruent_on_a_server(reco_pair: dict[str, VectorStore], case: int) -> None:
    a, b, c = (reco._first(x) for x in reco.CLASSES)
    got = {k: s.recommend([a, reco.Q], [b, c], 10, **RECOMMEND_CASES[case]) for k, s in reco_pair.items()}
    assert [h.id for h in got["edge"]] == [h.id for h in got["server"]]
    np.testing.assert_allclose([h.score for h in got["edge"]], [h.score for h in got["server"]], atol=1e-4)


@pytest.mark.parametrize("fusion", ["rrf", "weighted", "zscore"])
def test_hybrid_fusions_are_congruent_on_a_server(reco_pair: dict[str, VectorStore], fusion: str) -> None:
    q = HybridQuery(image=reco.Q, text=reco.T[0], words=words_query_vector("lamp"), fusion=fusion, text_weight=0.5)
    for flt in (None, SearchFilter(classes=["A", "B"])):
        a, b = (reco_pair[k].hybrid_search(q, 8, filter=flt) for k in ("edge", "server"))
        assert len(a) == 8 and [h.id for h in a] == [h.id for h in b], (fusion, flt)
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


def test_collection_settings_on_a_server(qdrant_url: str) -> None:
    """Shards, quantization, on-disk vectors and payload indexes as a real server stores them; the planner's exact
    and ACORN params and rescoring accepted, with the exact results."""
    opts = {"shard_number": 2, "replication_factor": 1, "write_consistency_factor": 1, "on_disk_payload": True}
    store = _server(qdrant_url, "settings", quantization="int8", hnsw_m=24, **opts)
    try:
        store.ensure_collection(ts.DIM, encoder=ts.ENCODER)
        s = store.collection_settings()
        assert s["payload_indexes"] == PAYLOAD_INDEXES and store.count() == 0  # indexed before the first point
        assert (s["shard_number"], s["replication_factor"], s["write_consistency_factor"]) == (2, 1, 1)
        assert s["on_disk_payload"] is True and s["hnsw_m"] == 24 and store.quantized()
        assert s["quantization"] == "int8" and s["vectors_on_disk"] is True and s["vectors"]["text"]["on_disk"]
        store.upsert(ts.IDS, ts.X, ts.PAYLOADS)
        f = ts.FILTERS["combined"]
        for threshold, selectivity, plan in ((10**9, 0.4, "exact"), (0, 1.0, "acorn"), (0, 0.0, "hnsw")):
            store.exact_filter_threshold, store.acorn_max_selectivity = threshold, selectivity
            for q in ts.QUERIES[:3]:
                hits = store.search(q, k=10, filter=f)
                assert store.last_plan == plan
                ts.assert_same(hits, ts.brute(q, 10, f))  # rescored with the originals: exact scores
    finally:
        store.close()
