"""``pir bench scale`` at a tiny size on real Qdrant Edge: report shape, recall against exact numpy, resume, refusal,
the synthetic corpus's shapes and determinism, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from pir.bench.scale import (
    FILTER_TARGETS,
    Corpus,
    ExactTopK,
    bench_scale,
    extrapolate,
    parse_quantizations,
    parse_sizes,
)
from pir.cli import main

TINY = {"dim": 48, "text_dim": 24, "n_queries": 20, "chunk": 500, "progress": False}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pir.core.config import get_settings

    root = tmp_path_factory.mktemp("scale")
    s = get_settings(data_dir=root / "pir", qdrant={"url": None}, worker={"broker_url": None})
    out = root / "out"
    result = bench_scale(s, sizes=[2000], quantization=["none", "int8"], out=out, **TINY)  # type: ignore[arg-type]
    return {"settings": s, "out": out, "result": result}


def test_report_has_every_measure(run: dict[str, Any]) -> None:
    out: Path = run["out"]
    data = json.loads((out / "results.json").read_text())
    cell = data["cells"]["2000/none"]
    assert cell["status"] == "done" and cell["count"] == 2000
    for key in ("upsert_s", "optimize_s", "reopen_s", "first_query_ms", "close_s"):
        assert cell[key] >= 0, key
    assert cell["upsert_points_per_s"] > 0 and cell["optimize_points_per_s"] > 0
    assert set(cell["queries"]) == {"image", "hybrid", *FILTER_TARGETS}
    for q in cell["queries"].values():
        assert 0 < q["p50_ms"] <= q["p95_ms"]
    assert cell["queries"]["hybrid"]["fusion"] == "zscore"
    pf = cell["per_figure"]
    assert pf["disk_bytes"] > 0 and pf["ram_peak_bytes"] > 0 and pf["raw_bytes"] == 4 * (48 + 24) + 132 + 2000
    assert cell["memory"]["peak_rss_mb"] > cell["memory"]["baseline_rss_mb"]
    assert set(cell["memory"]["peak_by_phase"]) == {"upsert", "optimize", "serving"}
    assert cell["memory"]["peak_by_phase"]["serving"]["rss_mb"] >= cell["memory"]["serving"]["rss_mb"]
    assert pf["ram_needed_bytes"] >= pf["ram_peak_anon_bytes"] and cell["optimize_cpu_s"] >= 0
    assert cell["config"] == {**cell["config"], "dim": 48, "text_dim": 24, "n_queries": 20, "k": 10}
    assert set(data["extrapolated"]) == {f"{n}/{q}" for n in (300_000, 1_000_000, 10_000_000) for q in ("none", "int8")}
    ext = data["extrapolated"]["10000000/none"]
    assert ext["extrapolated"] is True and ext["from_size"] == 2000 and ext["disk_gb"] > 0
    md = (out / "results.md").read_text()
    assert md.startswith("# pir bench scale") and "| 2,000 | none |" in md and "10,000,000 (extrapolated)" in md
    assert (out / "scale.png").stat().st_size > 10_000
    assert not (out / "work" / "qdrant-edge" / "scale-2000-none").exists()  # deleted once measured


def test_recall_against_exact_numpy(run: dict[str, Any]) -> None:
    """2,000 figures stay below the indexing threshold: every search is exact, so recall must be 1.0; a wrong
    ground truth or a wrong figure index from the payload would show here."""
    queries = run["result"]["cells"]["2000/none"]["queries"]
    for name in ("image", *FILTER_TARGETS):
        assert queries[name]["recall@10"] == 1.0, (name, queries[name])
        assert queries[name]["recall@10_min"] == 1.0
    for name, target in FILTER_TARGETS.items():
        q = queries[name]
        assert q["planner"]["plan"] == "exact" and q["plans_used"] == ["exact"]  # below exact_filter_threshold
        assert q["planner"]["matching"] == q["matching"]
        assert target / 2 <= q["share"] <= target * 1.6, (name, q["share"])


def test_quantized_cell_has_int8_with_originals_on_disk(run: dict[str, Any]) -> None:
    cells = run["result"]["cells"]
    none, int8 = cells["2000/none"], cells["2000/int8"]
    assert none["collection_settings"]["quantization"] == "none" and not none["collection_settings"]["vectors_on_disk"]
    assert int8["collection_settings"]["quantization"] == "int8" and int8["collection_settings"]["vectors_on_disk"]
    assert int8["queries"]["image"]["recall@10"] >= 0.9  # rescored with the originals
    assert "| 2,000 | int8 |" in (run["out"] / "results.md").read_text()


def test_resume_skips_a_done_cell(run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    report = json.loads((run["out"] / "results.json").read_text())
    before = report["cells"]["2000/none"]
    again = bench_scale(
        run["settings"], sizes=[2000], quantization=["none"], out=run["out"], resume=True, **{**TINY, "progress": True}
    )
    assert again["cells"]["2000/none"] == before  # not measured again (timings would differ)
    assert again["environment"] == report["environment"]  # nothing measured: the report stays as it was
    assert "skipped (--resume)" in capsys.readouterr().err
    after = json.loads((run["out"] / "results.json").read_text())["cells"]["2000/none"]
    assert after == before


def test_too_big_a_size_is_refused_with_one_line(tmp_path: Path, settings, capsys) -> None:
    r = bench_scale(settings, sizes=[10**9], quantization=["none"], out=tmp_path, **TINY)  # type: ignore[arg-type]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0] and "/proc/meminfo" in err[0], err
    assert r["cells"] == {} and r["refused"][0]["cell"] == "1000000000/none"


def test_corpus_is_deterministic_and_realistic() -> None:
    a, b = (
        Corpus(3000, dim=32, text_dim=16, n_queries=5, seed=3, chunk=400),
        Corpus(3000, dim=32, text_dim=16, n_queries=5, seed=3, chunk=400),
    )
    c1, c2 = a.chunk(2), b.chunk(2)
    assert c1.ids == c2.ids and np.array_equal(c1.image, c2.image) and c1.words == c2.words
    chunks = list(a.chunks())
    assert sum(len(c.ids) for c in chunks) == 3000 and len({i for c in chunks for i in c.ids}) == 3000
    x = np.concatenate([c.image for c in chunks])
    assert x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(np.concatenate([c.text for c in chunks]), axis=1), 1, atol=1e-5)
    terms = [len(w) for c in chunks for w in c.words]
    assert 12 <= np.mean(terms) <= 18 and min(terms) >= 1  # pir's real figures: about 15 distinct terms
    sizes = [len(json.dumps(p)) for p in chunks[0].payloads]
    assert 1200 <= np.mean(sizes) <= 2600  # pir's real payloads with enrichment: about 1.9 KB
    assert all(a.index_of(p) == chunks[0].start + i for i, p in enumerate(chunks[0].payloads))
    per_patent = np.bincount(a.fig_patent)
    assert per_patent.min() >= 1 and 4 <= per_patent.mean() <= 8  # several figures per patent


def test_exact_top_k_merged_by_chunks_equals_brute_force() -> None:
    corpus = Corpus(2500, dim=32, text_dim=16, n_queries=7, seed=1, chunk=300)
    filters = corpus.filters()
    masks = {"none": np.ones(corpus.size, dtype=bool), **{n: m for n, (_, m, _) in filters.items()}}
    gt = ExactTopK(corpus.queries, masks, 10)
    xs = []
    for ch in corpus.chunks():
        gt.update(ch.start, ch.image)
        xs.append(ch.image)
    x = np.concatenate(xs)
    for name, mask in masks.items():
        sub = np.flatnonzero(mask)
        s = corpus.queries @ x[sub].T
        want = [set(sub[np.argsort(-row)[:10]].tolist()) for row in s]
        assert gt.truth(name) == want, name


def test_extrapolation_uses_the_marginal_cost_of_two_sizes() -> None:
    def cell(n: int, ram: float, opt: float) -> dict[str, Any]:
        pf = {"ram_serving_bytes": ram, "ram_needed_bytes": ram, "ram_peak_bytes": 2 * ram, "disk_bytes": ram,
              "disk_peak_bytes": ram}  # fmt: skip
        return {"size": n, "quantization": "none", "per_figure": pf, "upsert_s": n / 1e4, "optimize_s": opt,
                "reopen_s": 0.1}  # fmt: skip

    # 100 MB fixed + 1,000 B per figure: 1,100 B/figure at 1M, 1,010 at 10M
    ext = extrapolate([cell(100_000, 2000.0, 100.0), cell(1_000_000, 1100.0, 1000.0 * 10**0.2)], to=[10_000_000])
    e = ext["10000000/none"]
    assert e["ram_serving_gb"] == round((1.1e9 + 1000 * 9e6) / 1e9, 1)
    assert e["ram_needed_gb"] == e["ram_serving_gb"] and "marginal" in e["bytes_method"]
    assert "power law" in e["optimize_method"] and "1.20" in e["optimize_method"]
    assert e["optimize_s"] == round(1000.0 * 10**0.2 * 10**1.2)


def test_parsers() -> None:
    assert parse_sizes("100000,300k, 1M,1_000") == [100_000, 300_000, 1_000_000, 1000]
    assert parse_quantizations("none,int8,none") == ["none", "int8"]
    with pytest.raises(ValueError, match="sizes"):
        parse_sizes("lots")
    with pytest.raises(ValueError, match="quantization"):
        parse_quantizations("int4")


def test_cli_tiny_run_and_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["bench", "scale", "--help"])
    assert r.exit_code == 0 and "--resume" in r.output and "--quantization" in r.output
    assert "--dim" not in r.output  # the test-only options are hidden
    out = tmp_path / "out"
    args = ["--data-dir", str(tmp_path / "pir"), "bench", "scale", "--sizes", "600", "--quantization", "none",
            "--queries", "5", "--dim", "32", "--text-dim", "16", "--out", str(out), "--no-plots"]  # fmt: skip
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "| 600 | none |" in r.output and (out / "results.json").is_file() and not (out / "scale.png").exists()
    r = runner.invoke(main, ["bench", "scale", "--quantization", "int4"])
    assert r.exit_code == 2 and "int4" in r.output
