"""Batched ingest stores what the per-figure path stores; stage timings; the queue benchmark at tiny size (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pir.core.config import Settings, get_settings
from pir.encoder.model import load_encoder
from pir.enrich import enrich_figures, get_descriptions
from pir.enrich.pipeline import many_descriptions
from pir.ingest.readers import read_figures
from pir.pipeline import BatchResult, ingest
from pir.search import open_store
from pir.synth import synthesize_corpus
from tests.helpers import make_tiny_encoder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    synthesize_corpus(out, patents=4, seed=5, image_size=96)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny")


def _settings(root: Path, batch_size: int) -> Settings:
    return get_settings(data_dir=root, qdrant={"url": None}, worker={"broker_url": None, "batch_size": batch_size})


def _points(settings: Settings) -> dict[str, Any]:
    with open_store(settings) as store:
        return {p.id: p for p in store.scroll(with_vectors=True)}


def test_many_descriptions_equal_get_descriptions_figure_by_figure(corpus: Path, tmp_path: Path) -> None:
    """The batch look-up gives each figure what get_descriptions gives it: cached (enriched before) and generated."""
    figs = list(read_figures(corpus))
    batch_s, single_s = _settings(tmp_path / "batch", 32), _settings(tmp_path / "single", 32)
    for s in (batch_s, single_s):  # half of the figures enriched before: cache hits; the rest generated on demand
        enrich_figures(figs[::2], s, show_progress=False)
    got = many_descriptions(figs, batch_s)
    want = {f.key: get_descriptions(f, single_s) for f in figs}
    assert got == want and all(want.values())
    assert many_descriptions(figs, batch_s) == want  # the second time every figure is a cache hit
    # an explicit backend reads its own content-cache entries (not the figure's latest)
    explicit = {f.key: get_descriptions(f, single_s, backend="template") for f in figs}
    assert many_descriptions(figs, batch_s, backend="template") == explicit


def test_batched_ingest_stores_the_per_figure_points(corpus: Path, tiny: Path, tmp_path: Path) -> None:
    """Batches of 32 (one enrichment run, one descriptions look-up, one text-encoder call per batch) store the same
    image, text and words vectors and payloads as batches of one figure."""
    enc = load_encoder(tiny)
    seen: list[tuple[int, BatchResult]] = []
    batched_s, single_s = _settings(tmp_path / "batched", 32), _settings(tmp_path / "single", 1)
    summary = ingest(corpus, batched_s, encoder=enc, show_progress=False,
                     on_batch=lambda batch, res: seen.append((len(batch), res)))  # fmt: skip
    ingest(corpus, single_s, encoder=enc, show_progress=False)
    got, want = _points(batched_s), _points(single_s)
    assert summary.ingested == len(want) > 10 and set(got) == set(want)
    for pid, w in want.items():
        g = got[pid]
        np.testing.assert_allclose(g.vector, w.vector, atol=1e-5, err_msg=pid)
        assert g.text is not None and w.text is not None and g.words is not None and w.words is not None
        np.testing.assert_allclose(g.text, w.text, atol=1e-5, err_msg=pid)
        assert g.words.indices == w.words.indices
        np.testing.assert_allclose(g.words.values, w.words.values, rtol=1e-6)
        volatile = {"embedded_at"}
        assert {k: v for k, v in g.payload.items() if k not in volatile} == {
            k: v for k, v in w.payload.items() if k not in volatile
        }
        assert g.payload["descriptions"] and g.payload["aliases"]
    # the batch hook saw every batch; the stage timings cover the run
    assert sum(n for n, _ in seen) == summary.ingested and all(len(r.ingested) == n for n, r in seen)
    stages = summary.stage_seconds
    assert {"discover", "enrich", "hash", "describe", "load", "embed", "text", "upsert"} <= set(stages)
    assert all(v >= 0 for v in stages.values()) and sum(stages.values()) <= summary.seconds


@pytest.mark.slow  # ~2 min: four ingests, four worker processes
@pytest.mark.integration
def test_queue_bench_tiny_runs_real_workers(corpus: Path, tiny: Path, tmp_path: Path) -> None:
    """In-process, one worker, an enrich and an embed worker, one worker with two tasks at once: each stores every
    figure with all three vectors."""
    import redis

    from pir.workers.bench import bench_queue, queue_markdown

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        pytest.skip(f"no Redis at 127.0.0.1:6379 ({e})")
    s = get_settings(
        data_dir=tmp_path / "pir", qdrant={"url": None}, encoder={"name": str(tiny)}, worker={"batch_size": 4}
    )
    q = bench_queue(s, data=corpus, n_images=10, workers="0,1,2,1x2", out=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "queue.json").read_text()) == q
    assert not list((tmp_path / "pir" / "bench").glob("pir-queue-*"))  # the scratch folder is gone
    assert [r["workers"] for r in q["runs"]] == ["0", "1", "2", "1x2"]
    for r in q["runs"]:
        assert r["ingested"] == 10 and r["failed"] == 0 and r["images_per_s"] > 0, r
        assert r["stored"] == {"points": 10, "with_text_vector": 10, "with_words_vector": 10}, r
        assert r["per_million_figures"]["machine_hours"] > 0
    assert q["runs"][2]["layout"] == "enrich + embed" and q["runs"][0]["vs_in_process"] == 1.0
    assert q["runs"][3]["layout"] == "enrich,embed (2 tasks at once)"
    assert all(rc == 0 for r in q["runs"][1:] for rc in r["worker_exit_codes"])
    assert "| 2 | enrich + embed |" in queue_markdown(q)


def test_queue_configurations_parse_and_refuse() -> None:
    from pir.workers.bench import batch_sizing, parse_config, worker_layout

    assert [parse_config(c) for c in (0, "1", "2", "1x2", " 3X1 ")] == [(0, 1), (1, 1), (2, 1), (1, 2), (3, 1)]
    for bad in ("x", "0x2", "-1", "1x0", "two"):
        with pytest.raises(ValueError):
            parse_config(bad)
    assert worker_layout(2, server=False) == [["enrich"], ["embed"]]  # one process owns the embedded store
    assert worker_layout(3, server=True) == [["enrich", "embed"]] * 3
    with pytest.raises(ValueError, match="Qdrant server"):
        worker_layout(3, server=False)
    runs = [{"workers": "0", "images_per_s": 10.0}, {"workers": "1", "images_per_s": 9.0}]
    b = batch_sizing(runs, 32)  # 1/9 - 1/10 s per image more: 0.356 s per batch of 32, 2% of 178 x 0.1 s
    assert b["queue_s_per_batch"] == pytest.approx(32 * (1 / 9 - 1 / 10), abs=1e-3)
    assert b["min_batch_for_overhead"] == 178 and b["queue_share"] == pytest.approx(0.111, abs=1e-3)
