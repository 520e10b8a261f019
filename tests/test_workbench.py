"""The examiner's workbench on the demo corpus (`pir synth DIR --patents 60 --seed 0`, drawn at 96 px): relevance
feedback that converges, per-file upload errors, PDF / multi-page TIFF queries, dates, facets, the score legend,
typed OpenAPI shapes, offline /docs and normalised patent ids, over a real `pir serve` (uvicorn) and httpx.

Relevance for the feedback test is "a chair with arms": the synthetic object's ``arms`` parameter, re-derived from
the corpus seed (checked against every stored title), as an examiner would judge "armchairs" by looking.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.test_web import _start

SEED, PATENTS = 0, 60
#: One patent renamed to a real-looking id, to check the id normalisation of the figure and like routes.
REAL_ID = "USD0907292"


@dataclass
class Demo:
    url: str
    corpus: Path
    rows: list[dict]
    armed: dict[str, bool]  # patent id -> a chair with arms


def _armed_chairs(seed: int, patents: int) -> dict[str, tuple[str, bool, str]]:
    """patent id -> (object class, has arms, title), re-derived as :func:`pir.synth.synthesize_corpus` draws them."""
    from pir.synth.catalog import CLASSES
    from pir.synth.corpus import _title, _tuesday, zipf_counts
    from pir.synth.registry import sample_params

    classes = list(CLASSES[: min(len(CLASSES), patents // 2)])
    labels = [c for c, n in zip(classes, zipf_counts(patents, len(classes)), strict=True) for _ in range(n)]
    labels = [labels[k] for k in np.random.default_rng(seed).permutation(len(labels))]
    plans = []
    for k, cls in enumerate(labels):
        rng = np.random.default_rng([seed, k])
        params = sample_params(cls, rng)
        title = _title(cls, params, rng)
        plans.append((_tuesday(rng), k, cls, bool(params.get("arms")), title))
    plans.sort(key=lambda t: (t[0], t[1]))
    return {f"SYN{i:07d}": (c, a, t) for i, (_, _, c, a, t) in enumerate(plans, start=1)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`pir serve` over the demo corpus: zero-shot encoder at 96 px, the patent's own words only (enrich none)."""
    from pir.core.config import get_settings
    from pir.pipeline import ingest
    from pir.synth import synthesize_corpus
    from pir.web.app import create_app
    from pir.web.settings import ServeSettings

    root = tmp_path_factory.mktemp("workbench")
    corpus = root / "corpus"
    synthesize_corpus(corpus, patents=PATENTS, seed=SEED, image_size=96)
    rows = [json.loads(x) for x in (corpus / "metadata.jsonl").read_text().splitlines() if x.strip()]
    truth = _armed_chairs(SEED, PATENTS)
    assert all(truth[r["patent_id"]][2] == r["title"] for r in rows)  # the re-derivation matches the corpus
    armed = {pid: cls == "chair" and arms for pid, (cls, arms, _) in truth.items()}
    renamed = next(r["patent_id"] for r in rows if r["class_label"] == "lamp")
    for r in rows:
        if r["patent_id"] == renamed:
            r["patent_id"] = REAL_ID
    armed[REAL_ID] = False
    (corpus / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # torch's thread count pinned for the ingest and the server: an earlier in-process test that set it to 1
    # changed the rounding of every vector, and the browser case's second feedback round then dipped (0.8 -> 0.7)
    settings = get_settings(
        data_dir=root / "pir",
        qdrant={"url": None},
        worker={"broker_url": None},
        encoder={"num_threads": 2},
        enrich={"level": "none"},
        image_size=96,
    )
    ingest(corpus, settings, show_progress=False)
    serve = ServeSettings(max_upload_bytes=300_000, max_pixels=4_000_000, max_concurrent=2, queue_timeout=60)
    url, server, thread = _start(create_app(settings, serve))
    try:
        yield Demo(url, corpus, rows, armed)
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)


@pytest.fixture(scope="module")
def api(demo: Demo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo.url, timeout=120) as c:
        yield c


def _upload(api: httpx.Client, paths: list[Path]) -> list[str]:
    r = api.post("/api/drawings", files=[("images", (p.name, p.read_bytes(), "image/png")) for p in paths])
    assert r.status_code == 200, r.text
    return r.json()["drawings"]


