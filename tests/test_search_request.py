"""One search request for every front end: the CLI, the web API and the library build equal SearchRequests for equal
inputs, and the one runtime gives them equal results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from pir.cli import main
from pir.search.request import DEFAULT_TEXT_WEIGHT, SearchRequest, error_line
from tests.helpers import make_tiny_encoder


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("req")
    enc = make_tiny_encoder(root / "enc")
    runner = CliRunner()
    r = runner.invoke(main, ["synth", str(root / "corpus"), "--patents", "8", "--seed", "3", "--image-size", "96"])
    assert r.exit_code == 0, r.output
    data = root / "data"
    r = runner.invoke(
        main, ["--data-dir", str(data), "ingest", str(root / "corpus"), "--encoder", str(enc), "--no-enrich"]
    )
    assert r.exit_code == 0, r.output
    return {"root": root, "enc": enc, "data": data, "corpus": root / "corpus"}


def _records(env: dict[str, Path]) -> list[dict]:
    return [json.loads(x) for x in (env["corpus"] / "metadata.jsonl").read_text().splitlines() if x.strip()]


def test_url_form_round_trips_and_names_bad_parameters() -> None:
    q = SearchRequest(
        drawings=["a" * 64, "b" * 64], crops={1: {"x0": 0.1, "y0": 0.2, "x1": 0.6, "y1": 0.9}}, words="lamp",
        text_weight=0.3, fusion="weighted", classes=["D26", "26-05"], year_from=2001, year_to=2010,
        exclude_patents=["USD0907292"], one_per_patent=True, k=7, min_score=0.2, positives=["x"], strategy="best_score",
    )  # fmt: skip
    assert SearchRequest.from_params(q.to_params()) == q
    assert SearchRequest.from_params([("cls", "D26,26-05"), ("words", "lamp")]).classes == ["D26", "26-05"]
    for params, name in (
        ([("clss", "06")], "clss: unknown parameter"),
        ([("k", "0")], "k:"),
        ([("min_score", "nan")], "min_score: nan: not a finite number"),
        ([("year_from", "2010"), ("year_to", "2001")], "reversed range"),
        ([("q", "a" * 64), ("crop", "1:0,0,1,1")], "no drawing 1"),
        ([("words", "x" * 5000)], "words:"),
    ):
        with pytest.raises(ValidationError) as e:
            SearchRequest.from_params(params)
        assert name in error_line(e.value), (params, error_line(e.value))


def test_cli_web_and_library_build_equal_requests_and_get_equal_results(env: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient

    from pir.cli.search import build_request
    from pir.core.config import get_settings
    from pir.search.runtime import SearchRuntime
    from pir.web.app import create_app
    from pir.web.settings import ServeSettings

    rec = _records(env)[2]
    like = f"{rec['patent_id']}/{rec['figure_id']}"
    cli_given = {
        "like": like, "words": "chair with arms", "text_weight": 0.5, "fusion": "rrf", "classes": (),
        "year_from": None, "exclude_patents": (_records(env)[0]["patent_id"],), "one_per_patent": True, "k": 5,
    }  # fmt: skip
    web_params = [
        ("like", like), ("words", "chair with arms"), ("text_weight", "0.5"), ("fusion", "rrf"),
        ("exclude", _records(env)[0]["patent_id"]), ("per_patent", "1"), ("k", "5"),
    ]  # fmt: skip
    from_cli = build_request([], cli_given)
    from_web = SearchRequest.from_params(web_params)
    from_lib = SearchRequest(
        like=like, words="chair with arms", text_weight=0.5, fusion="rrf",
        exclude_patents=[_records(env)[0]["patent_id"]], one_per_patent=True, k=5,
    )  # fmt: skip
    assert from_cli == from_web == from_lib

    # the CLI command (its own process-like run: opens and closes the store)
    args = ["--data-dir", str(env["data"]), "search", "--like", like, "--text", "chair with arms"]
    args += [
        "--text-weight",
        "0.5",
        "--fusion",
        "rrf",
        "--exclude-patent",
        _records(env)[0]["patent_id"],
        "--one-per-patent",
        "--k",
        "5",
    ]
    r = CliRunner().invoke(main, [*args, "--encoder", str(env["enc"]), "--json"])
    assert r.exit_code == 0, r.output
    cli_answer = json.loads(r.stdout)
    settings = get_settings(data_dir=env["data"], qdrant={"url": None}, encoder={"name": str(env["enc"])})
    # the web API over HTTP (in-process ASGI client), then the library runtime, on the same store
    app = create_app(settings, ServeSettings())
    with TestClient(app) as client:
        web_answer = client.get("/api/search", params=web_params).json()
    with SearchRuntime.open(settings) as rt:
        lib = rt.execute(from_lib)
    cli_hits = [(h["id"], round(h["score"], 4)) for h in cli_answer["results"]]
    web_hits = [(h["id"], round(h["score"], 4)) for h in web_answer["results"]]
    lib_hits = [(h.id, round(h.score, 4)) for h in lib.results]
    assert cli_hits and cli_hits == web_hits == lib_hits
    assert len({h["patent_id"] for h in cli_answer["results"]}) == len(cli_hits)  # one per patent held
    assert _records(env)[0]["patent_id"] not in {h["patent_id"] for h in cli_answer["results"]}
    same = ("words", "text_weight", "like", "exclude_patents", "one_per_patent", "k")
    assert {k: cli_answer["query"][k] for k in same} == {k: web_answer["query"][k] for k in same}


def test_the_bench_builds_the_same_request_as_the_cli_and_the_web() -> None:
    from pir.bench.evaluate import bench_request
    from pir.cli.search import build_request

    bench = bench_request("image+text", "chair with arms", 50, "USD0907292", text_weight=0.5, fusion="rrf")
    cli = build_request(
        [],
        {"words": "chair with arms", "k": 50, "exclude_patents": ("USD0907292",), "text_weight": 0.5, "fusion": "rrf"},
    )
    web = SearchRequest.from_params(
        [
            ("words", "chair with arms"),
            ("k", "50"),
            ("exclude", "USD0907292"),
            ("text_weight", "0.5"),
            ("fusion", "rrf"),
        ]
    )
    assert bench == cli == web
    assert bench_request("image", "chair with arms", 5, None).words == ""  # image mode sends no words


def test_one_default_and_one_meaning_of_text_weight() -> None:
    assert SearchRequest().text_weight == DEFAULT_TEXT_WEIGHT
    assert SearchRequest(text_weight=0).text_weight == 0.0  # an explicit 0 is 0, never the default
    assert "text_weight" not in dict(SearchRequest(text_weight=0.5).to_params())  # without words it is not state


def test_the_bench_ranks_like_the_cli_and_the_web(env: dict[str, Path]) -> None:
    """The bench's query path (``bench_request`` executed by the runtime inside ``search_rankings``) ranks the stored
    figures as `pir search` and the web API do for the same words, drawing, fusion, k and excluded patent."""
    from fastapi.testclient import TestClient

    from pir.bench.datasets import BenchItem, BenchSet
    from pir.bench.evaluate import search_rankings
    from pir.core.config import get_settings
    from pir.encoder.model import load_encoder
    from pir.search import open_store
    from pir.search.runtime import load_query_image
    from pir.search.service import fuse
    from pir.web.app import create_app
    from pir.web.settings import ServeSettings

    recs = _records(env)
    items = [BenchItem(r["patent_id"], r["figure_id"], env["corpus"] / r["file"]) for r in recs]
    bench = BenchSet("req", items, [0], list(range(len(items))), "class", True, "folder")
    g_pos = {it.point_id: i for i, it in enumerate(items)}
    settings = get_settings(data_dir=env["data"], qdrant={"url": None}, encoder={"name": str(env["enc"])})
    words, depth, query = "chair with arms", 5, items[0]
    q_vec = fuse(load_encoder(env["enc"]).encode_images([load_query_image(query.path)]))[None, :]
    fusion = {"text_weight": 0.5, "fusion": "rrf"}
    with open_store(settings) as st:
        ranked = {
            mode: [items[i].point_id for i in search_rankings(st, bench, mode, [0], q_vec, [words], g_pos, depth,
                                                              settings, **fusion)[0]]
            for mode in ("text", "image+text")
        }  # fmt: skip
    args = ["--text", words, "--k", str(depth + 1), "--exclude-patent", query.patent_id, "--text-weight", "0.5"]
    args += ["--fusion", "rrf", "--encoder", str(env["enc"]), "--json"]
    params = [("words", words), ("k", str(depth + 1)), ("exclude", query.patent_id), ("text_weight", "0.5")]
    params += [("fusion", "rrf")]
    app = create_app(settings, ServeSettings())
    with TestClient(app) as client:
        up = client.post("/api/drawings", files=[("images", (query.path.name, query.path.read_bytes(), "image/png"))])
        assert up.status_code == 200, up.text
        digest = up.json()["drawings"][0]
        web = {
            "text": client.get("/api/search", params=params).json(),
            "image+text": client.get("/api/search", params=[("q", digest), *params]).json(),
        }
    for mode, drawing in (("text", []), ("image+text", [str(query.path)])):
        r = CliRunner().invoke(main, ["--data-dir", str(env["data"]), "search", *drawing, *args])
        assert r.exit_code == 0, r.output
        cli = json.loads(r.stdout)["results"]  # depth + 1 hits
        score = {h["id"]: round(h["score"], 4) for h in cli}
        want = [score[h["id"]] for h in cli][:depth]
        # the same ranking, up to the order of figures with equal scores (figures of one patent share its words)
        got = {"bench": ranked[mode], "web": [h["id"] for h in web[mode]["results"]][:depth]}
        for who, ids in got.items():
            assert len(ids) == depth and set(ids) <= set(score), (mode, who, ids, cli)
            assert [score[i] for i in ids] == want, (mode, who, ids, cli)
        assert [round(h["score"], 4) for h in web[mode]["results"]][:depth] == want, mode
    assert ranked["text"] != ranked["image+text"]  # the drawing counts: two different rankings agreed on


def test_bench_search_options_are_the_request_fields() -> None:
    """`pir bench --text-weight/--fusion` and `pir bench serve --k` are generated from SearchRequest like `pir
    search`'s (one definition, one validation)."""
    from pir.cli.bench import bench, bench_serve_cmd
    from pir.cli.search import search

    theirs = {p.name: p for p in search.params}
    for cmd, name in ((bench, "text_weight"), (bench, "fusion"), (bench_serve_cmd, "k")):
        a, b = {p.name: p for p in cmd.params}[name], theirs[name]
        assert a.opts == b.opts and a.help == b.help and a.default is None, name  # type: ignore[attr-defined]
        assert getattr(a.type, "choices", a.type) == getattr(b.type, "choices", b.type), name
    r = CliRunner().invoke(main, ["bench", "--text-weight", "2"])
    assert r.exit_code == 2 and "--text-weight: Input should be less than or equal to 1" in r.output, r.output
    r = CliRunner().invoke(main, ["bench", "serve", "--k", "0"])
    assert r.exit_code == 2 and "--k: Input should be greater than or equal to 1" in r.output, r.output
