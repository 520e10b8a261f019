"""The bench's baselines and guards: title-only rows on the same queries, the enrichment ablation, bootstrap
intervals, paraphrased query words and the DeepPatent2 class-label guard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

import pir.encoder._tvshim  # noqa: F401  (before timm)
from pir.bench.metrics import bootstrap_ci, metric_intervals, per_query_metrics
from pir.cli import main
from pir.core.metrics import evaluate_rankings
from pir.encoder.model import EncoderConfig, PreprocessConfig, VisualEncoder, load_encoder, save_encoder_dir


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
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.random((16, 3, 64, 64), dtype=np.float32))
    with torch.no_grad():
        model.head.bias.copy_(-model.head.weight @ model.trunk(x).mean(0))
    return save_encoder_dir(path, cfg, model)


@pytest.fixture(scope="module")
def tiny_enc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory.mktemp("enc") / "tiny", 5)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pir.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("synth") / "corpus"
    synthesize_corpus(out, patents=6, seed=3)
    return out


# --- bootstrap intervals -----------------------------------------------------------------------------------------


def _naive_bootstrap(values: list[float], n: int, level: float, seed: int) -> tuple[float, float]:
    """Reference: one resample at a time, the same draws as the vectorised helper."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    means = sorted(sum(values[j] for j in row) / len(values) for row in idx)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, 1 - (1 - level) / 2))


def test_bootstrap_interval_contains_the_estimate_shrinks_and_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(1)
    small = rng.random(30).tolist()
    lo, hi = bootstrap_ci(small, n_resamples=500, seed=7)
    assert lo < float(np.mean(small)) < hi
    assert (lo, hi) == pytest.approx(_naive_bootstrap(small, 500, 0.95, 7))
    assert bootstrap_ci(small, n_resamples=500, seed=7) == (lo, hi)  # seeded: the same interval again
    widths = []
    for n in (20, 200, 2000):
        v = (rng.random(n) < 0.6).astype(float)
        a, b = bootstrap_ci(v, n_resamples=400, seed=0)
        assert a <= v.mean() <= b
        widths.append(b - a)
    assert widths[0] > widths[1] > widths[2] > 0
    assert bootstrap_ci([0.5, float("nan"), 0.5]) == (0.5, 0.5)  # queries without a relevant item are dropped
    assert all(np.isnan(bootstrap_ci([float("nan")])))


def test_per_query_metrics_average_to_the_report() -> None:
    rng = np.random.default_rng(2)
    rel = [(rng.random(rng.integers(0, 30)) < 0.3).tolist() for _ in range(40)]
    n_rel = [sum(r) + int(rng.integers(0, 3)) for r in rel]
    labels = [f"c{i % 4}" for i in range(40)]
    rep = evaluate_rankings(rel, n_rel, labels, ks=(1, 5, 10))
    per = per_query_metrics(rel, n_rel, (1, 5, 10))
    for m, v in rep.overall.items():
        assert np.nanmean(per[m]) == pytest.approx(v), m
    assert int((~np.isnan(per["map"])).sum()) == rep.n_queries
    cis = metric_intervals(per)
    assert set(cis) == {"map", "recall@10", "mrr@10"}
    assert all(lo <= rep.overall[m] <= hi for m, (lo, hi) in cis.items())


# --- paraphrased query words -------------------------------------------------------------------------------------


def test_paraphrase_differs_from_the_title_and_is_deterministic() -> None:
    from pir.bench.evaluate import query_words
    from pir.bench.paraphrase import paraphrase_title
    from pir.ingest.schema import PatentFigure

    titles = ["Chair", "Travel pillow", "Antenna", "Computer", "Lamp shade", "Bottle with a cap"]
    got = {t: paraphrase_title(t) for t in titles}
    assert sum(v is not None for v in got.values()) >= 5, got
    for t, p in got.items():
        if p is not None:
            assert p.lower() != t.lower() and p == paraphrase_title(t), (t, p)
    assert paraphrase_title("Qzxv frobnicator") is None and paraphrase_title("") is None
    fig = PatentFigure(patent_id="USD1", figure_id="1", image_path=Path("x.png"), title="Qzxv frobnicator")
    assert query_words(fig, "paraphrase", "class") == "Qzxv frobnicator"  # none found: the title is kept
    chair = fig.model_copy(update={"title": "Chair"})
    assert query_words(chair, "paraphrase", "class") == got["Chair"]


# --- rows: baselines, ablation, paraphrase, one set of queries -----------------------------------------------------


