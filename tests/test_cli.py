"""The CLI end to end (click's runner in-process, one real subprocess): synth -> ingest -> info -> search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pir.cli import main
from tests.helpers import make_tiny_encoder


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    enc = make_tiny_encoder(root / "enc")
    runner = CliRunner()
    r = runner.invoke(main, ["synth", str(root / "corpus"), "--patents", "12", "--seed", "1", "--image-size", "128"])
    assert r.exit_code == 0, r.output
    data = root / "data"
    r = runner.invoke(main, ["--data-dir", str(data), "ingest", str(root / "corpus"), "--encoder", str(enc), "--json"])
    assert r.exit_code == 0, r.output
    return {"root": root, "enc": enc, "data": data, "corpus": root / "corpus"}


def _run(env: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str] | object:
    return CliRunner().invoke(main, ["--data-dir", str(env["data"]), *args])


def _records(env: dict[str, Path]) -> list[dict]:
    return [json.loads(x) for x in (env["corpus"] / "metadata.jsonl").read_text().splitlines() if x.strip()]


def test_info_reports_count_and_encoder(env: dict[str, Path]) -> None:
    r = _run(env, "info", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["count"] == len(_records(env)) and d["encoder"].startswith("tiny-test@") and d["backend"] == "edge"


def test_reingest_adds_nothing(env: dict[str, Path]) -> None:
    r = _run(env, "ingest", str(env["corpus"]), "--encoder", str(env["enc"]), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output[r.output.index("{") :])
    assert d["ingested"] == 0 and d["skipped"] == len(_records(env))


def test_search_table_and_json(env: dict[str, Path]) -> None:
    rec = _records(env)[0]
    img = env["corpus"] / rec["file"]
    r = _run(env, "search", str(img), "--k", "5", "--encoder", str(env["enc"]))
    assert r.exit_code == 0, r.output
    assert "score" in r.output and rec["patent_id"] in r.output
    r = _run(env, "search", str(img), "--k", "5", "--encoder", str(env["enc"]), "--json")
    d = json.loads(r.output)
    top, second = d["results"][0], d["results"][1]
    assert top["patent_id"] == rec["patent_id"] and top["figure_id"] == rec["figure_id"]
    assert top["score"] == pytest.approx(1.0, abs=1e-4) and second["score"] < top["score"]  # the query itself, first
    assert {"rank", "score", "patent_id", "figure_id", "title", "class_label"} <= set(top)


def test_search_filters(env: dict[str, Path]) -> None:
    recs = _records(env)
    rec = recs[0]
    img = str(env["corpus"] / rec["file"])
    enc = str(env["enc"])
    r = _run(env, "search", img, "--k", "50", "--encoder", enc, "--exclude-patent", rec["patent_id"], "--json")
    res = json.loads(r.output)["results"]
    assert res and all(x["patent_id"] != rec["patent_id"] for x in res)
    other_class = next(x["class_label"] for x in recs if x["class_label"] != rec["class_label"])
    r = _run(env, "search", img, "--k", "50", "--encoder", enc, "--class", other_class, "--json")
    res = json.loads(r.output)["results"]
    assert res and all(x["class_label"] == other_class for x in res)
    r = _run(env, "search", img, "--k", "50", "--encoder", enc, "--viewpoint", rec["viewpoint"], "--json")
    res = json.loads(r.output)["results"]
    assert res and all(x["viewpoint"] == rec["viewpoint"] for x in res)
    assert len(res) == sum(x["viewpoint"] == rec["viewpoint"] for x in recs)  # every such figure, nothing else
    year = int(rec["publication_date"][:4])
    r = _run(
        env, "search", img, "--k", "50", "--encoder", enc, "--year-from", str(year), "--year-to", str(year), "--json"
    )
    res = json.loads(r.output)["results"]
    assert res and all(x["year"] == year for x in res)
    r = _run(env, "search", img, "--k", "50", "--encoder", enc, "--one-per-patent", "--json")
    pats = [x["patent_id"] for x in json.loads(r.output)["results"]]
    assert len(pats) == len(set(pats)) == len({x["patent_id"] for x in recs})


def test_min_score_really_removes_hits(env: dict[str, Path]) -> None:
    """The threshold sits at the median of this query's own scores, so it must remove about half of the hits."""
    rec = _records(env)[0]
    img, enc = str(env["corpus"] / rec["file"]), str(env["enc"])
    scores = [
        x["score"]
        for x in json.loads(_run(env, "search", img, "--k", "50", "--encoder", enc, "--json").output)["results"]
    ]
    asc = sorted(set(scores))
    thr = (asc[len(asc) // 2 - 1] + asc[len(asc) // 2]) / 2  # between two scores: no float ties at the threshold
    r = _run(env, "search", img, "--k", "50", "--encoder", enc, "--min-score", repr(thr), "--json")
    kept = [x["score"] for x in json.loads(r.output)["results"]]
    assert 0 < len(kept) < len(scores) and len(kept) == sum(s >= thr for s in scores) and min(kept) >= thr


def test_multi_view_and_like_queries(env: dict[str, Path]) -> None:
    recs = _records(env)
    views = [env["corpus"] / x["file"] for x in recs if x["patent_id"] == recs[0]["patent_id"]][:3]
    r = _run(env, "search", *map(str, views), "--k", "3", "--encoder", str(env["enc"]), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["query"]["drawings"] == [str(v) for v in views]
    # the views are fused into one query: the answer is none of the single views' answers
    fused = [(x["patent_id"], x["figure_id"], x["score"]) for x in json.loads(r.output)["results"]]
    for v in views:
        one = json.loads(_run(env, "search", str(v), "--k", "3", "--encoder", str(env["enc"]), "--json").output)
        assert fused != [(x["patent_id"], x["figure_id"], x["score"]) for x in one["results"]], v
    key = f"{recs[1]['patent_id']}/{recs[1]['figure_id']}"
    r = _run(env, "search", "--like", key, "--k", "3", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)["results"]
    assert len(res) == 3 and all(f"{x['patent_id']}/{x['figure_id']}" != key for x in res)  # itself is no result
    assert [x["rank"] for x in res] == [1, 2, 3]
    r = _run(env, "search", "--like", "NOPE/FIG1")
    assert r.exit_code != 0 and "not in collection" in r.output


def test_text_search_works_without_a_trained_encoder(env: dict[str, Path]) -> None:
    """Words search the figures' own words (text + BM25 vectors): no trained visual encoder needed."""
    recs = _records(env)
    n_lamps = sum(x["class_label"] == "lamp" for x in recs)
    assert n_lamps >= 3, "the fixture corpus must hold lamps"
    r = _run(env, "search", "--text", "lamp with a curved arm", "--k", "3", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert [x["class_label"] for x in res] == ["lamp"] * 3


def test_wrong_encoder_for_collection_is_refused(env: dict[str, Path], tmp_path: Path) -> None:
    other = make_tiny_encoder(tmp_path / "o", name="other-encoder")
    img = str(env["corpus"] / _records(env)[0]["file"])
    r = _run(env, "search", img, "--encoder", str(other))
    assert r.exit_code != 0 and "was built with encoder" in r.output


def test_cuda_request_without_cuda_fails_loudly(env: dict[str, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    img = str(env["corpus"] / _records(env)[0]["file"])
    r = CliRunner().invoke(
        main, ["--data-dir", str(env["data"]), "--device", "cuda", "search", img, "--encoder", str(env["enc"])]
    )
    assert r.exit_code != 0 and "CUDA is not available" in r.output


@pytest.mark.integration
def test_console_script_runs_in_a_subprocess(env: dict[str, Path]) -> None:
    exe = Path(sys.executable).with_name("pir")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pir.cli"]
    out = subprocess.run(
        [*cmd, "--data-dir", str(env["data"]), "info", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PIR_QDRANT__URL": ""},
    )
    assert json.loads(out.stdout)["count"] == len(_records(env))


def test_user_input_is_normalised_like_the_payload(env: dict[str, Path]) -> None:
    recs = _records(env)
    rec = recs[0]
    img = str(env["corpus"] / rec["file"])
    enc = str(env["enc"])
    code = rec["uspc"][0]  # e.g. D6-361
    r = _run(env, "search", img, "--k", "50", "--encoder", enc, "--class", code.replace("-", "/").lower(), "--json")
    res = json.loads(r.output)["results"]
    assert res and all(code.split("-")[0] in x["classes"] for x in res)
    r = _run(env, "search", img, "--k", "50", "--encoder", enc, "--viewpoint", rec["viewpoint"].upper(), "--json")
    res = json.loads(r.output)["results"]
    assert res and all(x["viewpoint"] == rec["viewpoint"] for x in res)


def test_bad_query_image_and_bad_options_are_one_line_errors(env: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = _run(env, "search", str(bad), "--encoder", str(env["enc"]))
    assert r.exit_code == 1 and "broken.png" in r.output and "Traceback" not in r.output
    r = _run(env, "ingest", str(env["corpus"]), "--encoder", str(env["enc"]), "--column", "bogus_field=x")
    assert r.exit_code == 1 and "bogus_field" in r.output
    # the failed ingest touched nothing
    d = json.loads(_run(env, "info", "--json").output)
    assert d["count"] == len(_records(env))


def test_empty_folder_creates_no_collection(tmp_path: Path, env: dict[str, Path]) -> None:
    (tmp_path / "empty").mkdir()
    data = tmp_path / "d"
    r = CliRunner().invoke(
        main, ["--data-dir", str(data), "ingest", str(tmp_path / "empty"), "--encoder", str(env["enc"])]
    )
    assert r.exit_code == 1 and "no drawings found" in r.output
    d = json.loads(CliRunner().invoke(main, ["--data-dir", str(data), "info", "--json"]).output)
    assert d["count"] == 0 and not d.get("dim")


def test_text_search_with_a_text_aligned_encoder(tmp_path: Path) -> None:
    """An encoder trained into the MiniLM space answers `pir search --text` (here: projector into 384-d)."""
    enc = make_tiny_encoder(tmp_path / "aligned", embed_dim=384, name="tiny-aligned", text_model="minilm")
    runner = CliRunner()
    corpus = tmp_path / "corpus"
    assert (
        runner.invoke(main, ["synth", str(corpus), "--patents", "6", "--seed", "2", "--image-size", "96"]).exit_code
        == 0
    )
    data = tmp_path / "data"
    r = runner.invoke(main, ["--data-dir", str(data), "ingest", str(corpus), "--encoder", str(enc), "--no-enrich"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        [
            "--data-dir",
            str(data),
            "search",
            "--text",
            "lamp with a curved arm",
            "--k",
            "4",
            "--encoder",
            str(enc),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)  # stderr carries the text model's loading progress
    assert d["query"]["words"] == "lamp with a curved arm" and len(d["results"]) == 4
    scores = [x["score"] for x in d["results"]]
    assert scores == sorted(scores, reverse=True) and len({(x["patent_id"], x["figure_id"]) for x in d["results"]}) == 4
    # the aligned encoder matters for drawing + words: it adds the drawing's projection on the stored text vectors
    # (the cross-modal leg); without it (encoder=None, same image vector) the fused scores differ
    from pir.core.config import get_settings
    from pir.encoder.model import load_encoder
    from pir.search import open_store
    from pir.search.service import search_hybrid

    img, words = next((corpus / "images").glob("*.png")), "lamp with a curved arm"
    r = runner.invoke(main, ["--data-dir", str(data), "search", str(img), "--text", words, "--k", "4", "--encoder",
                             str(enc), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    cli = [x["id"] for x in json.loads(r.stdout)["results"]]
    settings = get_settings(data_dir=data, qdrant={"url": None}, worker={"broker_url": None})
    aligned = load_encoder(enc)
    vec = aligned.encode_images([img])[0]
    with open_store(settings) as st:
        with_leg = search_hybrid(st, settings, image_vector=vec, text=words, encoder=aligned, k=4).results
        without = search_hybrid(st, settings, image_vector=vec, text=words, encoder=None, k=4).results
    assert [h.id for h in with_leg] == cli
    assert [(h.id, round(h.score, 6)) for h in with_leg] != [(h.id, round(h.score, 6)) for h in without]


def test_build_filter_normalises_codes_ids_and_views() -> None:
    from pir.search.service import build_filter

    f = build_filter(
        classes=["D28/47", "d26", "a47g19/22", "26.05", "Lamp"],
        viewpoints=["Left side elevational"],
        exclude_patents=["D907,293", "US D907293 S"],
    )
    assert {"D28-47", "D26", "A47G 19/22", "26-05", "lamp"} <= set(f.classes)
    assert "left side" in f.viewpoints
    assert "USD0907293" in f.exclude_patents


def test_like_with_one_per_patent_keeps_the_figures_own_patent(env: dict[str, Path]) -> None:
    recs = _records(env)
    rec = recs[0]
    key = f"{rec['patent_id']}/{rec['figure_id']}"
    r = _run(env, "search", "--like", key, "--k", "50", "--one-per-patent", "--json")
    res = json.loads(r.output)["results"]
    pats = [x["patent_id"] for x in res]
    assert rec["patent_id"] in pats and len(pats) == len(set(pats))
    assert all(f"{x['patent_id']}/{x['figure_id']}" != key for x in res)
