"""Bench protocols, embedding cache, store-vs-exact agreement, report files and the speed bench (tiny sizes)."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import pir.encoder._tvshim  # noqa: F401  (before timm)
from pir.bench.cache import EmbeddingCache
from pir.bench.datasets import folder_set
from pir.bench.evaluate import evaluate_method
from pir.bench.run import bench_deeppatent2, bench_folders
from pir.bench.speed import bench_speed
from pir.cli import main
from pir.encoder.model import EncoderConfig, PreprocessConfig, VisualEncoder, load_encoder, save_encoder_dir

SEGMENTED = "deeppatent2_techdrawfinder_segmented/exampledata"
ORIGINALS = "deeppatent2_lamps_original_figures/images"


def _tiny(path: Path, seed: int) -> Path:
    import torch

    torch.manual_seed(seed)
    cfg = EncoderConfig(
        name=f"tiny-{seed}",
        backbone="test_efficientnet",
        pretrained="none",
        projector="linear",
        embed_dim=16,
        preprocess=PreprocessConfig(image_size=64),
    )
    model = VisualEncoder(cfg.backbone, projector=cfg.projector, embed_dim=cfg.embed_dim, pretrained=False).eval()
    # A random trunk maps every drawing to almost the same feature (cosines ~0.9999, float32 near-ties); centring the
    # projector on the mean feature of a few drawings spreads the embeddings so rankings are well defined.
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.random((16, 3, 64, 64), dtype=np.float32))
    with torch.no_grad():
        feats = model.trunk(x)
        model.head.bias.copy_(-model.head.weight @ feats.mean(0))
    return save_encoder_dir(path, cfg, model)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return _tiny(root / "tiny-a", 1), _tiny(root / "tiny-b", 2)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pir.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("synth") / "corpus"
    synthesize_corpus(out, patents=20, seed=0)
    return out


def _deeppatent2_folder(shared: Path, root: Path) -> Path:
    """A DeepPatent2-shaped year folder: Original/ + Segmented/ (links to real images) and a JSON record list."""
    year = root / "2020"
    (year / "Original").mkdir(parents=True)
    (year / "Segmented").mkdir(parents=True)
    records = []
    for i, src in enumerate(sorted((shared / SEGMENTED).glob("*.png"))):
        (year / "Segmented" / src.name).symlink_to(src)
        sheet, fig = src.stem.rsplit("_", 1)
        pid, date, _ = sheet.split("-")
        records.append(
            {
                "id": len(records),
                "patentID": pid,
                "patentdate": date,
                "figid": fig if i % 2 else int(fig),
                "caption": f"FIG. {fig} is a perspective view",
                "object": ["chair", "bottle"][i % 2],
                "aspect": "perspective view",
                "figure_file": f"{sheet}.png",
                "subfigure_file": src.name,
                "object_title": "Design",
            }
        )
    for src in sorted((shared / ORIGINALS).glob("*.png")):
        (year / "Original" / src.name).symlink_to(src)
        pid, date, sheet = src.stem.split("-")
        records.append(
            {
                "id": len(records),
                "patentID": pid,
                "patentdate": date,
                "figid": "1",
                "caption": "FIG. 1 is a front view",
                "object": "lamp",
                "aspect": "front view",
                "figure_file": src.name,
                "subfigure_file": None,
                "object_title": "Lamp",
            }
        )
    (year / "design2020.json").write_text(json.dumps(records))
    return year


def test_deeppatent2_protocol_split_is_written_and_reused(
    shared_data: Path, tmp_path: Path, settings, tiny_dirs: tuple[Path, Path]
) -> None:
    data = _deeppatent2_folder(shared_data, tmp_path / "dp2")
    out = tmp_path / "out"
    split_file = tmp_path / "split.json"
    args = ["--data-dir", str(settings.data_dir), "bench", "deeppatent2", "--data", str(data)]
    args += ["--encoders", str(tiny_dirs[0]), "--split-file", str(split_file), "--out", str(out), "--no-plots"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "| tiny-a | overall |" in res.output
    split = json.loads(split_file.read_text())
    assert split == json.loads((out / "split.json").read_text())
    q_pat = {k.split("/")[0] for k in split["queries"]}
    g_pat = {k.split("/")[0] for k in split["gallery"]}
    assert q_pat and g_pat and not q_pat & g_pat  # split by patent
    assert len(set(split["queries"]) | set(split["gallery"])) == 13 + 15  # every record's figure, once
    results = json.loads((out / "results.json").read_text())
    ds = results["datasets"][0]
    assert ds["protocol"] == "deeppatent2" and ds["relevance"] == "class" and ds["exclude_same_patent"]
    first = results["results"]["deeppatent2"][0]
    assert first["metrics"]["n_queries"] > 0
    assert first["agreement_max_abs_diff"] < 1e-9 and first["full_ranking"]
    # A second run with a different seed but the same split file reuses the split and gives the same numbers.
    res2 = CliRunner().invoke(main, [*args, "--seed", "7"], catch_exceptions=False)
    assert res2.exit_code == 0, res2.output
    again = json.loads((out / "results.json").read_text())
    assert again["results"]["deeppatent2"][0]["metrics"] == first["metrics"]
    assert again["results"]["deeppatent2"][0]["n_embedded_new"] == 0
    assert again["datasets"][0]["split_reused"] == str(split_file)


def test_deeppatent2_patent_relevance_splits_within_patents(
    shared_data: Path, tmp_path: Path, settings, tiny_dirs: tuple[Path, Path]
) -> None:
    data = _deeppatent2_folder(shared_data, tmp_path / "dp2")
    run = bench_deeppatent2(settings, [data], relevance="patent", encoders=[str(tiny_dirs[0])], seed=1)
    bench = run.sets["deeppatent2"]
    q_pat = {bench.items[i].patent_id for i in bench.queries}
    g_pat = {bench.items[i].patent_id for i in bench.gallery}
    assert q_pat and q_pat <= g_pat  # every query patent keeps figures in the gallery
    rep = run.results["deeppatent2"][0].report
    assert rep.n_queries == len(bench.queries) and 0.0 <= rep.overall["map"] <= 1.0


def test_deeppatent_lists_protocol_counts_resolved_entries(
    shared_data: Path, tmp_path: Path, settings, tiny_dirs: tuple[Path, Path]
) -> None:
    images = tmp_path / "images"
    sheets: dict[str, list[str]] = {}
    for src in sorted((shared_data / ORIGINALS).glob("*.png")):
        pid, date, _ = src.stem.split("-")
        rel = f"I{date}/{pid}-{date}/{src.name}"
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        (images / rel).symlink_to(src)
        sheets.setdefault(pid, []).append(rel)
    index = {pid: n for n, pid in enumerate(sorted(sheets), 1)}
    query, db = [], []
    for pid, rels in sheets.items():
        if len(rels) >= 2:
            query.append(f"{rels[0]} {index[pid]}")
            db.extend(f"{r} {index[pid]}" for r in rels[1:])
        else:
            db.append(f"{rels[0]} {index[pid]}")
    query += ["I20200107/USD0999999-20200107/USD0999999-20200107-D00001.png 99", "not/here.png 98"]
    db.append("I20200107/USD0999999-20200107/USD0999999-20200107-D00002.png 99")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "test_query_patent.txt").write_text("\n".join(query) + "\n")
    with gzip.open(lists / "test_db_patent.txt.gz", "wt") as f:
        f.write("\n".join(db) + "\n")
    out = tmp_path / "out"
    args = ["--data-dir", str(settings.data_dir), "bench", "deeppatent", "--lists", str(lists)]
    args += ["--images", str(images), "--encoders", str(tiny_dirs[0]), "--out", str(out), "--no-plots"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    ds = results["datasets"][0]
    n_multi = sum(1 for r in sheets.values() if len(r) >= 2)
    assert ds["query_entries"] == n_multi + 2 and ds["query_resolved"] == n_multi
    assert ds["db_entries"] == len(db) and ds["db_resolved"] == len(db) - 1
    m = results["results"]["deeppatent-test"][0]["metrics"]
    assert m["n_queries"] == n_multi and m["n_skipped_no_relevant"] == 0
    assert ds["relevance"] == "patent"


def test_bare_bench_writes_report_and_second_run_hits_the_cache(
    settings, tmp_path: Path, tiny_dirs: tuple[Path, Path]
) -> None:
    out = tmp_path / "report"
    kw = dict(encoders=[str(d) for d in tiny_dirs], shared_root=tmp_path / "no-shared", synth_patents=20, out=out)
    run = bench_folders(settings, **kw)
    assert set(run.results) == {"synthetic"}
    assert {"uspto-2021-sample", "uspto-design-2007-uspc"} <= set(run.skipped)
    methods = [r.method for r in run.results["synthetic"]]
    assert methods == ["tiny-a", "tiny-b"]
    assert all(r.n_embedded_new > 0 for r in run.results["synthetic"])
    for name in (
        "results.json",
        "results.md",
        "recall_synthetic.png",
        "tsne_synthetic_tiny-a.png",
        "grid_synthetic_tiny-b.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with Image.open(out / "recall_synthetic.png") as im:
        assert im.format == "PNG" and im.width > 100
    md = (out / "results.md").read_text()
    assert "## synthetic" in md and "| tiny-a | tail |" in md and "mAP" in md
    data = json.loads((out / "results.json").read_text())
    r0 = data["results"]["synthetic"][0]
    assert set(r0["metrics"]["overall"]) >= {"map", "recall@1", "recall@5", "recall@10", "mrr@10"}
    assert set(r0["recall_curve"]) >= {"1", "5", "10"}
    rerun = bench_folders(settings, **{**kw, "out": None})
    assert [r.n_embedded_new for r in rerun.results["synthetic"]] == [0, 0]
    for a, b in zip(rerun.results["synthetic"], run.results["synthetic"], strict=True):  # same vectors (ties aside)
        assert a.report.overall == pytest.approx(b.report.overall, abs=1e-3)


@pytest.mark.parametrize("store_kind", ["edge", "memory"])
def test_store_metrics_agree_with_exact_embedding_metrics(
    settings, synth_dir: Path, tiny_dirs: tuple[Path, Path], store_kind: str
) -> None:
    bench = folder_set(synth_dir, relevance="class", name="synthetic")
    assert bench.exclude_same_patent
    enc = load_encoder(tiny_dirs[1])
    with EmbeddingCache.for_settings(settings.cache_dir) as cache:
        full = evaluate_method(bench, enc, settings, cache, method="t", store_kind=store_kind)  # type: ignore[arg-type]
        cut = evaluate_method(bench, enc, settings, cache, method="t", k=3, store_kind=store_kind)  # type: ignore[arg-type]
    assert full.full_ranking and full.report.n_queries == full.exact.n_queries > 0
    for part in ("overall", "head", "tail"):
        a, b = getattr(full.report, part), getattr(full.exact, part)
        for key in a:
            assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == pytest.approx(b[key], abs=1e-9), key
    assert not cut.full_ranking and cut.depth == 3
    assert cut.report.overall["map"] == pytest.approx(full.exact.overall["map"])  # mAP from the exact ranking
    assert cut.report.overall["recall@1"] == pytest.approx(full.exact.overall["recall@1"])
    assert cut.store_map_at_k is not None and cut.store_map_at_k <= cut.report.overall["map"] + 1e-9
    assert cut.n_embedded_new == 0  # second evaluation reads every vector from the cache


def test_embedding_cache_round_trip(tmp_path: Path) -> None:
    vecs = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        cache.put_many("v1", ["a", "b", "c"], vecs)
        got = cache.get_many("v1", ["c", "a", "zz"])
        assert set(got) == {"a", "c"} and np.array_equal(got["c"], vecs[2])
        assert cache.get_many("v2", ["a"]) == {} and cache.count("v1") == 3


def test_speed_bench_tiny_writes_expected_keys(settings, tmp_path: Path, tiny_dirs: tuple[Path, Path]) -> None:
    out = tmp_path / "speed"
    r = bench_speed(
        settings, n_images=6, sizes=[300], n_queries=5, n_query_images=3, encoder=str(tiny_dirs[0]), out=out
    )
    data = json.loads((out / "speed.json").read_text())
    assert data == json.loads(json.dumps(r))
    assert {
        "environment",
        "ingest",
        "encoder_forward",
        "pipeline_overhead",
        "query_latency",
        "store",
        "peak_rss_mb",
    } <= set(data)
    assert data["environment"]["torch_threads"] >= 1 and data["environment"]["cpu_count"] >= 1
    assert data["ingest"]["ingested"] == 6 and data["ingest"]["images_per_s"] > 0
    assert data["encoder_forward"]["images_per_s"] > 0
    assert data["query_latency"]["n_queries"] == 3 and data["query_latency"]["search"]["p50_ms"] > 0
    (store,) = data["store"]
    assert store["size"] == 300 and store["dim"] == 16
    for name in ("none", "class", "year"):
        f = store[f"filter_{name}"]
        assert 0.0 <= f["recall@10"] <= 1.0 and f["store"]["p95_ms"] >= f["store"]["p50_ms"] > 0
    assert store["filter_class"]["matching_points"] == 6 and store["filter_class"]["recall@10"] == 1.0
    assert (out / "speed.md").read_text().startswith("# pir bench speed")
    assert not any(p.name.startswith("pir-speed-") for p in (settings.data_dir / "bench").iterdir())
    shutil.rmtree(out)
