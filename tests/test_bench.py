"""Bench protocols, embedding cache, store-vs-exact agreement, report files and the speed bench (tiny sizes)."""

from __future__ import annotations

import gzip
import json
import math
import re
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
def _text_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("text-cache") / "text_emb.sqlite"


@pytest.fixture()
def settings(settings, _text_cache: Path):  # noqa: F811  (conftest's settings, plus a module-wide text cache)
    """The conftest settings, with one text-embedding cache for the whole module: the galleries' words are the same
    in most tests, and MiniLM on them would otherwise dominate the module's time."""
    from pir.encoder.text import text_cache_path

    path = text_cache_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(_text_cache)  # SQLite resolves the link, so its WAL files sit next to the shared file
    return settings


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
    args += [
        "--encoders",
        str(tiny_dirs[0]),
        "--split-file",
        str(split_file),
        "--out",
        str(out),
        "--no-plots",
        "--no-enrich",
    ]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "| tiny-a | image | - | - | overall |" in res.output
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
    run = bench_deeppatent2(settings, [data], relevance="patent", encoders=[str(tiny_dirs[0])], seed=1, enrich=False)
    bench = run.sets["deeppatent2"]
    q_pat = {bench.items[i].patent_id for i in bench.queries}
    g_pat = {bench.items[i].patent_id for i in bench.gallery}
    assert q_pat and q_pat <= g_pat  # every query patent keeps figures in the gallery
    rep = run.results["deeppatent2"][0].report
    assert rep.n_queries == len(bench.queries)
    # The store's mAP equals a brute-force reference: cosine ranking of the same embeddings, AP per query by hand.
    enc = load_encoder(tiny_dirs[0])
    idx = sorted({*bench.queries, *bench.gallery})
    vec = dict(zip(idx, enc.encode_images([bench.items[i].path for i in idx]), strict=True))
    aps = []
    for q in bench.queries:
        ranked = sorted(bench.gallery, key=lambda g: -float(vec[g] @ vec[q]))
        rel = [bench.items[g].patent_id == bench.items[q].patent_id for g in ranked]
        hits = np.flatnonzero(rel)
        aps.append(float(np.mean([(n + 1) / (r + 1) for n, r in enumerate(hits)])))
    assert rep.overall["map"] == pytest.approx(float(np.mean(aps)), abs=1e-6)


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
    args += ["--images", str(images), "--encoders", str(tiny_dirs[0]), "--out", str(out), "--no-plots", "--no-enrich"]
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


@pytest.mark.slow  # two encoders, t-SNE and grid plots: ~30 s on an idle 2-core machine
def test_bare_bench_writes_report_and_second_run_hits_the_cache(
    settings, tmp_path: Path, tiny_dirs: tuple[Path, Path]
) -> None:
    out = tmp_path / "report"
    kw = dict(
        encoders=[str(d) for d in tiny_dirs],
        shared_root=tmp_path / "no-shared",
        synth_patents=20,
        out=out,
        enrich=False,
    )
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
    assert "## synthetic" in md and "| tiny-a | image | - |" in md and "| tail |" in md and "mAP [95% CI]" in md
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
        [full] = evaluate_method(bench, enc, settings, cache, method="t", store_kind=store_kind, enrich=False)  # type: ignore[arg-type]
        [cut] = evaluate_method(bench, enc, settings, cache, method="t", k=3, store_kind=store_kind, enrich=False)  # type: ignore[arg-type]
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
        settings, n_images=6, sizes=[300], n_queries=5, n_query_images=3, encoder=str(tiny_dirs[0]), out=out,
        cold=False,
    )  # fmt: skip
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
    ing = data["ingest"]
    assert ing["ingested"] == 6 and ing["images_per_s"] > 0
    assert data["encoder_forward"]["images_per_s"] > 0 and data["encoder_forward"]["paired_images_per_s"] > 0
    # the user's configuration: enrichment on at the settings' level, every figure with all three vectors
    assert ing["enrich"] and ing["enrich_level"] == settings.enrich.level
    assert ing["with_text_vector"] == ing["with_words_vector"] == 6
    assert {"enrich", "describe", "load", "embed", "text", "upsert"} <= set(ing["stage_share"])
    assert 0 < ing["text_share"] < 1 and 0 < ing["enrich_share"] < 1 and ing["per_million_figures"]["machine_hours"] > 0
    assert data["pipeline_overhead"]["forward_share_of_ingest"] > 0
    assert data["query_latency"]["n_queries"] == 3 and data["query_latency"]["search"]["p50_ms"] > 0
    (store,) = data["store"]
    assert store["size"] == 300 and store["dim"] == 16
    for name, matching in (("none", 300), ("class", 6), ("year", 150)):
        f = store[f"filter_{name}"]
        # 300 points: the store must find the exact top 10 (HNSW at this size, or an exact scan when filtered).
        assert f["matching_points"] == matching and f["recall@10"] >= 0.95, (name, f)
        assert f["store"]["p95_ms"] >= f["store"]["p50_ms"] > 0
    assert store["filter_class"]["matching_points"] == 6 and store["filter_class"]["recall@10"] == 1.0
    assert (out / "speed.md").read_text().startswith("# pir bench speed")
    assert not any(p.name.startswith("pir-speed-") for p in (settings.data_dir / "bench").iterdir())
    shutil.rmtree(out)