def test_baseline_and_ablation_rows_share_queries_and_carry_intervals(
    settings, synth_dir: Path, tiny_enc: Path, tmp_path: Path
) -> None:
    from pir.bench.datasets import folder_set
    from pir.bench.run import run_benchmark

    bench = folder_set(synth_dir, relevance="class", name="synthetic")
    run = run_benchmark(
        [bench], settings, encoders=[str(tiny_enc)], modes="image,text,image+text", query_text="title,paraphrase",
        enrich_levels="none,aliases", store_kind="memory", plots=False, out=tmp_path / "out", n_bootstrap=200,
    )  # fmt: skip
    rows = run.results["synthetic"]
    keys = [(r.method, r.mode, r.query_text, r.enrich) for r in rows]
    assert len(set(keys)) == len(keys) == 2 + 1 + 2 * 2 * 2  # title-only x2, image, (text, image+text) x words x level
    assert {k for k in keys if k[0] == "title-only"} == {
        ("title-only", "text", "title", "-"),
        ("title-only", "text", "paraphrase", "-"),
    }
    assert {r.enrich for r in rows if r.mode != "image" and r.method != "title-only"} == {"none", "aliases"}
    first = rows[0].query_keys
    assert first and all(r.query_keys == first and r.report.n_queries == rows[0].report.n_queries for r in rows)
    for r in rows:
        for m, (lo, hi) in r.intervals.items():
            assert lo - 1e-9 <= r.report.overall[m] <= hi + 1e-9, (r.label, m)
    para = [r for r in rows if r.query_text == "paraphrase"]
    assert all(r.n_queries_not_paraphrased is not None and r.n_queries_not_paraphrased < len(first) for r in para)
    # title-only is what it says: the gallery title nearest to the query's title (MiniLM cosine, computed here)
    from pir.search.words import get_text_encoder

    te = get_text_encoder(settings)
    (title_row,) = [r for r in rows if r.method == "title-only" and r.query_text == "title"]
    for qi, ranked in list(zip(title_row.query_items, title_row.rankings, strict=True))[:5]:
        q = bench.items[qi]
        pool = [g for g in bench.gallery if bench.items[g].patent_id != q.patent_id]
        sims = te.encode([bench.items[g].title for g in pool]) @ te.encode([q.title])[0]
        assert ranked[0] in pool and sims[pool.index(ranked[0])] == pytest.approx(sims.max(), abs=1e-5)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    saved = data["results"]["synthetic"]
    assert all(s["n_queries"] == len(first) and set(s["intervals"]) == {"map", "recall@10", "mrr@10"} for s in saved)
    assert data["environment"]["bootstrap"]["n_resamples"] == 200
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| title-only | cosine | paraphrase | - |" in md and "mAP [95% CI]" in md


def test_bench_cli_rejects_unknown_enrichment_level_and_query_words() -> None:
    r = CliRunner().invoke(main, ["bench", "--synth-patents", "0", "--enrich", "none,lots"])
    assert r.exit_code == 2 and "unknown --enrich level(s) lots" in r.output
    r = CliRunner().invoke(main, ["bench", "--synth-patents", "0", "--query-text", "title,slogan"])
    assert r.exit_code == 2 and "slogan" in r.output


# --- the class-label guard on the DeepPatent2 layout --------------------------------------------------------------


def _dp2_year(root: Path) -> Path:
    """A DeepPatent2 year folder (Segmented/ PNGs + one JSON record list) whose class (object name) is never in the
    title or caption: what reaches the gallery can only carry the label if the bench puts it there."""
    year = root / "2020"
    (year / "Segmented").mkdir(parents=True)
    records = []
    for p in range(10):
        obj, title = [("chair", "Housing"), ("bottle", "Panel")][p % 2]
        pid = f"USD09{p:05d}"
        for fig in (1, 2):
            name = f"{pid}-20200107-D0000{fig}_{fig}.png"
            im = Image.new("L", (96, 96), 255)
            d = ImageDraw.Draw(im)
            if obj == "chair":
                d.rectangle([20 + fig * 3, 20, 70, 75 - p], outline=0, width=3)
            else:
                d.ellipse([25, 15 + fig * 2, 65 - p, 80], outline=0, width=3)
            im.save(year / "Segmented" / name)
            records.append(
                {
                    "id": len(records), "patentID": pid, "patentdate": "20200107", "figid": fig,
                    "caption": f"FIG. {fig} is a perspective view", "object": obj, "aspect": "perspective view",
                    "figure_file": f"{pid}-20200107-D0000{fig}.png", "subfigure_file": name, "object_title": title,
                }
            )  # fmt: skip
    (year / "design2020.json").write_text(json.dumps(records))
    return year


def _strings(x: object) -> list[str]:
    if isinstance(x, dict):
        return [v for k, item in x.items() if k != "image_path" for v in _strings(item)]
    if isinstance(x, list):
        return [v for item in x for v in _strings(item)]
    return [str(x)] if x is not None else []


def test_deeppatent2_class_label_never_reaches_the_gallery(settings, tmp_path: Path, tiny_enc: Path) -> None:
    from pir.bench.datasets import deeppatent2_set
    from pir.bench.evaluate import gallery_figures, gallery_store, ingest_gallery, labelling_warnings

    bench, _ = deeppatent2_set([_dp2_year(tmp_path / "dp2")], relevance="class", seed=0)
    assert {bench.items[i].label for i in bench.gallery} == {"chair", "bottle"}
    figures = gallery_figures(bench, bench.gallery)
    enc = load_encoder(tiny_enc)
    for level in ("none", "full"):
        s = settings.model_copy(update={"enrich": settings.enrich.model_copy(update={"level": level})})
        with gallery_store(s, f"dp2-{level}", "memory") as store:
            n = ingest_gallery(store, figures, s, enc, {}, enrich=level != "none", include_class=False)
            points = store.retrieve([f.point_id for f in figures])
        assert n == len(points) == len(bench.gallery)
        if level == "full":
            assert all(p.payload.get("descriptions") for p in points)  # enrichment ran, from the title
        for p in points:
            text = " | ".join(_strings(p.payload)).lower()
            words = set(re.split(r"[^a-z]+", text))
            assert not words & {"chair", "chairs", "bottle", "bottles"}, text
    warn = labelling_warnings(bench, bench.queries, {"title": [bench.items[i].title for i in bench.queries]})
    assert any("DeepPatent2" in w and "labelling" in w for w in warn)


def test_labelling_warning_counts_queries_whose_words_hold_their_label(synth_dir: Path) -> None:
    from pir.bench.datasets import folder_set
    from pir.bench.evaluate import labelling_warnings

    bench = folder_set(synth_dir, relevance="class", name="synthetic")
    q = bench.queries[:6]
    own = [f"a {bench.items[i].label} of sorts" for i in q]
    (warn,) = labelling_warnings(bench, q, {"title": own})
    assert "in 6 of 6 queries" in warn
    assert labelling_warnings(bench, q, {"title": ["zzz"] * len(q)}) == []
