"""`pir serve`: a real uvicorn server on an ephemeral port over a synthetic store, driven by httpx and a real browser.

The browser tests use Playwright for Python with Debian's ``chromium`` (``executable_path``; no browser download) and
skip with a reason when either is missing. Screenshots of each page state go to ``$PIR_SHOTS`` (default
``/tmp/pir-shots``).
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import shutil
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from pir.web.settings import ServeSettings, check_bind

SCRIPT_TITLE = "<script>alert('pwned')</script> Chair"
KEY = "s3cret-key"


@dataclass
class Live:
    url: str
    corpus: Path
    rows: list[dict]
    server: object
    data_dir: Path
    settings: object = None
    encoder: object = None
    store: object = None


def _start(app: object) -> tuple[str, object, threading.Thread]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, Live]]:
    """Two live servers over one synthetic store (14 patents, 96 px): an open one and one with an API key.

    Two enrichment descriptions per figure keep the ingest's text embedding (MiniLM on CPU) to a few seconds.
    """
    from pir.core.config import get_settings
    from pir.encoder.model import load_encoder
    from pir.pipeline import ingest
    from pir.search import open_store
    from pir.search.runtime import LockedStore
    from pir.synth import synthesize_corpus
    from pir.web.app import create_app
    from tests.helpers import make_tiny_encoder

    root = tmp_path_factory.mktemp("web")
    corpus = root / "corpus"
    synthesize_corpus(corpus, patents=14, seed=11, image_size=96)
    rows = [json.loads(x) for x in (corpus / "metadata.jsonl").read_text().splitlines() if x.strip()]
    # One patent's title carries markup (it must come back escaped); one figure is a 1-bit CCITT G4 TIFF.
    hostile = rows[0]["patent_id"]
    for r in rows:
        if r["patent_id"] == hostile:
            r["title"] = SCRIPT_TITLE
    g4 = rows[1]
    tif = corpus / "images" / (Path(g4["file"]).stem + ".tif")
    Image.open(corpus / g4["file"]).convert("L").point(lambda v: 255 if v > 128 else 0).convert("1").save(
        tif, compression="group4"
    )
    (corpus / g4["file"]).unlink()
    g4["file"] = f"images/{tif.name}"
    (corpus / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    enc_dir = make_tiny_encoder(root / "enc")
    settings = get_settings(
        data_dir=root / "pir",
        qdrant={"url": None},
        worker={"broker_url": None},
        encoder={"name": str(enc_dir)},
        enrich={"k": 2},
    )
    encoder = load_encoder(enc_dir)
    ingest(corpus, settings, encoder=encoder, show_progress=False)
    store = LockedStore(open_store(settings))
    open_cfg = ServeSettings(
        max_upload_bytes=200_000, max_pixels=1_000_000, max_concurrent=1, max_queued=4, queue_timeout=10
    )
    key_cfg = ServeSettings(host="127.0.0.1", api_key=KEY)
    url_a, srv_a, th_a = _start(create_app(settings, open_cfg, encoder=encoder, store=store))
    url_b, srv_b, th_b = _start(create_app(settings, key_cfg, encoder=encoder, store=store))
    try:
        yield (
            Live(url_a, corpus, rows, srv_a, settings.data_dir, settings, encoder, store),
            Live(url_b, corpus, rows, srv_b, settings.data_dir),
        )
    finally:
        for srv, th in ((srv_a, th_a), (srv_b, th_b)):
            srv.should_exit = True  # type: ignore[attr-defined]
            th.join(10)
        store.close()


@pytest.fixture(scope="module")
def api(live: tuple[Live, Live]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url, timeout=60) as c:
        yield c


def _views(live: Live, n: int = 2) -> list[Path]:
    """``n`` PNG views of one patent of the corpus (one with several figures)."""
    by_patent: dict[str, list[dict]] = {}
    for r in live.rows:
        if r["file"].endswith(".png"):
            by_patent.setdefault(r["patent_id"], []).append(r)
    rows = next(v for v in by_patent.values() if len(v) >= n)
    return [live.corpus / r["file"] for r in rows[:n]]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _upload(api: httpx.Client, files: list[tuple[str, bytes, str]], **data: str) -> httpx.Response:
    return api.post("/api/search", files=[("images", f) for f in files], data=data)


def _assert_clean(r: httpx.Response) -> None:
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text[:300]


# ------------------------------------------------------------------------------------------------------- API
def test_health_info_and_openapi(api: httpx.Client, live: tuple[Live, Live]) -> None:
    n = len(live[0].rows)
    assert api.get("/api/health").json() == {"status": "ok", "count": n}
    info = api.get("/api/info").json()
    assert info["store"]["count"] == n and info["encoder"]["name"] == "tiny-test" and info["limits"]["max_images"] == 7
    import torch

    assert info["limits"]["encode_threads"] == torch.get_num_threads()  # the app runs in this process
    paths = api.get("/openapi.json").json()["paths"]
    for p in ("/api/search", "/api/figures/{figure}", "/api/patents/{patent_id}", "/api/figures/{figure}/thumb"):
        assert p in paths
    assert api.get("/docs").status_code == 200


def test_search_two_views_with_filters_and_lookup(api: httpx.Client, live: tuple[Live, Live]) -> None:
    views = _views(live[0])
    files = [(p.name, p.read_bytes(), "image/png") for p in views]
    row = next(r for r in live[0].rows if r["file"].endswith(views[0].name))
    r = _upload(api, files, k="5", cls=row["class_label"], per_patent="1")
    assert r.status_code == 200, r.text
    ans = r.json()
    assert 0 < len(ans["results"]) <= 5 and len(ans["query"]["drawings"]) == 2
    assert all(row["class_label"] == h["class_label"] for h in ans["results"])
    assert len({h["patent_id"] for h in ans["results"]}) == len(ans["results"])  # one per patent
    assert "image_path" not in ans["results"][0]  # no server paths leak
    # the same search again from its URL (state in the URL; drawings kept server-side under their hash)
    again = api.get("/api/search" + ans["url"][1:]).json()
    assert [h["id"] for h in again["results"]] == [h["id"] for h in ans["results"]]
    top = ans["results"][0]
    fig = api.get(f"/api/figures/{top['id']}").json()
    assert fig["patent_id"] == top["patent_id"] and "image_path" not in fig
    assert api.get(f"/api/patents/{top['patent_id']}/figures/{top['figure_id']}").json()["id"] == top["id"]
    pat = api.get(f"/api/patents/{top['patent_id']}").json()
    n_figs = sum(1 for x in live[0].rows if x["patent_id"] == top["patent_id"])
    assert len(pat["figures"]) == n_figs
    # year range: every hit inside it
    year = int(row["publication_date"][:4])
    ranged = api.get("/api/search" + ans["url"][1:] + f"&year_from={year}&year_to={year}").json()["results"]
    assert ranged and all(h["year"] == year for h in ranged)
    # crop: a different query vector (other scores), still a valid search
    cropped = api.get("/api/search" + ans["url"][1:] + "&crop=0:0,0,0.5,0.5").json()
    assert cropped["query"]["crops"] == {"0": [0.0, 0.0, 0.5, 0.5]}
    assert cropped["results"] and [(h["id"], h["score"]) for h in cropped["results"]] != [
        (h["id"], h["score"]) for h in ans["results"]
    ]


def test_thumbnails_png_and_g4_tiff_cached(api: httpx.Client, live: tuple[Live, Live]) -> None:
    from pir.ingest.schema import point_id

    g4 = next(r for r in live[0].rows if r["file"].endswith(".tif"))
    pid = point_id(g4["patent_id"], g4["figure_id"])
    r = api.get(f"/api/figures/{pid}/thumb?size=256")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (256, 256) and img.convert("L").getextrema()[0] < 100  # some ink
    r2 = api.get(f"/api/figures/{pid}/thumb?size=256")
    assert r2.content == r.content
    cached = list((live[0].data_dir / "web" / "thumbs").glob(f"{pid}-*-256.png"))
    assert len(cached) == 1 and cached[0].read_bytes() == r.content
    # the second request is served from that file, not rendered again: a planted file is what comes back
    planted = _png(Image.new("L", (256, 256), 200))
    cached[0].write_bytes(planted)
    try:
        assert api.get(f"/api/figures/{pid}/thumb?size=256").content == planted
    finally:
        cached[0].write_bytes(r.content)
    assert api.get(f"/api/figures/{pid}/thumb?size=999").status_code == 400


def test_like_and_feedback_change_the_ranking(api: httpx.Client, live: tuple[Live, Live]) -> None:
    from pir.ingest.schema import point_id

    row = live[0].rows[3]
    like = point_id(row["patent_id"], row["figure_id"])
    base = api.get("/api/search", params={"like": like, "k": "8"}).json()["results"]
    assert like not in [h["id"] for h in base]
    neg, pos = base[0]["id"], base[2]["id"]
    fb = api.get("/api/search", params={"like": like, "k": "8", "neg": neg, "pos": pos}).json()["results"]
    ids = [h["id"] for h in fb]
    # Rocchio (the default): the not-relevant figure leaves, the relevant one stays a result and climbs to the top
    # (the query moved towards it: with the query left where it was it stays behind other hits)
    assert neg not in ids and pos in ids and ids[0] == pos, ids
    # one hit per patent: a marked figure's whole patent leaves the results
    grouped = api.get("/api/search", params={"like": like, "k": "8", "per_patent": "1"}).json()["results"]
    marked = grouped[0]
    again = api.get("/api/search", params={"like": like, "k": "8", "per_patent": "1", "neg": marked["id"]}).json()[
        "results"
    ]
    assert again and marked["patent_id"] not in [h["patent_id"] for h in again]
    best = api.get("/api/search", params={"like": like, "k": "8", "neg": neg, "strategy": "best_score"}).json()
    assert best["query"]["strategy"] == "best_score" and neg not in [h["id"] for h in best["results"]]
    assert api.get("/api/search", params={"like": like, "neg": neg, "strategy": "magic"}).status_code == 422
    r = api.get("/api/search", params={"pos": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 404 and "not in" in r.json()["detail"]


def test_words_only_and_why_it_matched(api: httpx.Client, live: tuple[Live, Live]) -> None:
    cls = live[0].rows[0]["class_label"]
    ans = api.get("/api/search", params={"words": f"{cls} front view", "k": "5"}).json()
    assert ans["results"] and ans["results"][0]["class_label"] == cls
    assert all(any(w in " ".join(h["why"]).lower() for w in (cls, "front", "view")) for h in ans["results"] if h["why"])
    assert any(h["why"] for h in ans["results"])


def test_exports(api: httpx.Client, live: tuple[Live, Live]) -> None:
    row = live[0].rows[0]
    params = {"like": f"{row['patent_id']}/{row['figure_id']}", "k": "6"}
    csv_r = api.get("/api/export.csv", params=params)
    assert csv_r.status_code == 200 and "attachment" in csv_r.headers["content-disposition"]
    lines = csv_r.text.strip().splitlines()
    assert lines[0].startswith("rank,score,patent_id") and len(lines) == 7
    js = api.get("/api/export.json", params=params).json()
    assert len(js["results"]) == 6 and js["query"]["like"] == params["like"]


def test_bad_uploads_get_clear_4xx(api: httpx.Client, live: tuple[Live, Live]) -> None:
    good = _views(live[0], 1)[0].read_bytes()
    cases: list[tuple[str, list[tuple[str, bytes, str]], int, str]] = [
        ("pdf", [("a.pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "application/pdf")], 422, "cannot read the PDF"),
        ("text", [("notes.png", b"hello, this is not an image at all" * 10, "image/png")], 415, "not an image"),
        ("truncated", [("t.png", good[: len(good) // 2], "image/png")], 422, "truncated"),
        ("bomb", [("bomb.png", _bomb_png(100_000, 100_000), "image/png")], 413, "bomb"),
        ("pixels", [("big.png", _png(Image.new("L", (1500, 1000), 255)), "image/png")], 413, "pixels"),
        ("bytes", [("noise.png", _png(Image.effect_noise((560, 560), 120)), "image/png")], 413, "bytes"),
        ("empty", [("e.png", b"", "image/png")], 422, "empty"),
    ]
    for name, files, status, words in cases:
        r = _upload(api, files)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert words.lower() in r.json()["detail"].lower(), (name, r.json())
        assert r.json()["errors"][0]["status"] == status and r.json()["errors"][0]["file"] == files[0][0]
        _assert_clean(r)
    # eight drawings: the first seven are searched, the eighth is reported
    r = _upload(api, [(f"v{i}.png", good, "image/png") for i in range(8)])
    assert r.status_code == 200 and r.json()["results"], r.text
    assert [e["file"] for e in r.json()["errors"]] == ["v7.png"] and "at most 7" in r.json()["errors"][0]["message"]
    # malformed parameters and a body that is not multipart at all
    for params in ({"q": "../../etc/passwd"}, {"k": "0"}, {"crop": "0:0,0,1,1"}, {"text_weight": "2"}, {"clss": "06"}):
        r = api.get("/api/search", params=params)
        assert r.status_code == 422, (params, r.text)
        assert next(iter(params)) in r.json()["detail"], (params, r.text)  # names the parameter
        _assert_clean(r)
    r = api.get("/api/search")  # nothing to search with
    assert r.status_code == 400 and "empty query" in r.json()["detail"]

    # a chunked body (no Content-Length) is cut off while it is read
    def chunks() -> Iterator[bytes]:
        yield b"--x\r\nContent-Disposition: form-data; name=images; filename=a.png\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 100_000

    r = api.post("/api/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "request body over" in r.json()["detail"], r.text
    r = api.post("/api/search", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"})
    assert 400 <= r.status_code < 500
    _assert_clean(r)


def test_stored_query_drawings_are_bounded(live: tuple[Live, Live], tmp_path: Path) -> None:
    """Beyond ``max_stored_mb`` the least recently used drawings go; the newest always stays; reuse refreshes."""
    from pir.web.engine import Engine, WebError

    lv = live[0]
    settings = lv.settings.model_copy(update={"data_dir": tmp_path})  # type: ignore[attr-defined]
    eng = Engine(settings, ServeSettings(max_stored_mb=0), encoder=lv.encoder, store=lv.store)  # type: ignore[arg-type]
    views = _views(lv, 2)
    first = eng.store_drawing(views[0].read_bytes(), views[0].name)
    assert eng.drawing_path(first).is_file()
    second = eng.store_drawing(views[1].read_bytes(), views[1].name)
    assert eng.drawing_path(second).is_file()
    with pytest.raises(WebError, match="upload it again") as e:
        eng.drawing_path(first)
    assert e.value.status == 404
    assert [p.name for p in (tmp_path / "web" / "drawings").iterdir()] == [second]


def test_images_only_for_stored_points(api: httpx.Client) -> None:
    for path in (
        "/api/figures/..%2F..%2F..%2Fetc%2Fpasswd/thumb",
        "/api/figures/%2Fetc%2Fpasswd/thumb",
        "/api/figures/123e4567-e89b-12d3-a456-426614174000/thumb",
        "/api/drawings/..%2F..%2Fetc%2Fpasswd.png",
        "/api/drawings/" + "0" * 64 + ".png",
        "/static/..%2F..%2Fengine.py",
    ):
        r = api.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "root:" not in r.text and "import" not in r.text
        _assert_clean(r)


def test_titles_are_escaped(api: httpx.Client, live: tuple[Live, Live]) -> None:
    hostile = next(r for r in live[0].rows if r["title"] == SCRIPT_TITLE)
    html = api.get(f"/patent/{hostile['patent_id']}").text
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    page = api.get("/", params={"like": f"{live[0].rows[1]['patent_id']}/{live[0].rows[1]['figure_id']}", "k": "40"})
    assert page.status_code == 200 and "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    assert api.get(f"/api/patents/{hostile['patent_id']}").json()["title"] == SCRIPT_TITLE  # JSON keeps the data
    assert "script-src 'self'" in page.headers["content-security-policy"]  # and no inline script would run


def test_concurrent_searches_are_bounded(api: httpx.Client, live: tuple[Live, Live]) -> None:
    """max_concurrent=1 on this server: a burst of 24 never runs more than one search at once; overflow gets 503."""
    views = _views(live[0])
    url = _upload(api, [(p.name, p.read_bytes(), "image/png") for p in views]).json()["url"]

    def one(_: int) -> int:
        with httpx.Client(base_url=live[0].url, timeout=60) as c:
            return c.get("/api/search" + url[1:]).status_code

    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        codes = list(ex.map(one, range(24)))
    assert set(codes) <= {200, 503} and codes.count(200) >= 1, codes
    assert 503 in codes  # the queue in front of the one slot holds 4
    searches = api.get("/api/info").json()["searches"]
    assert searches["peak"] == 1 and searches["running"] == 0 and searches["waiting"] == 0


def test_api_key_protects_every_route(live: tuple[Live, Live]) -> None:
    url = live[1].url
    routes = ["/", "/api/health", "/api/info", "/docs", "/openapi.json", "/api/search?like=x", "/static/app.js"]
    with httpx.Client(base_url=url, timeout=30) as c:
        for route in routes:
            assert c.get(route).status_code == 401, route
            assert c.get(route, headers={"X-API-Key": "wrong"}).status_code == 401, route
        assert c.post("/api/search", files=[("images", ("a.png", b"x", "image/png"))]).status_code == 401
        assert c.get("/api/health", headers={"X-API-Key": KEY}).json()["status"] == "ok"
        assert c.get("/", headers={"X-API-Key": KEY}).status_code == 200
        # a browser: ?api_key= once sets an http-only cookie for the following requests
        assert c.get("/", params={"api_key": KEY}).status_code == 200
        assert c.get("/api/info").status_code == 200


def test_binding_beyond_loopback_needs_a_key() -> None:
    with pytest.raises(ValueError, match="PIR_SERVE__API_KEY"):
        check_bind(ServeSettings(host="0.0.0.0"))
    with pytest.raises(ValueError, match="API key"):
        check_bind(ServeSettings(host="192.168.1.5", api_key="  "))
    check_bind(ServeSettings(host="0.0.0.0", api_key=KEY))
    check_bind(ServeSettings(host="::1"))
    check_bind(ServeSettings(host="localhost"))


def test_serve_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from pir.web.settings import get_serve_settings

    monkeypatch.setenv("PIR_SERVE__API_KEY", "k1")
    monkeypatch.setenv("PIR_SERVE__MAX_CONCURRENT", "3")
    s = get_serve_settings(port=9000)
    assert s.api_key is not None and s.api_key.get_secret_value() == "k1" and s.max_concurrent == 3 and s.port == 9000


def _bomb_png(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims ``w x h`` pixels (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------------- browser
def _chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright); browser tests skipped")
    exe = os.environ.get("PIR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("no Chromium found (apt-get install -y chromium, or set PIR_CHROMIUM); browser tests skipped")
    return exe


def test_browser_examiner_flow(live: tuple[Live, Live]) -> None:
    """Upload two views, filter, grid, open a hit, more like this, feedback changes the ranking, CSV, report, crop."""
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("PIR_SHOTS", "/tmp/pir-shots"))
    shots.mkdir(parents=True, exist_ok=True)
    views = _views(live[0])
    row = next(r for r in live[0].rows if r["file"].endswith(views[0].name))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(live[0].url + "/")
            page.screenshot(path=str(shots / "01-start.png"))
            page.set_input_files("#images", [str(p) for p in views])
            page.fill("#cls", row["class_label"])
            page.fill("#words", f"{row['class_label']} perspective")
            page.screenshot(path=str(shots / "02-query.png"))
            page.click("#search-btn")
            page.wait_for_selector("#grid .hit")
            assert "q=" in page.url and "cls=" in page.url
            hits = page.locator("#grid .hit")
            assert hits.count() > 0 and page.locator(".qdraw").count() == 2
            for text in hits.locator(".small").all_inner_texts():
                assert row["class_label"] in text
            _all_images_loaded(page)
            page.screenshot(path=str(shots / "03-results.png"), full_page=True)
            results_url = page.url

            # crop the first view: drag a rectangle, the search reloads with crop=0:...
            page.click(".crop-btn[data-index='0']")
            box = page.locator(".qdraw[data-index='0'] .cropbox").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + 2, box["y"] + 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=4)
            page.mouse.up()
            page.wait_for_url("**crop=0*")
            page.wait_for_selector("#grid .hit")
            assert page.locator(".qdraw[data-index='0'] .croprect").count() == 1
            page.screenshot(path=str(shots / "04-cropped.png"), full_page=True)

            # open a hit: its patent with all its figures, side by side with the query
            page.goto(results_url)
            first = page.locator("#grid .hit").first
            patent_id = first.get_attribute("data-patent")
            first.locator("a.open").click()
            page.wait_for_selector("#figures .hit")
            n_figs = sum(1 for r in live[0].rows if r["patent_id"] == patent_id)
            assert page.locator("#figures .hit").count() == n_figs
            assert page.locator("#compare .qdraw").count() == 2
            _all_images_loaded(page)
            page.locator("#zoom").fill("200")
            page.screenshot(path=str(shots / "05-patent.png"), full_page=True)

            # more like this
            page.click("#more-like")
            page.wait_for_selector("#grid .hit")
            assert "like=" in page.url
            page.screenshot(path=str(shots / "06-more-like-this.png"), full_page=True)
            before = page.locator("#grid .hit").evaluate_all("els => els.map(e => e.dataset.id)")

            # relevance feedback: top hit not relevant, third relevant -> the ranking changes
            page.locator("#grid .hit").nth(0).locator(".mark[data-mark=neg]").click()
            page.locator("#grid .hit").nth(2).locator(".mark[data-mark=pos]").click()
            page.screenshot(path=str(shots / "07-marked.png"), full_page=True)
            page.click("#feedback-btn")
            page.wait_for_url("**neg=*")
            page.wait_for_selector("#grid .hit")
            after = page.locator("#grid .hit").evaluate_all("els => els.map(e => e.dataset.id)")
            # the not-relevant figure leaves; the relevant one stays (shown marked) and climbs to the top: the query
            # moved towards it (excluding the marked figures alone would leave it behind other hits)
            assert after != before and before[0] not in after and after[0] == before[2], (before, after)
            assert (
                page.locator(f'#grid .hit.pos[data-id="{before[2]}"] .mark[data-mark=pos]').get_attribute(
                    "aria-pressed"
                )
                == "true"
            )
            assert page.locator("#marks-tray .mark-item").count() == 2
            page.screenshot(path=str(shots / "08-feedback.png"), full_page=True)
            # a second round adds to the first (the tray's marks stay in the URL)
            page.locator("#grid .hit:not(.pos):not(.neg)").nth(0).locator(".mark[data-mark=neg]").click()
            with page.expect_navigation():
                page.click("#feedback-btn")
            page.wait_for_selector("#grid .hit, #grid .empty")
            assert page.url.count("neg=") == 2 and page.url.count("pos=") == 1
            assert "1 relevant, 2 not relevant" in page.inner_text("#marks-tray")
            page.go_back()
            page.wait_for_selector("#grid .hit")

            # export CSV
            with page.expect_download() as dl:
                page.click("#export-csv")
            text = Path(dl.value.path()).read_text()
            assert text.splitlines()[0].startswith("rank,score,patent_id") and len(text.splitlines()) == len(after) + 1

            # printable report
            page.goto(live[0].url + page.locator("#report").get_attribute("href"))
            page.wait_for_selector("#report table.hits")
            _all_images_loaded(page)
            assert "Prior-art search report" in page.content()
            page.screenshot(path=str(shots / "09-report.png"), full_page=True)

            # a bad upload shows a readable error, no traceback
            page.goto(live[0].url + "/")
            pdf = shots / "not-a-drawing.pdf"
            pdf.write_bytes(b"%PDF-1.4\n%fake\n")
            page.set_input_files("#images", [str(pdf)])
            page.click("#search-btn")
            page.wait_for_selector("#upload-errors")
            assert "PDF" in page.inner_text("#upload-errors") and "Traceback" not in page.content()
            page.screenshot(path=str(shots / "10-bad-upload.png"))
        finally:
            browser.close()


def _all_images_loaded(page: object, timeout: float = 30.0) -> None:
    """Every <img> on the page (lazy ones too) is loaded and decoded: thumbnails are not refused under load.

    Polled from Python: ``wait_for_function`` would need ``eval``, which the page's Content-Security-Policy forbids.
    """
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # type: ignore[attr-defined]
    deadline = time.time() + timeout
    js = "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    while not page.evaluate(js):  # type: ignore[attr-defined]
        assert time.time() < deadline, "some images did not load"
        time.sleep(0.1)
    page.evaluate("window.scrollTo(0, 0)")  # type: ignore[attr-defined]


def test_cli_serve_refuses_a_public_bind_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pir serve --host 0.0.0.0` without PIR_SERVE__API_KEY: one line, exit 1, before anything is loaded."""
    from click.testing import CliRunner

    from pir.cli import main

    monkeypatch.delenv("PIR_SERVE__API_KEY", raising=False)
    r = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "serve", "--host", "0.0.0.0", "--port", "1"])
    assert r.exit_code == 1 and "PIR_SERVE__API_KEY" in r.output and "Traceback" not in r.output
    assert "--host" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_server_backend_in_memory(tmp_path: Path) -> None:
    """The same app over the qdrant-client store (``:memory:`` here, a server in production), six searches at once."""
    from pir.core.config import get_settings
    from pir.encoder.model import load_encoder
    from pir.pipeline import ingest
    from pir.search import open_store
    from pir.synth import synthesize_corpus
    from pir.web.app import create_app
    from tests.helpers import make_tiny_encoder

    synthesize_corpus(tmp_path / "corpus", patents=4, seed=5, image_size=64)
    enc_dir = make_tiny_encoder(tmp_path / "enc")
    settings = get_settings(
        data_dir=tmp_path / "pir", qdrant={"url": ":memory:"}, encoder={"name": str(enc_dir)}, enrich={"k": 1}
    )
    encoder = load_encoder(enc_dir)
    store = open_store(settings)
    ingest(tmp_path / "corpus", settings, encoder=encoder, store=store, show_progress=False)
    url, server, thread = _start(create_app(settings, ServeSettings(max_concurrent=2), encoder=encoder, store=store))
    try:
        img = next((tmp_path / "corpus" / "images").glob("*.png")).read_bytes()

        def one(_: int) -> int:
            with httpx.Client(base_url=url, timeout=60) as c:
                r = c.post("/api/search", files=[("images", ("q.png", img, "image/png"))], data={"k": "3"})
                return len(r.json()["results"]) if r.status_code == 200 else -r.status_code

        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            assert list(ex.map(one, range(6))) == [3] * 6
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/api/info").json()["store"]["backend"] == "server"
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)
        store.close()


def test_a_server_shares_the_cores_among_its_concurrent_searches() -> None:
    """Unless PIR_ENCODER__NUM_THREADS is set, each of max_concurrent searches gets cores // max_concurrent torch
    threads (at least 1): two searches encoding at once with every core each oversubscribed the CPU."""
    from pir.core.config import get_settings
    from pir.web.app import with_server_threads

    cores = len(os.sched_getaffinity(0))
    s = get_settings(data_dir="/nonexistent-pir", qdrant={"url": None})
    assert s.encoder.num_threads is None
    assert with_server_threads(s, ServeSettings(max_concurrent=2)).encoder.num_threads == max(1, cores // 2)
    assert with_server_threads(s, ServeSettings(max_concurrent=10 * cores)).encoder.num_threads == 1
    own = s.model_copy(update={"encoder": s.encoder.model_copy(update={"num_threads": 3})})
    assert with_server_threads(own, ServeSettings(max_concurrent=2)).encoder.num_threads == 3
    assert s.encoder.num_threads is None  # the caller's settings are not changed