# --- honest evaluation: leakage guard, encoder splits, cache key, modes ---


def _relabelled_corpus(synth: Path, root: Path, titles: str, seed: int = 0) -> Path:
    """The synthetic corpus with USPC main classes as labels (codes and class titles would leak through enrichment)
    and titles that are either random strings (``random``) or the object's class words (``class``)."""
    import random

    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "images").symlink_to((synth / "images").resolve())
    rows = [json.loads(line) for line in (synth / "metadata.jsonl").read_text().splitlines()]
    out = []
    for r in rows:
        r["class_label"] = r["uspc"][0].split("-")[0]
        if titles == "random":
            r["title"] = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(9))
        r.pop("object_name", None)
        r.pop("description", None)  # the figure text names the object: class words either way
        out.append(json.dumps(r))
    (root / "metadata.jsonl").write_text("\n".join(out) + "\n")
    return root


def _payload_words(x: object) -> list[str]:
    """Every string value of a payload (the words that feed the text and BM25 vectors), not its keys."""
    if isinstance(x, dict):
        return [v for item in x.values() for v in _payload_words(item)]
    if isinstance(x, list):
        return [v for item in x for v in _payload_words(item)]
    return [str(x)] if x is not None else []


def test_leak_free_gallery_stores_no_class_code_or_title(settings, synth_dir: Path, tmp_path: Path) -> None:
    from pir.bench.evaluate import gallery_store, ingest_gallery, leak_free

    bench = folder_set(_relabelled_corpus(synth_dir, tmp_path / "c", "class"), relevance="class")
    enc = load_encoder(_tiny(tmp_path / "enc", 3))
    figures = [bench.items[i].as_figure() for i in bench.gallery[:12]]
    codes = {f.point_id: {f.class_label.lower(), *(c.lower() for c in f.uspc + f.locarno)} for f in figures}
    words: dict[str, dict[str, str]] = {}
    for kind, figs in (("raw", figures), ("leak-free", [leak_free(f) for f in figures])):
        with gallery_store(settings, f"leak-{kind}", "memory") as store:
            ingest_gallery(store, figs, settings, enc, {}, enrich=True)
            points = store.retrieve([f.point_id for f in figures])
        assert len(points) == len(figures) and all(p.payload.get("descriptions") for p in points)
        words[kind] = {p.id: " | ".join(_payload_words(p.payload)).lower() for p in points}
    # Stored as-is, the enrichment writes the class in ("... in the class of lighting (USPC D26)"): the check can fail.
    assert any("(uspc d" in text for text in words["raw"].values())
    for pid, text in words["leak-free"].items():
        tokens = set(re.split(r"[\s|(),.;:]+", text))
        assert not tokens & codes[pid] and "uspc" not in text and "locarno" not in text, text
        assert "in the class of" not in text and "classified as" not in text, text


def _chance_map(bench, rng: np.random.Generator, trials: int = 400) -> tuple[float, float]:
    """Mean and standard deviation of mAP over random rankings of the gallery (query's own patent excluded)."""
    from pir.core.metrics import average_precision

    shapes = []
    for q in bench.queries:
        it = bench.items[q]
        pool = [g for g in bench.gallery if bench.items[g].patent_id != it.patent_id]
        shapes.append((len(pool), sum(bench.items[g].label == it.label for g in pool)))
    maps = []
    for _ in range(trials):
        aps = []
        for n, r in shapes:
            rel = np.zeros(n, dtype=bool)
            rel[rng.choice(n, r, replace=False)] = True
            aps.append(average_precision(rel.tolist(), r))
        maps.append(np.mean(aps))
    return float(np.mean(maps)), float(np.std(maps))


def test_text_mode_on_random_titles_scores_at_chance(settings, synth_dir: Path, tmp_path: Path) -> None:
    from pir.bench.run import run_benchmark

    enc = str(_tiny(tmp_path / "enc", 4))
    res = {}
    for titles in ("random", "class"):
        bench = folder_set(_relabelled_corpus(synth_dir, tmp_path / titles, titles), relevance="class", name=titles)
        run = run_benchmark([bench], settings, encoders=[enc], modes="text", store_kind="memory", enrich=False)
        baseline, row = run.results[titles]  # the title-only baseline comes with every words run
        assert row.mode == "text" and row.n_queries_without_words == 0 and baseline.method == "title-only"
        res[titles] = (row.report.overall["map"], bench, baseline.report.overall["map"])
    chance, sd = _chance_map(res["random"][1], np.random.default_rng(0))
    for got in (res["random"][0], res["random"][2]):
        assert abs(got - chance) <= max(4 * sd, 0.03), (got, chance, sd)  # random titles: chance, so no leak
    assert res["class"][0] >= chance + 0.3, (res["class"][0], chance)  # class words in titles: far above it


