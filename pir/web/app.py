"""HTTP layer of ``pir serve`` (FastAPI): the JSON API under ``/api`` and the examiner's page, over :class:`Engine`.

FastAPI + uvicorn: standard ASGI, OpenAPI docs for free (``/docs``), multipart uploads through Starlette, and
blocking work (encoding, the store) pushed to worker threads. Concurrency: at most ``max_concurrent`` searches and
upload decodes run at once (an asyncio semaphore in front of a worker thread each); at most ``max_queued``
more wait, up to ``queue_timeout`` seconds, and the rest get 503 at once, so a burst cannot pile up decoded images
in memory. Thumbnails and query drawings have a separate limiter of the same width with a long queue (a results
page asks for k of them at once; they are cached on disk). The embedded store itself is locked in
:class:`pir.web.engine.LockedStore`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile

from pir.config import Settings
from pir.web.engine import Engine, Query, WebError, export_csv
from pir.web.settings import ServeSettings, check_bind, get_serve_settings

if TYPE_CHECKING:
    from pir.encoder.model import ImageEncoder
    from pir.search.store import VectorStore

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
T = TypeVar("T")
VIEWPOINTS = ["perspective", "front", "rear", "left side", "right side", "side", "top", "bottom", "detail"]
API_KEY_HEADER = "X-API-Key"
#: Pages run only this server's script (no inline script: a stored title cannot run even if escaping failed).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_COOKIE = "pir_api_key"


class Limiter:
    """At most ``n`` blocking jobs at once on worker threads; a bounded queue with a timeout in front (503)."""

    def __init__(self, n: int, timeout: float, queue: int) -> None:
        self.n = max(1, n)
        self.sem = asyncio.Semaphore(self.n)
        self.timeout = timeout
        self.queue = queue
        self.waiting = 0
        self.running = 0
        self.peak = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.running + self.waiting >= self.n + self.queue:  # in flight, not "waiting": a released slot's
            raise WebError(503, "server busy: too many searches waiting; try again in a moment")  # waiter may lag
        self.waiting += 1
        try:
            await asyncio.wait_for(self.sem.acquire(), self.timeout)
        except TimeoutError:
            raise WebError(503, f"server busy: no search slot within {self.timeout:g} s; try again") from None
        finally:
            self.waiting -= 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        finally:
            self.running -= 1
            self.sem.release()


class BodyLimit:
    """ASGI middleware: a request body beyond ``limit`` bytes stops with 413 while it is being read."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise WebError(413, f"request body over {self.limit:,} bytes")
            return message

        await self.app(scope, limited, send)


def _param_docs(names: dict[str, str], where: str = "query") -> list[dict[str, Any]]:
    return [
        {"name": n, "in": where, "required": False, "schema": {"type": "string"}, "description": d}
        for n, d in names.items()
    ]


STATE_PARAMS = {
    "q": "content hash of an uploaded drawing (repeat for up to 7 views of one design; views are fused)",
    "crop": "INDEX:X0,Y0,X1,Y1 crop of drawing INDEX in fractions of its width/height (repeatable)",
    "words": "optional words (hybrid search; also ranks the descriptions shown as 'why it matched')",
    "text_weight": "0..1 weight of the words against the drawings (hybrid search)",
    "fusion": "fusion of the image and text rankings (hybrid search), e.g. rrf",
    "cls": "class filter (USPC D28/47, Locarno 26-05, CPC, object class; comma-separated or repeated; any matches)",
    "year_from": "first publication year",
    "year_to": "last publication year",
    "viewpoint": "viewpoint filter (perspective, front, rear, side, top, bottom, ...; repeatable)",
    "exclude": "patent to leave out (repeatable)",
    "per_patent": "1 = at most one hit per patent",
    "k": "number of hits (default 20)",
    "like": "more like this: a figure id or PATENT/FIGURE",
    "pos": "relevance feedback: figure id marked relevant (repeatable; Qdrant recommend query)",
    "neg": "relevance feedback: figure id marked not relevant (repeatable)",
    "strategy": "recommend strategy of the feedback: average_vector (default), best_score or sum_scores",
}