def _precision(hits: list[dict], demo: Demo) -> float:
    return sum(demo.armed[h["patent_id"]] for h in hits[:10]) / 10


# ------------------------------------------------------------------------------------------------- feedback
def test_two_feedback_rounds_raise_armchair_precision(api: httpx.Client, demo: Demo) -> None:
    """Every chair with arms (its perspective view) as the query, its own patent excluded; each round marks the new
    hits relevant or not, as an examiner would. Mean precision@10 rises strictly each round; the query stays the
    anchor (no query ends below where it started); feedback rounds report their real encode time."""
    queries = [r for r in demo.rows if demo.armed[r["patent_id"]] and r["viewpoint"] == "perspective"]
    assert len(queries) >= 8
    rounds = np.zeros((len(queries), 3))
    for i, row in enumerate(queries):
        (h,) = _upload(api, [demo.corpus / row["file"]])
        pos: list[str] = []
        neg: list[str] = []
        for rnd in range(3):
            params = {"q": h, "exclude": row["patent_id"], "k": "10", "pos": pos, "neg": neg}
            ans = api.get("/api/search", params=params).json()
            hits = ans["results"]
            assert len(hits) == 10 and not {x["id"] for x in hits} & set(neg)
            assert ans["encode_ms"] > 0  # the drawing is encoded on every round (it was "0.0 ms" on feedback)
            if rnd:
                assert ans["query"]["feedback"] == "rocchio" and len(ans["marks"]) == len(pos) + len(neg)
            rounds[i, rnd] = _precision(hits, demo)
            for x in hits:
                if x["id"] not in pos:
                    (pos if demo.armed[x["patent_id"]] else neg).append(x["id"])
    mean = rounds.mean(axis=0)
    assert mean[0] < mean[1] < mean[2], (mean, rounds)
    assert (rounds[:, 2] >= rounds[:, 0]).all(), rounds


