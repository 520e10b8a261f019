"""HTTP layer of ``pir serve`` (FastAPI): the JSON API under ``/api`` and the examiner's page, over :class:`Engine`.

FastAPI + uvicorn: standard ASGI, OpenAPI docs for free (``/docs``), multipart uploads through Starlette, and
blocking work (encoding, the store) pushed to worker threads. Concurrency: at most ``max_concurrent`` searches and
upload decodes run at once (an asyncio semaphore in front of a worker thread each); at most ``max_queued``
more wait, up to ``queue_timeout`` seconds, and the rest get 503 at once, so a burst cannot pile up decoded images
in memory. Thumbnails and query drawings have a separate limiter of the same width with a long queue (a results
page asks for k of them at once; they are cached on disk). The search runtime serialises the store's calls when
its backend is not thread-safe (:func:`pir.search.runtime.guarded`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.requests import ClientDisconnect

from pir import __version__
from pir.core.config import Settings, get_settings
from pir.core.errors import install_log_redaction, settings_secrets
from pir.web.engine import Engine, WebError
from pir.web.routes import WebContext, api_router, page_router
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


class BodyTimeout:
    """ASGI middleware: a request body must arrive within ``timeout`` seconds of the route starting to read it,
    else 408 (a client that sends headers and then stalls cannot hold a connection and a search slot forever)."""

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None

        async def bounded() -> Any:
            nonlocal deadline
            if deadline is None:
                deadline = loop.time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):  # no task per receive(), unlike wait_for
                    return await receive()
            except TimeoutError:
                log.info("request body not received within %g s: 408", self.timeout)
                raise WebError(408, f"request body not received within {self.timeout:g} s") from None

        await self.app(scope, bounded, send)


def bounded_h11(header_timeout: float) -> type:
    """uvicorn's h11 protocol with a header timeout: a connection that has not sent a complete request line and
    headers within ``header_timeout`` seconds (of connecting, or of its last response) is closed. uvicorn itself
    only times out idle keep-alive connections, so a client trickling a header forever would hold its socket."""
    from uvicorn.protocols.http.h11_impl import H11Protocol  # lazy: start-up (uvicorn)

    class BoundedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                log.info("closed a connection from %s: no complete request headers within %g s", self.client,
                         header_timeout)  # fmt: skip
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's headers arrived
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers are bounded too (the keep-alive timer closes idle ones)

    return BoundedH11Protocol


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
    ctx = WebContext(
        serve,
        limiter=Limiter(serve.max_concurrent, serve.queue_timeout, serve.max_queued),
        # Images (cached thumbnails, query drawings) get their own, wider limiter: a results page asks for k at once.
        image_limiter=Limiter(max(2, serve.max_concurrent), serve.queue_timeout, 512),
        templates=_templates(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        eng_ = engine or await anyio.to_thread.run_sync(lambda: Engine(settings, serve, encoder=encoder, store=store))
        ctx.engine = eng_
        app.state.engine = eng_
        try:
            yield
        finally:
            eng_.close()  # type: ignore[union-attr]  # run_sync returns the Engine

    app = FastAPI(
        title="pir",
        summary="Patent image retrieval: search design-patent drawings by drawings, words and filters.",
        version=_version(),
        lifespan=lifespan,
        debug=False,
        docs_url=None,  # served below from the swagger-ui-bundle package: no CDN, works offline
        redoc_url=None,
    )
    app.state.limiter = ctx.limiter
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _offline_docs(app)
    max_body = serve.max_images * serve.max_upload_bytes + (1 << 20)
    app.add_middleware(BodyLimit, limit=max_body)  # bodies without Content-Length (chunked) too
    app.add_middleware(BodyTimeout, timeout=serve.body_timeout)
    _add_guards(app, ctx, max_body)
    app.include_router(api_router(ctx))
    app.include_router(page_router(ctx))
    return app


def _offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the installed ``swagger-ui-bundle`` package (no CDN)."""
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="pir API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def _templates() -> Jinja2Templates:
    """The page templates, with the helpers they use (viewpoints, ``drop``, ``without``)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        viewpoints=VIEWPOINTS,
        drop=lambda d, i: {k: v for k, v in d.items() if k != i},
        without=lambda xs, i: [x for j, x in enumerate(xs) if j != i],
        without_value=lambda xs, v: [x for x in xs if x != v],
    )
    return templates


def _add_guards(app: FastAPI, ctx: WebContext, max_body: int) -> None:
    """The API-key and body-size guard, the security headers, and the error handlers (JSON or the error page)."""
    serve = ctx.serve
    api_key = serve.api_key.get_secret_value().strip() if serve.api_key else ""

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
                return ctx.error(request, 401, f"missing or wrong API key: send the {API_KEY_HEADER} header")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body:
            return ctx.error(request, 413, f"request of {int(length):,} bytes; at most {max_body:,}")
        response = await call_next(request)
        if api_key and request.query_params.get("api_key"):
            response.set_cookie(_COOKIE, api_key, httponly=True, samesite="strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path != "/docs":  # Swagger UI's page starts itself with an inline script
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        return ctx.error(request, exc.status, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        log.info("client disconnected during %s %s (request not finished; nothing done)", request.method,
                 request.url.path)  # fmt: skip
        return Response(status_code=400)  # nobody reads it

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return ctx.error(request, 500, "internal error (details are in the server log)")


def _version() -> str:
    return __version__


def with_server_threads(settings: Settings, serve: ServeSettings) -> Settings:
    """The settings a server process runs with: unless ``PIR_ENCODER__NUM_THREADS`` is set, each of the
    ``max_concurrent`` searches encodes with its share of the cores (at least 1). Torch's default (every core per
    forward pass) oversubscribes the CPU when two searches encode at once: on 2 cores under 10 clients, one thread
    per search gave about a third more searches per second (README, "Concurrency")."""
    if settings.encoder.num_threads:
        return settings
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, serve.max_concurrent))
    return settings.model_copy(update={"encoder": settings.encoder.model_copy(update={"num_threads": threads})})


def serve(settings: Settings, serve: ServeSettings | None = None) -> None:
    """Run ``pir serve``: the app on uvicorn at ``serve.host:serve.port`` until interrupted.

    Raises:
        ValueError: binding beyond loopback without an API key.
    """
    import uvicorn  # lazy: start-up (uvicorn)

    serve = serve or get_serve_settings()
    host = bind_host(serve.host)
    check_bind(serve)
    install_log_redaction(settings_secrets(settings, serve))
    settings = with_server_threads(settings, serve)
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
        f"[{host}]" if ":" in host else host,
        serve.port,
    )
    uvicorn.run(
        app,
        host=host,
        port=serve.port,
        log_level="info",
        access_log=False,
        server_header=False,
        http=bounded_h11(serve.header_timeout),
        timeout_keep_alive=max(1, round(serve.keep_alive_timeout)),
    )


def bind_host(host: str) -> str:
    """The address uvicorn binds: ``[::1]`` (URL form) becomes ``::1``; other hosts unchanged.

    Raises:
        ValueError: an address in brackets that is not an IPv6 address.
    """
    import ipaddress

    h = host.strip()
    if h.startswith("[") or h.endswith("]"):
        inner = h.strip("[]")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValueError(f"--host {host}: brackets are for IPv6 addresses only (e.g. [::1])") from None
        return inner
    return h


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory pir.web.app:app_from_env`` (settings from ``PIR_*`` env vars)."""
    serve = get_serve_settings()
    return create_app(with_server_threads(get_settings(), serve), serve)