def _split_dir(tmp_path: Path, tiny: Path, data: Path, **split: object) -> Path:
    enc = tmp_path / "trained"
    shutil.copytree(tiny, enc)
    (enc / "split.json").write_text(json.dumps({"data": [str(data.resolve())], **split}))
    return enc


def test_bench_refuses_to_query_training_patents(settings, synth_dir: Path, tmp_path: Path, tiny_dirs) -> None:
    bench = folder_set(synth_dir, relevance="class", name="synthetic")
    patents = sorted({it.patent_id for it in bench.items})
    enc = _split_dir(tmp_path, tiny_dirs[0], tmp_path / "elsewhere", train_patents=patents[:14], val_patents=[])
    args = ["--data-dir", str(settings.data_dir), "bench", "--data", str(synth_dir), "--encoders", str(enc)]
    res = CliRunner().invoke(main, [*args, "--no-plots", "--no-enrich", "--store", "memory"])
    assert res.exit_code != 0
    msg = res.output.strip().splitlines()[-1]
    assert "query patents were used to train or validate trained" in msg and "--allow-train-overlap" in msg, msg
    res = CliRunner().invoke(main, [*args, "--no-plots", "--no-enrich", "--store", "memory", "--allow-train-overlap"])
    assert res.exit_code == 0, res.output


def test_bench_evaluates_only_the_test_patents_of_the_training_data(
    settings, synth_dir: Path, tmp_path: Path, tiny_dirs
) -> None:
    from pir.bench.run import run_benchmark

    bench = folder_set(synth_dir, relevance="class", name="synthetic")
    patents = sorted({it.patent_id for it in bench.items})
    train, test = patents[:10], patents[10:]
    enc = _split_dir(tmp_path, tiny_dirs[0], synth_dir, train_patents=train, val_patents=[], test_patents=test)
    run = run_benchmark([bench], settings, encoders=[str(tiny_dirs[1]), str(enc)], store_kind="memory", enrich=False)
    used = run.sets["synthetic"]
    assert {it.patent_id for it in used.items} <= set(test) and used.notes["restricted_to"].startswith("the test")
    assert [r.method for r in run.results["synthetic"]] == ["tiny-b", "trained"]  # both on the same patents
    assert all(r.report.n_queries == len(used.queries) > 0 for r in run.results["synthetic"])
    # Without a test list the same data would be queried on training patents: refused.
    (enc / "split.json").write_text(json.dumps({"data": [str(synth_dir)], "train_patents": train, "val_patents": []}))
    from pir.bench.splits import TrainOverlapError

    with pytest.raises(TrainOverlapError, match="allow-train-overlap"):
        run_benchmark([folder_set(synth_dir, relevance="class")], settings, encoders=[str(enc)], store_kind="memory")


def test_embedding_cache_keys_on_device_and_dtype(settings, tmp_path: Path, tiny_dirs) -> None:
    from pir.bench.cache import cache_key, embed_paths

    enc = load_encoder(tiny_dirs[0])
    img = tmp_path / "a.png"
    im = Image.new("L", (64, 64), 255)
    im.paste(0, (10, 10, 50, 14))
    im.paste(0, (10, 10, 14, 50))
    im.save(img)
    paths = [img]
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        assert embed_paths(enc, paths, cache).n_new == 1
        assert embed_paths(enc, paths, cache).n_cached == 1
        assert cache_key(enc).endswith("|cpu|fp32")
        enc.compute_dtype = "bf16"  # type: ignore[attr-defined]  (as a bf16 run would state it)
        assert cache_key(enc).endswith("|cpu|bf16")
        again = embed_paths(enc, paths, cache)
        assert again.n_new == 1 and again.n_cached == 0  # a bf16 vector never serves an fp32 run, nor the reverse


def test_bench_metrics_is_the_shared_module() -> None:
    """One copy of the metrics: pir.bench.metrics defines none of pir.core.metrics' names (nor re-exports them)."""
    import pir.bench.metrics as bm
    import pir.core.metrics as m

    assert not set(bm.__all__) & set(m.__all__)
    assert all(getattr(bm, name, getattr(m, name)) is getattr(m, name) for name in m.__all__)


@pytest.mark.slow
@pytest.mark.integration
def test_cold_cli_timings_run_real_processes(settings, tmp_path: Path, tiny_dirs: tuple[Path, Path]) -> None:
    from pir.bench.speed import measure_cold_cli

    enc = load_encoder(tiny_dirs[0])
    c = measure_cold_cli(settings, enc, str(tiny_dirs[0]), tmp_path, n_ingest=12, store_size=50)
    assert c["n_ingest"] == 12 and c["ingest_figures"] == 12  # the subprocess really ingested every figure
    assert 0 < c["import_torch_s"] and 0 < c["help_s"] and c["search_s"] > 0 and c["ingest_figures_per_s"] > 0
