"""The synthetic patent-drawing corpus: long tail, metadata, determinism, drawings, CLI."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pir.cli import main
from pir.ingest.schema import PatentFigure
from pir.synth import (
    CLASS_ALIASES,
    CLASSES,
    VIEWS,
    draw_object,
    sample_params,
    synthesize_corpus,
    zipf_counts,
)


def _ink(img: Image.Image) -> float:
    return float((np.asarray(img) < 128).mean())


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synth") / "corpus"
    summary = synthesize_corpus(out, patents=30, seed=3)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return out, summary, records


def test_zipf_counts_long_tail() -> None:
    counts = zipf_counts(120, len(CLASSES))
    assert sum(counts) == 120
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 3 * counts[-1]
    assert min(counts) >= 2 and counts[-1] <= 4
    assert zipf_counts(20, 10) == [2] * 10
    with pytest.raises(ValueError, match="at least 2"):
        zipf_counts(19, 10)


def test_summary_and_files(corpus) -> None:
    out, summary, records = corpus
    assert summary.out == out
    assert summary.n_patents == 30 == sum(summary.class_counts.values())
    assert list(summary.class_counts) == list(CLASSES)
    counts = list(summary.class_counts.values())
    assert counts[0] > 3 * counts[-1] and min(counts) >= 2
    assert summary.n_figures == len(records) == len(list((out / "images").glob("*.png")))
    assert json.loads((out / "classes.json").read_text()) == CLASS_ALIASES
    per_class = defaultdict(set)
    for r in records:
        per_class[r["class_label"]].add(r["patent_id"])
    assert {c: len(p) for c, p in per_class.items()} == summary.class_counts
    assert "total" in summary.table() and "chair" in summary.table()


def test_metadata_records_are_patent_figures(corpus) -> None:
    out, _, records = corpus
    by_patent: dict[str, list[PatentFigure]] = defaultdict(list)
    for r in records:
        assert set(r) - {"file"} <= set(PatentFigure.model_fields)
        fields = {k: v for k, v in r.items() if k != "file"}
        fig = PatentFigure.model_validate({**fields, "image_path": out / r["file"]})
        assert fig.image_path.is_file() and r["file"] == f"images/{fig.patent_id}_{fig.figure_id}.png"
        assert fig.source_format == "synthetic"
        assert fig.viewpoint in VIEWS
        assert fig.class_label in CLASSES
        assert fig.uspc[0].startswith("D") and fig.locarno and fig.title
        assert date(2008, 1, 1) <= fig.publication_date <= date(2022, 12, 31)
        assert fig.publication_date.weekday() == 1  # a Tuesday, like US grants
        assert fig.description.startswith(f"FIG. {fig.figure_id[3:]} is ")
        by_patent[fig.patent_id].append(fig)
    ids = sorted(by_patent)
    assert ids[0] == "SYN0000001" and len(ids) == 30
    dates = [by_patent[p][0].publication_date for p in ids]
    assert dates == sorted(dates)  # numbers grow with the grant date
    for figs in by_patent.values():
        assert 3 <= len(figs) <= 6
        assert [f.figure_id for f in figs] == [f"FIG{k}" for k in range(1, len(figs) + 1)]
        assert figs[0].viewpoint == "perspective" and figs[1].viewpoint == "front"
        assert len({f.viewpoint for f in figs}) == len(figs)
        assert len({(f.title, f.class_label, tuple(f.uspc), f.publication_date) for f in figs}) == 1
        assert figs[0].object_name in figs[0].description and figs[1].description.endswith("thereof.")


def test_images_are_line_drawings(corpus) -> None:
    out, _, records = corpus
    for r in records:
        img = Image.open(out / r["file"])
        assert img.mode == "L" and img.size == (256, 256)
        a = np.asarray(img)
        assert 0.01 <= _ink(img) <= 0.25, (r["file"], _ink(img))
        assert (a > 240).mean() > 0.7  # mostly white paper


def test_views_of_one_patent_differ(corpus) -> None:
    out, _, records = corpus
    by_patent = defaultdict(list)
    for r in records:
        by_patent[r["patent_id"]].append(np.asarray(Image.open(out / r["file"]), dtype=np.int16))
    for arrays in by_patent.values():
        for i in range(len(arrays)):
            for j in range(i + 1, len(arrays)):
                assert np.abs(arrays[i] - arrays[j]).mean() > 1.0


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = synthesize_corpus(tmp_path / "a", patents=20, seed=7, image_size=64)
    synthesize_corpus(tmp_path / "b", patents=20, seed=7, image_size=64)
    synthesize_corpus(tmp_path / "c", patents=20, seed=8, image_size=64)
    ha, hb, hc = _hashes(tmp_path / "a"), _hashes(tmp_path / "b"), _hashes(tmp_path / "c")
    assert len(ha) == a.n_figures + 2
    assert ha == hb
    assert ha != hc


def test_draw_object_views_and_params() -> None:
    for cls in CLASSES:
        p = sample_params(cls, np.random.default_rng(0))
        front = draw_object(cls, p, "front", 128)
        assert front.mode == "L" and front.size == (128, 128)
        assert np.array_equal(np.asarray(front), np.asarray(draw_object(cls, p, "front", 128)))  # no rng: exact
        top = np.asarray(draw_object(cls, p, "top", 128), dtype=np.int16)
        assert np.abs(top - np.asarray(front, dtype=np.int16)).mean() > 1.0, cls
        other = sample_params(cls, np.random.default_rng(1))
        persp = [np.asarray(draw_object(cls, q, "perspective", 128), dtype=np.int16) for q in (p, other)]
        assert np.abs(persp[0] - persp[1]).mean() > 0.5, cls
        jittered = draw_object(cls, p, "perspective", 128, np.random.default_rng(5), label="FIG. 1")
        assert 0.005 < _ink(jittered) < 0.3


def test_options_and_errors(tmp_path: Path) -> None:
    s = synthesize_corpus(tmp_path / "v", patents=6, classes=["mug", "lamp"], views=("front", "top"), image_size=64)
    assert s.class_counts == {"mug": 4, "lamp": 2}
    records = [json.loads(line) for line in (tmp_path / "v" / "metadata.jsonl").read_text().splitlines()]
    assert [r["viewpoint"] for r in records] == ["front", "top"] * 6
    assert json.loads((tmp_path / "v" / "classes.json").read_text()) == {c: CLASS_ALIASES[c] for c in ("mug", "lamp")}
    small = synthesize_corpus(tmp_path / "s", patents=10, image_size=64)  # fewer than 2 per class: head classes only
    assert small.class_counts == dict.fromkeys(CLASSES[:5], 2)
    with pytest.raises(ValueError, match="unknown object classes"):
        synthesize_corpus(tmp_path / "x", patents=6, classes=["spaceship"])
    with pytest.raises(ValueError, match="unknown views"):
        synthesize_corpus(tmp_path / "x", patents=6, views=("sideways",))
    with pytest.raises(ValueError, match="at least 2"):
        synthesize_corpus(tmp_path / "x", patents=3, classes=["mug", "lamp"])
    with pytest.raises(ValueError, match="unknown object class"):
        sample_params("spaceship", np.random.default_rng(0))


def test_cli_synth(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(main, ["synth", str(out), "--patents", "22", "--seed", "2", "--image-size", "64"])
    assert r.exit_code == 0, r.output
    assert "chair" in r.output and "hinge" in r.output and "total" in r.output and "22" in r.output
    lines = (out / "metadata.jsonl").read_text().splitlines()
    assert Image.open(out / json.loads(lines[0])["file"]).size == (64, 64)
    bad = runner.invoke(main, ["synth", str(tmp_path / "bad"), "--patents", "1"])
    assert bad.exit_code != 0 and "at least 2 patents" in bad.output
