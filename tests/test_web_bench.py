"""`pir bench serve`: the bounded load against a live server subprocess, beside the cold CLI (slow: two processes)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_serve_reports_latency_errors_rss_and_cold_cli(tmp_path: Path) -> None:
    from pir.bench.serve import bench_serve
    from pir.core.config import get_settings
    from pir.encoder.model import load_encoder
    from pir.pipeline import ingest
    from pir.synth import synthesize_corpus
    from tests.helpers import make_tiny_encoder

    synthesize_corpus(tmp_path / "corpus", patents=6, seed=2, image_size=64)
    enc = make_tiny_encoder(tmp_path / "enc")
    s = get_settings(
        data_dir=tmp_path / "pir", qdrant={"url": None}, worker={"broker_url": None}, encoder={"name": str(enc)}
    )
    ingest(tmp_path / "corpus", s, encoder=load_encoder(enc), show_progress=False)
    out = bench_serve(s, clients=3, searches=12, n_queries=2, cold_runs=1, max_concurrent=1)
    load = out["load"]
    assert load["ok"] + load["errors"] == 12 and load["errors"] == 0, out
    assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["max_ms"]
    assert out["server"]["peak_rss_mb"] >= out["server"]["idle_rss_mb"] > 50
    assert len(out["cold_cli_s"]) == 1 and out["cold_cli_s"][0] > 0 and out["warm_search_ms"] > 0
    # the cold process pays start-up that the warm server does not
    assert out["cold_cli_s"][0] * 1e3 > out["warm_search_ms"]