def test_marks_undo_and_unknown_marks(api: httpx.Client, demo: Demo) -> None:
    row = next(r for r in demo.rows if demo.armed[r["patent_id"]] and r["viewpoint"] == "perspective")
    (h,) = _upload(api, [demo.corpus / row["file"]])
    hits = api.get("/api/search", params={"q": h, "k": "10"}).json()["results"]
    pos, neg = hits[3]["id"], hits[0]["id"]
    ans = api.get("/api/search", params={"q": h, "k": "10", "pos": pos, "neg": neg}).json()
    assert [(m["id"], m["mark"]) for m in ans["marks"]] == [(pos, "pos"), (neg, "neg")]
    assert pos in [x["id"] for x in ans["results"]] and neg not in [x["id"] for x in ans["results"]]
    # undo the not-relevant mark: it may come back
    undone = api.get("/api/search", params={"q": h, "k": "10", "pos": pos}).json()
    assert [m["id"] for m in undone["marks"]] == [pos] and neg in [x["id"] for x in undone["results"]]
    # the page form carries the marks, so a filter change keeps them
    page = api.get("/", params={"q": h, "pos": pos, "neg": neg}).text
    assert f'name="pos" value="{pos}"' in page and f'name="neg" value="{neg}"' in page and 'id="marks-tray"' in page
    r = api.get("/api/search", params={"q": h, "pos": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 404 and "not in the store" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------- uploads
def test_a_bad_file_among_good_ones_is_reported_and_the_rest_searched(api: httpx.Client, demo: Demo) -> None:
    good = [demo.corpus / r["file"] for r in demo.rows[:2]]
    files = [
        ("images", (good[0].name, good[0].read_bytes(), "image/png")),
        ("images", ("broken.png", good[1].read_bytes()[:300], "image/png")),
        ("images", ("notes.txt", b"not a drawing at all " * 20, "text/plain")),
        ("images", (good[1].name, good[1].read_bytes(), "image/png")),
    ]
    r = api.post("/api/search", files=files, data={"words": "chair", "cls": "D6", "k": "5"})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert [(e["file"], e["status"]) for e in ans["errors"]] == [("broken.png", 422), ("notes.txt", 415)]
    assert all(e["message"].startswith(e["file"]) and "\n" not in e["message"] for e in ans["errors"])
    assert len(ans["query"]["drawings"]) == 2 and ans["query"]["words"] == "chair" and ans["results"]
    # the page: the errors in place, the good drawings, words and filters kept, hits shown
    page = api.post("/search", files=files, data={"words": "chair", "cls": "D6", "k": "5"})
    assert page.status_code == 200
    assert 'id="upload-errors"' in page.text and "broken.png" in page.text and "notes.txt" in page.text
    assert page.text.count('class="qdraw"') == 2 and 'value="chair"' in page.text and 'value="D6"' in page.text
    assert 'id="grid"' in page.text and 'class="hit' in page.text
    # nothing searchable left: the first file's status, every file's error
    r = api.post("/api/search", files=files[1:3])
    assert r.status_code == 422 and [e["file"] for e in r.json()["errors"]] == ["broken.png", "notes.txt"]


def _two_page(fmt: str, pages: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    extra = {"compression": "tiff_deflate"} if fmt == "TIFF" else {}
    pages[0].save(buf, format=fmt, save_all=True, append_images=pages[1:], **extra)
    return buf.getvalue()


def test_pdf_and_multipage_tiff_pages_become_views(api: httpx.Client, demo: Demo) -> None:
    a, b = (Image.open(demo.corpus / r["file"]).convert("L") for r in demo.rows[:2])
    for fmt, name in (("PDF", "drawings.pdf"), ("TIFF", "drawings.tif")):
        data = _two_page(fmt, [a.resize((400, 400)), b.resize((400, 400))])
        r = api.post("/api/drawings", files=[("images", (name, data, "application/octet-stream"))])
        assert r.status_code == 200, r.text
        pages = r.json()["drawings"]
        assert len(pages) == 2 and len(set(pages)) == 2, (fmt, pages)
        pngs = [Image.open(io.BytesIO(api.get(f"/api/drawings/{h}.png").content)) for h in pages]
        assert all(min(p.size) > 100 for p in pngs)
        # each page is its own view: pick one, crop it, search
        ans = api.get("/api/search", params={"q": pages[1], "crop": "0:0.1,0.1,0.9,0.9", "k": "3"}).json()
        assert ans["query"]["drawings"] == [pages[1]] and ans["results"]
        # the compare view shows the view as it was searched: the crop, not the whole page
        whole = pngs[1].size
        part = Image.open(io.BytesIO(api.get(f"/api/drawings/{pages[1]}.png", params={"crop": "0,0,0.5,0.25"}).content))
        assert part.size == (round(whole[0] * 0.5), round(whole[1] * 0.25)), (part.size, whole)
        page = api.get("/", params={"q": pages[1], "crop": "0:0.1,0.1,0.9,0.9", "k": "3"}).text
        assert f'src="/api/drawings/{pages[1]}.png?crop=0.1,0.1,0.9,0.9"' in page
        bad = api.get(f"/api/drawings/{pages[1]}.png", params={"crop": "0.5,0,0.2,1"})
        assert bad.status_code == 422 and "x0 < x1" in bad.json()["detail"], bad.text
    too_many = _two_page("PDF", [a] * 8)
    r = api.post("/api/drawings", files=[("images", ("long.pdf", too_many, "application/pdf"))])
    assert r.status_code == 413 and "8 pages" in r.json()["detail"] and "\n" not in r.json()["detail"]


# -------------------------------------------------------------------------------- dates, scores, parameters
def test_date_filters_and_reversed_range(api: httpx.Client, demo: Demo) -> None:
    cut = sorted(r["publication_date"] for r in demo.rows)[len(demo.rows) // 2]
    for params, ok in (
        ({"before": cut}, lambda d: d < cut),
        ({"after": cut}, lambda d: d > cut),
        ({"after": "2005-01-01", "before": cut}, lambda d: "2005-01-01" < d < cut),
    ):
        ans = api.get("/api/search", params={"words": "chair", "k": "40", **params}).json()
        dates = {r["patent_id"]: r["publication_date"] for r in demo.rows}
        assert ans["results"] and all(ok(dates[h["patent_id"]]) for h in ans["results"]), params
    r = api.get("/api/search", params={"words": "chair", "after": "2012-05-01", "before": "2010-01-01"})
    assert r.status_code == 422 and "reversed" in r.json()["detail"] and "\n" not in r.json()["detail"]
    r = api.get("/api/search", params={"words": "chair", "before": "2010-13-45"})
    assert r.status_code == 422 and r.json()["detail"].startswith("before:")


def test_exclude_patent_is_case_insensitive(api: httpx.Client, demo: Demo) -> None:
    row = next(r for r in demo.rows if r["patent_id"].startswith("SYN"))
    like = f"{row['patent_id']}/{row['figure_id']}"
    base = api.get("/api/search", params={"like": like, "k": "30"}).json()["results"]
    assert row["patent_id"] in {h["patent_id"] for h in base}  # its other figures
    ex = api.get("/api/search", params={"like": like, "k": "30", "exclude": row["patent_id"].lower()}).json()
    assert ex["results"] and row["patent_id"] not in {h["patent_id"] for h in ex["results"]}


def test_unknown_parameters_are_named(api: httpx.Client) -> None:
    for path in ("/api/search", "/api/export.csv", "/"):
        r = api.get(path, params={"words": "chair", "clss": "06", "yeer": "2001"})
        assert r.status_code == 422, (path, r.status_code)
        detail = r.json()["detail"]
        assert "clss: unknown parameter" in detail and "yeer: unknown parameter" in detail


def test_score_legend_and_min_score(api: httpx.Client, demo: Demo) -> None:
    (h,) = _upload(api, [demo.corpus / demo.rows[0]["file"]])
    img = api.get("/api/search", params={"q": h, "k": "20"}).json()
    assert img["mode"] == "image" and "cosine" in img["score"]
    # the default fusion (zscore) is described as such, for words alone and for a drawing with words
    words = api.get("/api/search", params={"words": "chair", "k": "5"}).json()
    assert "standard-score" in words["score"] and "reciprocal" not in words["score"] and "drawing" not in words["score"]
    both = api.get("/api/search", params={"q": h, "words": "chair", "k": "5"}).json()
    assert "standard-score" in both["score"] and "drawing more than 2 spreads" in both["score"]
    cut = both["results"][2]["score"]  # min_score applies to the fused number the legend describes
    fused = api.get("/api/search", params={"q": h, "words": "chair", "k": "5", "min_score": str(cut)}).json()
    ref = {x["id"]: x["score"] for x in both["results"]}  # equal scores may come in either order: compare scores
    assert fused["results"] and all(x["score"] >= cut - 1e-4 for x in fused["results"])
    assert all(abs(ref[x["id"]] - x["score"]) < 1e-4 for x in fused["results"] if x["id"] in ref)
    assert {i for i, v in ref.items() if v > cut + 1e-4} <= {x["id"] for x in fused["results"]}
    rrf = api.get("/api/search", params={"words": "chair", "fusion": "rrf"}).json()
    assert "reciprocal-rank" in rrf["score"]
    weighted = api.get("/api/search", params={"words": "chair", "fusion": "weighted"}).json()
    assert "weighted sum" in weighted["score"]
    cut = img["results"][7]["score"]
    kept = api.get("/api/search", params={"q": h, "k": "20", "min_score": str(cut)}).json()["results"]
    assert kept and all(x["score"] >= cut - 1e-4 for x in kept) and len(kept) < len(img["results"])
    page = api.get("/", params={"q": h, "min_score": str(cut)}).text
    assert 'id="score-legend"' in page and "cosine" in page and f'value="{cut:g}"' in page


def test_facets_and_class_pick_list(api: httpx.Client, demo: Demo) -> None:
    ans = api.get("/api/search", params={"words": "lamp", "k": "15"}).json()
    hits = ans["results"]
    assert ans["facets"]["classes"]["lamp"] == sum(h["class_label"] == "lamp" for h in hits)
    assert sum(ans["facets"]["years"].values()) == len(hits)
    page = api.get("/").text
    options = re.findall(
        r'<option value="([^"]+)">([^<]+)</option>', page.split('id="cls-pick"')[1].split("</select>")[0]
    )
    by_code = dict(options)
    n_chair = sum(r["class_label"] == "chair" for r in demo.rows)
    assert by_code["chair"] == f"chair ({n_chair})"
    assert by_code["D6"].startswith("D6 Furnishings")  # USPC title from pir/data
    assert "06 " in by_code["06"] and "Furnishing" in by_code["06"]  # Locarno title


def test_clusters_group_look_alikes(api: httpx.Client, demo: Demo) -> None:
    ans = api.get("/api/search", params={"words": "chair lamp", "text_weight": "1", "k": "20", "clusters": "3"}).json()
    groups = ans["clusters"]
    ids = [h["id"] for h in ans["results"]]
    assert 2 <= len(groups) <= 3 and sorted(i for g in groups for i in g["ids"]) == sorted(ids)
    by_id = {h["id"]: h for h in ans["results"]}
    for g in groups:  # a label is a word most of the group's figures carry
        if g["label"] != "mixed":
            word = g["label"].split()[0]
            have = sum(word in f"{by_id[i]['title']} {by_id[i]['class_label']}".lower() for i in g["ids"])
            assert have * 2 >= len(g["ids"]), g
    assert (
        "clusters" not in api.get("/api/search", params={"words": "chair"}).json()["query"]
        or not (api.get("/api/search", params={"words": "chair"}).json()["clusters"])
    )
    page = api.get("/", params={"words": "chair lamp", "k": "20", "clusters": "3"}).text
    assert 'id="clusters-bar"' in page and 'data-cluster="0"' in page


# --------------------------------------------------------------------------------------- routes and schema
def test_patent_ids_are_normalised_on_figure_and_like_routes(api: httpx.Client) -> None:
    a = api.get(f"/api/figures/{REAL_ID}/FIG1")
    b = api.get("/api/figures/D907292/FIG1")
    assert a.status_code == b.status_code == 200 and a.json() == b.json() and a.json()["patent_id"] == REAL_ID
    like_a = api.get("/api/search", params={"like": f"{REAL_ID}/FIG1", "k": "5"}).json()["results"]
    like_b = api.get("/api/search", params={"like": "D907292/FIG1", "k": "5"}).json()["results"]
    assert like_a and [h["id"] for h in like_a] == [h["id"] for h in like_b]
    assert api.get("/api/patents/D907,292").json()["patent_id"] == REAL_ID


def test_openapi_has_the_real_shapes_and_docs_work_offline(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("SearchAnswer", "HitOut", "MarkOut", "FacetsOut", "FileErrorOut", "FigureOut", "PatentOut"):
        assert name in schemas, name
    assert {"errors", "marks", "facets", "score"} <= set(schemas["SearchAnswer"]["properties"])
    post = spec["paths"]["/api/search"]["post"]["responses"]
    assert "SearchAnswer" in json.dumps(post["200"]) and "ErrorOut" in json.dumps(post["415"])
    names = {p["name"] for p in spec["paths"]["/api/search"]["get"]["parameters"]}
    assert {"before", "after", "min_score", "pos", "neg", "cls"} <= names
    # no JSON handler answers an untyped dict: every /api GET documents a schema (InfoOut for /api/info)
    info = json.dumps(spec["paths"]["/api/info"]["get"]["responses"]["200"])
    assert "InfoOut" in info and {"encoder", "store", "limits", "searches"} <= set(schemas["InfoOut"]["properties"])
    docs = api.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    js = api.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000


# ------------------------------------------------------------------------------------------ saved / history
def test_saved_searches_and_history(api: httpx.Client, demo: Demo) -> None:
    url = "/?words=chair&text_weight=0.9&cls=D6&k=5"  # as the page writes it
    assert api.get(url, headers={"accept": "text/html"}).status_code == 200  # a page search is remembered
    recent = api.get("/api/history").json()
    assert recent[0]["url"] == url and recent[0]["hits"] == 5
    r = api.post("/api/saved", data={"name": "case 29/123 armchairs", "url": url})
    assert r.status_code == 200 and r.json()["name"] == "case 29/123 armchairs"
    saved = api.get("/api/saved").json()
    assert saved[0]["url"] == url and saved[0]["id"] == r.json()["id"]
    assert saved[0]["summary"] == '"chair" · class D6'  # the history page shows the search in words
    page = api.get("/history").text
    assert f'href="{url.replace("&", "&amp;")}"' in page and "case 29/123 armchairs" in page
    for bad in ("https://elsewhere.example/?q=1", "//elsewhere.example/", "/?clss=06"):
        r = api.post("/api/saved", data={"name": "x", "url": bad})
        assert r.status_code == 422, (bad, r.text)
    assert api.delete(f"/api/saved/{saved[0]['id']}").status_code == 204
    assert api.delete(f"/api/saved/{saved[0]['id']}").status_code == 404


def test_history_keeps_owners_apart(tmp_path: Path) -> None:
    from pir.web.history import MAX_HISTORY, History, owner_of

    h = History(tmp_path / "h.sqlite")
    a, b = owner_of("key-a"), owner_of("key-b")
    assert a != b and "key-a" not in a
    h.save(a, "mine", "/?words=lamp")
    for i in range(MAX_HISTORY + 5):
        h.record(a, f"/?words=lamp&k={i + 1}", i)
    h.record(a, f"/?words=lamp&k={MAX_HISTORY + 5}", 0)  # the same search twice in a row: once
    assert h.list(b, "saved") == [] and h.list(b, "history") == []
    assert [x["name"] for x in h.list(a, "saved")] == ["mine"]
    assert len(h.list(a, "history", limit=1000)) == MAX_HISTORY
    assert not h.delete(b, h.list(a, "saved")[0]["id"])  # another key cannot delete it


# --------------------------------------------------------------------------------------------------- browser
def _grid(page: object) -> list[dict]:
    return page.locator("#grid .hit").evaluate_all(  # type: ignore[attr-defined]
        "els => els.map(e => ({id: e.dataset.id, patent_id: e.dataset.patent, cls: e.className}))"
    )


@pytest.mark.slow
def test_browser_examiners_case(demo: Demo, tmp_path: Path) -> None:
    """An examiner's case in Chromium: a two-page PDF, pick a page, crop it, words, a date cut-off and a class from
    the pick-list, two feedback rounds (precision@10 rising), undo a mark, compare three hits, export, a phone-sized
    screen; then a bad file among good ones with the search kept. Screenshots under ``$PIR_SHOTS``."""
    import os

    from tests.test_web import _all_images_loaded, _chromium

    exe = _chromium()
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("PIR_SHOTS", "/tmp/web17-shots"))
    shots.mkdir(parents=True, exist_ok=True)
    armed = [r for r in demo.rows if demo.armed[r["patent_id"]] and r["viewpoint"] == "perspective"]
    lamp = next(r for r in demo.rows if r["class_label"] == "lamp" and r["viewpoint"] == "perspective")
    query = armed[0]
    pages = [Image.open(demo.corpus / r["file"]).convert("L").resize((500, 500)) for r in (query, lamp)]
    pdf = tmp_path / "application-drawings.pdf"
    pdf.write_bytes(_two_page("PDF", pages))
    dates = sorted(r["publication_date"] for r in demo.rows)
    cut = dates[int(len(dates) * 0.9)]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(60_000)
            page.goto(demo.url + "/")
            assert page.locator("h1").count() == 1
            assert page.get_attribute("#text_weight", "aria-label")
            # 1. a two-page PDF: two candidate views
            page.set_input_files("#images", [str(pdf)])
            page.click("#search-btn")
            page.wait_for_selector("#grid .hit")
            assert page.locator("#query-drawings .qdraw").count() == 2
            _all_images_loaded(page)
            page.screenshot(path=str(shots / "01-pdf-two-pages.png"), full_page=True)
            # 2. pick page 1, 3. crop it (the chair's middle)
            page.locator("#query-drawings .qdraw").nth(0).locator("a.pick").click()
            page.wait_for_selector("#grid .hit")
            assert page.locator("#query-drawings .qdraw").count() == 1
            _all_images_loaded(page)  # the drawing at its full size before the crop box is measured
            page.click(".crop-btn")  # armed: a hint; Esc cancels and nothing changes
            assert "Esc cancels" in page.inner_text(".crop-hint")
            page.keyboard.press("Escape")
            assert page.locator(".cropbox.cropping").count() == 0 and page.locator(".crop-hint").count() == 0
            assert "crop=" not in page.url
            page.click(".crop-btn")
            box = page.locator(".cropbox.cropping").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.05)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] * 0.95, steps=5)
            page.screenshot(path=str(shots / "02-cropping.png"))
            page.mouse.up()
            page.wait_for_url("**crop=0*")
            page.wait_for_selector("#grid .hit")
            assert "(cropped)" in page.inner_text("#query-drawings")
            # 4. words, a date cut-off and a class from the pick-list (picking submits the search)
            page.fill("#words", "chair")
            page.locator("#text_weight").fill("0.25")
            page.fill("#before", cut)
            with page.expect_navigation():
                page.select_option("#cls-pick", "chair")
            page.wait_for_selector("#grid .hit")
            assert f"before={cut}" in page.url and "cls=chair" in page.url and "words=chair" in page.url
            assert "standard-score" in page.inner_text("#score-legend")
            _all_images_loaded(page)
            page.screenshot(path=str(shots / "03-words-date-class.png"), full_page=True)
            # 5. two feedback rounds, marking as an examiner judges "a chair with arms"
            precision = []
            for rnd in range(3):
                hits = _grid(page)
                assert len(hits) == 10
                precision.append(sum(demo.armed[h["patent_id"]] for h in hits) / 10)
                print(f"\nround {rnd}: {page.url}\n  {[h['patent_id'] for h in hits]}")
                if rnd == 2:
                    break
                # as in the issue: two chairs with arms marked relevant, three without not, per round
                todo = {"pos": 2, "neg": 3}
                for i, h in enumerate(hits):
                    if "pos" in h["cls"].split() or "neg" in h["cls"].split():
                        continue
                    mark = "pos" if demo.armed[h["patent_id"]] else "neg"
                    if todo[mark]:
                        todo[mark] -= 1
                        button = page.locator("#grid .hit").nth(i).locator(f".mark[data-mark={mark}]")
                        button.click()
                        assert button.get_attribute("aria-pressed") == "true"
                page.screenshot(path=str(shots / f"04-marked-round{rnd + 1}.png"), full_page=True)
                with page.expect_navigation():
                    page.click("#feedback-btn")
                page.wait_for_selector("#grid .hit")
                _all_images_loaded(page)
                assert float(page.inner_text("#encode-ms")) > 0
                page.screenshot(path=str(shots / f"05-feedback-round{rnd + 1}.png"), full_page=True)
            print(f"\nbrowser case: armchair precision@10 per round {precision}")
            assert precision[0] < precision[1] < precision[2], (precision, page.url)
            assert f"before={cut}" in page.url and "cls=chair" in page.url  # filters kept through the rounds
            # 6. undo one mark from the tray
            n_marks = page.locator("#marks-tray .mark-item").count()
            undone = page.locator("#marks-tray .mark-item.neg").first.get_attribute("data-id")
            with page.expect_navigation():
                page.locator("#marks-tray .mark-item.neg").first.locator("a.undo").click()
            page.wait_for_selector("#grid .hit")
            assert page.locator("#marks-tray .mark-item").count() == n_marks - 1 and undone not in page.url
            _all_images_loaded(page)
            page.screenshot(path=str(shots / "06-undo.png"), full_page=True)
            # 7. compare three hits with the query, one zoom, synced panning
            for i in range(3):
                page.locator("#grid .hit").nth(i).locator(".compare-pick").check()
            page.click("#compare-btn")
            page.wait_for_selector("#compare-view:not([hidden])")
            assert page.locator("#cv-row .cv-item").count() == 4
            boxes = [page.locator("#cv-row .cv-box").nth(i).bounding_box() for i in range(4)]
            assert len({(round(b["y"]), round(b["width"]), round(b["height"])) for b in boxes}) == 1, boxes  # a row
            page.locator("#cv-zoom").fill("300")
            _all_images_loaded(page)
            page.locator("#cv-row .cv-box").nth(1).evaluate("b => { b.scrollLeft = 200; b.scrollTop = 150; }")
            page.wait_for_timeout(300)
            lefts = page.locator("#cv-row .cv-box").evaluate_all("bs => bs.map(b => b.scrollLeft)")
            assert len(set(lefts)) == 1 and lefts[0] > 0, lefts
            third = page.locator("#cv-row .cv-box").nth(2)  # dragging a zoomed drawing pans it, and the others too
            third.scroll_into_view_if_needed()
            b = third.bounding_box()
            assert b is not None
            page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
            page.mouse.down()
            page.mouse.move(b["x"] + b["width"] / 2 - 60, b["y"] + b["height"] / 2 - 40, steps=4)
            page.mouse.up()
            page.wait_for_timeout(300)
            after = page.locator("#cv-row .cv-box").evaluate_all("bs => bs.map(b => [b.scrollLeft, b.scrollTop])")
            assert len({tuple(x) for x in after}) == 1 and after[0][0] > lefts[0], (lefts, after)
            page.locator("#compare-view").screenshot(path=str(shots / "07-compare.png"))
            # 8. export
            with page.expect_download() as dl:
                page.click("#export-csv")
            rows = Path(dl.value.path()).read_text().splitlines()
            assert rows[0].startswith("rank,score,patent_id") and len(rows) == 11
            # 9. save the search, leave, reopen it from the history page: the same hits, marks and filters
            case_url, case_hits = page.url, [h["id"] for h in _grid(page)]
            page.fill("#save-name", "29/123,456 armchair")
            with page.expect_navigation():
                page.click("#save-btn")
            page.wait_for_selector("#saved")
            summary = page.inner_text("#saved li")  # the search in words, not its URL
            assert f"before {cut}" in summary and "class chair" in summary and "marked relevant" in summary, summary
            page.screenshot(path=str(shots / "08-saved-and-history.png"), full_page=True)
            page.goto(demo.url + "/")
            page.click("#history-link")
            with page.expect_navigation():
                page.locator("#saved a.reopen", has_text="29/123,456 armchair").click()
            page.wait_for_selector("#grid .hit")
            assert page.url == case_url and [h["id"] for h in _grid(page)] == case_hits
            # 10. a phone-sized screen: the hits first, the query folded away
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.set_default_timeout(60_000)
            phone.goto(page.url)
            phone.wait_for_selector("#grid .hit")
            assert phone.locator("#qbody").is_hidden()
            assert phone.locator("#grid").bounding_box()["y"] < phone.locator("#search-form").bounding_box()["y"]
            phone.screenshot(path=str(shots / "09-phone.png"))
            phone.close()
            # 11. a bad file among good ones: reported next to the drawings, the rest searched, nothing lost
            page.goto(demo.url + "/")
            bad = tmp_path / "scan-truncated.png"
            bad.write_bytes((demo.corpus / lamp["file"]).read_bytes()[:200])
            page.set_input_files("#images", [str(demo.corpus / query["file"]), str(bad)])
            page.fill("#words", "armchair")
            page.click("#search-btn")
            page.wait_for_selector("#upload-errors")
            _all_images_loaded(page)
            assert "scan-truncated.png" in page.inner_text("#upload-errors")
            assert page.locator("#query-drawings .qdraw").count() == 1 and page.input_value("#words") == "armchair"
            assert page.locator("#grid .hit").count() > 0 and "/search" not in page.url
            page.screenshot(path=str(shots / "10-bad-file-kept.png"), full_page=True)
            # 12. crop by keyboard there: Shift+arrows size the rectangle, arrows move it, Enter crops
            page.click(".crop-btn")
            for k in ["Shift+ArrowLeft"] * 4 + ["Shift+ArrowUp"] * 4 + ["ArrowRight"] * 2:
                page.keyboard.press(k)
            page.screenshot(path=str(shots / "11-keyboard-crop.png"))
            with page.expect_navigation():
                page.keyboard.press("Enter")
            page.wait_for_selector("#grid .hit")
            assert "crop=0%3A0.1000%2C0.0000%2C0.9000%2C0.8000" in page.url and "words=armchair" in page.url, page.url
            assert "(cropped)" in page.inner_text("#query-drawings")
        finally:
            browser.close()


def test_history_describes_a_search() -> None:
    from pir.web.history import describe

    url = (
        "/?q=ab12&q=cd34&crop=0%3A0.1%2C0.1%2C0.9%2C0.9&words=swivel+chair&cls=D6,06-01&after=2005-01-01"
        "&before=2021-07-27&year_to=2020&exclude=usd0907292&pos=a&pos=b&neg=c&min_score=0.5"
    )
    assert describe(url) == (
        '2 drawings (1 cropped) · "swivel chair" · class D6, 06-01 · not usd0907292 · after 2005-01-01 · '
        "before 2021-07-27 · years …-2020 · score >= 0.5 · 2 marked relevant, 1 not"
    )
    assert describe("/?like=USD0907292%2FFIG1") == "like USD0907292/FIG1" and describe("/") == "all figures"