def create_app(
    settings: Settings,
    serve: ServeSettings | None = None,
    *,
    encoder: ImageEncoder | None = None,
    store: VectorStore | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The ASGI app: loads the encoder once and opens the store (embedded Edge or a Qdrant server) at start-up.

    Args:
        settings: pir's settings (data dir, store, encoder).
        serve: Web settings; default from ``PIR_SERVE__*``.
        encoder, store: Ready ones (tests, embedding); otherwise loaded / opened from ``settings``. A store passed in
            is not closed by the app.
        engine: A ready :class:`Engine` (``serve`` builds it first, so start-up errors are one line); the app closes
            it at shutdown.

    Raises:
        ValueError: binding beyond loopback without an API key (see :func:`check_bind`).
    """
    serve = serve or get_serve_settings()
    check_bind(serve)
    api_key = serve.api_key.get_secret_value().strip() if serve.api_key else ""
    holder: dict[str, Engine] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        eng_ = engine or await anyio.to_thread.run_sync(lambda: Engine(settings, serve, encoder=encoder, store=store))
        holder["engine"] = eng_
        app.state.engine = eng_
        try:
            yield
        finally:
            eng_.close()

    app = FastAPI(
        title="pir",
        summary="Patent image retrieval: search design-patent drawings by drawings, words and filters.",
        version=_version(),
        lifespan=lifespan,
        debug=False,
    )
    limiter = Limiter(serve.max_concurrent, serve.queue_timeout, serve.max_queued)
    app.state.limiter = limiter
    # Images (cached thumbnails, query drawings) get their own, wider limiter: a results page asks for k at once.
    image_limiter = Limiter(max(2, serve.max_concurrent), serve.queue_timeout, 512)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        viewpoints=VIEWPOINTS,
        drop=lambda d, i: {k: v for k, v in d.items() if k != i},
        without=lambda xs, i: [x for j, x in enumerate(xs) if j != i],
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    max_body = serve.max_images * serve.max_upload_bytes + (1 << 20)
    app.add_middleware(BodyLimit, limit=max_body)  # bodies without Content-Length (chunked) too

    def eng() -> Engine:
        return holder["engine"]

    def state(request: Request) -> Query:
        return Query.from_params(request.query_params.multi_items(), max_k=serve.max_k, max_images=serve.max_images)

    # ------------------------------------------------------------------------------------------ guards & errors
    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if api_key:
            given = (
                request.headers.get(API_KEY_HEADER)
                or request.query_params.get("api_key")
                or request.cookies.get(_COOKIE)
                or ""
            )
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return _error(request, 401, f"missing or wrong API key: send the {API_KEY_HEADER} header")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body:
            return _error(request, 413, f"request of {int(length):,} bytes; at most {max_body:,}")
        response = await call_next(request)
        if api_key and request.query_params.get("api_key"):
            response.set_cookie(_COOKIE, api_key, httponly=True, samesite="strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(("/docs", "/redoc")):  # Swagger UI loads its assets from a CDN
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    def _error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": message}, status_code=status)
        return templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message, "q": Query()}, status_code=status
        )

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        return _error(request, exc.status, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(request, 500, "internal error (details are in the server log)")

    # --------------------------------------------------------------------------------------------------- uploads
    async def read_uploads(files: list[UploadFile]) -> list[str]:
        files = [f for f in files if f.filename or (f.size or 0) > 0]
        if len(files) > serve.max_images:
            raise WebError(413, f"{len(files)} drawings: at most {serve.max_images} per search")
        hashes = []
        for f in files:
            data = await f.read(serve.max_upload_bytes + 1)
            if len(data) > serve.max_upload_bytes:
                raise WebError(413, f"{f.filename}: larger than {serve.max_upload_bytes:,} bytes per drawing")
            hashes.append(await limiter.run(eng().store_drawing, data, f.filename or "<upload>"))
        return hashes

    async def form_state(request: Request) -> Query:
        """Query state from a multipart form: uploaded files (``images``/``files``) plus the state fields."""
        form = await request.form(max_files=serve.max_images + 1, max_fields=200)
        files = [v for k, v in form.multi_items() if isinstance(v, UploadFile) and k in ("images", "files")]
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        new = await read_uploads(files)
        fields += [("q", h) for h in new]
        return Query.from_params(fields, max_k=serve.max_k, max_images=serve.max_images)

    async def run_search(q: Query) -> dict[str, Any]:
        answer = await limiter.run(eng().search, q)
        answer["url"] = q.url("/")
        for r in answer["results"]:
            r["thumb_url"] = f"/api/figures/{r['id']}/thumb"
        return answer

    # ------------------------------------------------------------------------------------------------------ API
    @app.get("/api/health", tags=["api"], summary="Liveness and the number of stored figures")
    async def health() -> dict[str, Any]:
        count = await anyio.to_thread.run_sync(lambda: eng().store.count())
        return {"status": "ok", "count": count}

    @app.get("/api/info", tags=["api"], summary="Encoder, store and limits of this server")
    async def info() -> dict[str, Any]:
        out = await anyio.to_thread.run_sync(eng().info)
        out["searches"] = {"running": limiter.running, "waiting": limiter.waiting, "peak": limiter.peak}
        return out

    @app.post(
        "/api/drawings",
        tags=["api"],
        summary="Upload 1-7 query drawings; returns their content hashes (use them as q=... in searches)",
        openapi_extra=_multipart_doc({}),
    )
    async def upload(request: Request) -> dict[str, Any]:
        q = await form_state(request)
        return {"drawings": q.drawings}

    @app.get("/api/drawings/{digest}.png", tags=["api"], summary="A stored query drawing as PNG")
    async def drawing(digest: str) -> Response:
        png = await image_limiter.run(eng().drawing_png, digest)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    @app.post(
        "/api/search",
        tags=["api"],
        summary="Search with uploaded drawings (multipart field `images`) and/or the state parameters",
        openapi_extra=_multipart_doc(STATE_PARAMS),
    )
    async def api_search_post(request: Request) -> dict[str, Any]:
        return await run_search(await form_state(request))

    @app.get(
        "/api/search",
        tags=["api"],
        summary="Search with the state parameters (the page's URL state)",
        openapi_extra={"parameters": _param_docs(STATE_PARAMS)},
    )
    async def api_search_get(request: Request) -> dict[str, Any]:
        return await run_search(state(request))

    @app.get("/api/figures/{figure}", tags=["api"], summary="A stored figure by point id")
    async def figure(figure: str) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(eng().figure, figure)

    @app.get(
        "/api/patents/{patent_id}/figures/{figure_id}", tags=["api"], summary="A stored figure by patent and figure id"
    )
    async def figure_by_key(patent_id: str, figure_id: str) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(eng().figure, f"{patent_id}/{figure_id}")

    @app.get("/api/figures/{figure}/thumb", tags=["api"], summary="PNG of a stored figure (size 128, 256 or 1024)")
    async def thumb(figure: str, size: int = 256) -> Response:
        path = await image_limiter.run(eng().thumbnail, figure, size)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/patents/{patent_id}", tags=["api"], summary="A patent and all its stored figures")
    async def patent(patent_id: str) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(eng().patent, patent_id)

    @app.get(
        "/api/export.csv",
        tags=["api"],
        summary="The hit list as CSV",
        openapi_extra={"parameters": _param_docs(STATE_PARAMS)},
    )
    async def export_csv_route(request: Request) -> Response:
        answer = await run_search(state(request))
        return PlainTextResponse(
            export_csv(answer),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_stamp()}-pir-hits.csv"'},
        )

    @app.get(
        "/api/export.json",
        tags=["api"],
        summary="The hit list as JSON (download)",
        openapi_extra={"parameters": _param_docs(STATE_PARAMS)},
    )
    async def export_json(request: Request) -> Response:
        answer = await run_search(state(request))
        return Response(
            json.dumps(answer, indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{_stamp()}-pir-hits.json"'},
        )

    # ---------------------------------------------------------------------------------------------------- pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> Response:
        q = state(request)
        answer, error = None, None
        if not q.empty:
            try:
                answer = await run_search(q)
            except WebError as e:
                if e.status >= 500:
                    raise
                error = str(e)
        return templates.TemplateResponse(
            request,
            "index.html",
            {"q": q, "answer": answer, "error": error, "info": await anyio.to_thread.run_sync(eng().info)},
            status_code=400 if error else 200,
        )

    @app.post("/search", include_in_schema=False)
    async def page_search(request: Request) -> Response:
        q = await form_state(request)
        return RedirectResponse(q.url("/"), status_code=303)

    @app.get("/patent/{patent_id}", response_class=HTMLResponse, include_in_schema=False)
    async def patent_page(request: Request, patent_id: str, fig: str = "") -> Response:
        q = state(request)
        pat = await anyio.to_thread.run_sync(eng().patent, patent_id)
        current = next((f for f in pat["figures"] if f["id"] == fig), pat["figures"][0])
        return templates.TemplateResponse(request, "patent.html", {"q": q, "patent": pat, "current": current})

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    async def report(request: Request) -> Response:
        q = state(request)
        answer = await run_search(q)
        info = await anyio.to_thread.run_sync(eng().info)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return templates.TemplateResponse(request, "report.html", {"q": q, "answer": answer, "info": info, "now": now})

    return app


def _multipart_doc(fields: dict[str, str]) -> dict[str, Any]:
    props: dict[str, Any] = {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}}
    props.update({k: {"type": "string", "description": v} for k, v in fields.items()})
    return {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": props}}}}}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _version() -> str:
    from pir import __version__

    return __version__


def serve(settings: Settings, serve: ServeSettings | None = None) -> None:
    """Run ``pir serve``: the app on uvicorn at ``serve.host:serve.port`` until interrupted.

    Raises:
        ValueError: binding beyond loopback without an API key.
    """
    import uvicorn

    serve = serve or get_serve_settings()
    check_bind(serve)
    engine = Engine(settings, serve)  # encoder + store now: a store held elsewhere is a one-line error, not a traceback
    try:
        app = create_app(settings, serve, engine=engine)
    except BaseException:
        engine.close()
        raise
    log.warning(
        "pir serve: %s figures, encoder %s; http://%s:%s/",
        engine.store.count(),
        engine.encoder.name,
        serve.host,
        serve.port,
    )
    uvicorn.run(app, host=serve.host, port=serve.port, log_level="info", access_log=False, server_header=False)


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory pir.web.app:app_from_env`` (settings from ``PIR_*`` env vars)."""
    from pir.config import get_settings

    return create_app(get_settings(), get_serve_settings())
