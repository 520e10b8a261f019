"""Routes of ``pir serve``: the JSON API (:func:`api_router`) and the examiner's pages (:func:`page_router`).

Both work through a :class:`WebContext` (the engine, the limiters, the templates) that :func:`pir.web.app.create_app`
builds once per app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from pir.search.request import Crop, SearchRequest, error_line
from pir.web.engine import Engine, WebError, export_csv
from pir.web.history import History, check_url, owner_of
from pir.web.models import DrawingsOut, ErrorOut, FigureOut, HealthOut, InfoOut, PatentOut, SavedOut, SearchAnswer
from pir.web.settings import ServeSettings

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
#: Query parameters that are not part of the search state (the patent page's figure, the one-time API key).
NOT_STATE = ("fig", "api_key")


def state_params() -> dict[str, str]:
    """The search state's URL parameters and what they mean, generated from :class:`SearchRequest`'s fields."""
    return {f.alias or name: f.description or name for name, f in SearchRequest.model_fields.items()}


_IMAGE_CACHE = {"Cache-Control": "private, max-age=86400"}
#: Every uploaded file failed (and nothing else was asked): the first file's status and every file's error.
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut, "description": d}
    for s, d in ((413, "too large / too many"), (415, "not a drawing"), (422, "corrupt, or a bad parameter"))
}


def _param_docs(names: dict[str, str], where: str = "query") -> list[dict[str, Any]]:
    return [
        {"name": n, "in": where, "required": False, "schema": {"type": "string"}, "description": d}
        for n, d in names.items()
    ]


def _multipart_doc(fields: dict[str, str]) -> dict[str, Any]:
    props: dict[str, Any] = {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}}
    props.update({k: {"type": "string", "description": v} for k, v in fields.items()})
    return {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": props}}}}}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


@dataclass
class WebContext:
    """What the routes share: web settings, the engine (set at start-up), the two limiters and the templates."""

    serve: ServeSettings
    limiter: Any  # pir.web.app.Limiter: searches and upload decodes
    image_limiter: Any  # pir.web.app.Limiter: thumbnails and query drawings
    templates: Jinja2Templates
    engine: Engine | None = None
    _history: History | None = None

    def eng(self) -> Engine:
        """The engine (opened by the app's lifespan)."""
        if self.engine is None:
            raise RuntimeError("the app's lifespan has not started: no engine yet")
        return self.engine

    def history(self) -> History:
        """Saved searches and history (``<data_dir>/web/history.sqlite``), opened on first use."""
        if self._history is None:
            self._history = History(self.eng().root / "history.sqlite")
        return self._history

    def owner(self, request: Request) -> str:
        """Whose saved searches and history: the API key the request came with (a hash of it), '' without keys."""
        if not self.serve.api_key:
            return ""
        key = (
            request.headers.get("X-API-Key")
            or request.query_params.get("api_key")
            or request.cookies.get("pir_api_key")
            or ""
        )
        return owner_of(key)

    def state(self, request: Request) -> SearchRequest:
        """The search state from the URL (422 naming the parameter for a bad or unknown one)."""
        return self.parse(request.query_params.multi_items())

    def parse(self, params: list[tuple[str, str]]) -> SearchRequest:
        """A :class:`SearchRequest` from URL/form fields, within this server's limits (422 with one line)."""
        try:
            q = SearchRequest.from_params(params, ignore=NOT_STATE)
        except ValidationError as e:
            raise WebError(422, error_line(e)) from None
        s = self.serve
        bad = [d for d in q.drawings if not _HASH_RE.match(d)]
        if bad:
            raise WebError(422, f"q: {bad[0][:80]!r} is not the sha256 content hash of an uploaded drawing")
        if len(q.drawings) > s.max_images:
            raise WebError(422, f"q: {len(q.drawings)} drawings; at most {s.max_images} per search")
        if q.k > s.max_k:
            raise WebError(422, f"k: {q.k}; at most {s.max_k} on this server")
        return q

    def error(self, request: Request, status: int, message: str) -> Response:
        """An error as JSON (API, non-HTML clients) or as the error page."""
        if request.url.path.startswith("/api") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": message}, status_code=status)
        return self.templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message, "q": SearchRequest()}, status_code=status
        )

    async def read_uploads(self, files: list[UploadFile]) -> tuple[list[str], list[dict[str, Any]]]:
        """Store the uploaded drawings (a PDF or multi-page TIFF gives one per page).

        Returns:
            The content hashes of what could be stored, and one ``{file, status, message}`` per file that could
            not (too large, not an image, corrupt, too many): a bad file never throws the others away.
        """
        s = self.serve
        files = [f for f in files if f.filename or (f.size or 0) > 0]
        hashes: list[str] = []
        errors: list[dict[str, Any]] = []
        for f in files:
            name = f.filename or "<upload>"
            room = s.max_images - len(hashes)
            try:
                if room <= 0:
                    raise WebError(413, f"{name}: left out, at most {s.max_images} drawings per search")
                data = await f.read(s.max_upload_bytes + 1)
                if len(data) > s.max_upload_bytes:
                    raise WebError(413, f"{name}: larger than {s.max_upload_bytes:,} bytes per drawing")
                hashes += await self.limiter.run(self.eng().store_upload, data, name, room)
            except WebError as e:
                if e.status == 503:
                    raise
                errors.append({"file": name[:200], "status": e.status, "message": str(e)})
        return hashes, errors

    async def form_state(self, request: Request) -> tuple[SearchRequest, list[dict[str, Any]]]:
        """Query state from a multipart form: uploaded files (``images``/``files``) plus the state fields; and the
        per-file errors of uploads that could not be stored (the rest of the query stands)."""
        s = self.serve
        form = await request.form(max_files=s.max_images * 2 + 1, max_fields=400)
        files = [v for k, v in form.multi_items() if isinstance(v, UploadFile) and k in ("images", "files")]
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        new, errors = await self.read_uploads(files)
        kept = [v for k, v in fields if k == "q"]
        room = max(0, s.max_images - len(kept))
        for h in new[room:]:
            errors.append({"file": h[:12], "status": 413, "message": f"left out: at most {s.max_images} drawings"})
        fields += [("q", h) for h in new[:room] if h not in kept]
        return self.parse(fields), errors

    async def try_search(self, q: SearchRequest) -> tuple[dict[str, Any] | None, str | None]:
        """For the pages: ``(answer, None)``, or ``(None, message)`` for a client error (an empty query: neither)."""
        if q.empty:
            return None, None
        try:
            return await self.run_search(q), None
        except WebError as e:
            if e.status >= 500:
                raise
            return None, str(e)

    async def run_search(self, q: SearchRequest) -> dict[str, Any]:
        """Search (on the limiter); the answer with its page URL and thumbnail URLs."""
        answer = await self.limiter.run(self.eng().search, q)
        answer["url"] = q.url("/")
        for r in answer["results"]:
            r["thumb_url"] = f"/api/figures/{r['id']}/thumb"
        return answer

    async def page(
        self,
        request: Request,
        q: SearchRequest,
        answer: dict[str, Any] | None,
        error: str | None,
        upload_errors: list[dict[str, Any]],
        status: int,
    ) -> Response:
        """The search page: the form holding ``q``, the hits, the marks tray, facets and any errors in place."""
        eng = self.eng()
        info = await self.in_thread(eng.info)
        class_options = await self.in_thread(eng.class_options)
        context = {
            "q": q,
            "answer": answer,
            "error": error,
            "upload_errors": upload_errors,
            "info": info,
            "class_options": class_options,
        }
        return self.templates.TemplateResponse(request, "index.html", context, status_code=status)

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a worker thread (no limiter: cheap store reads)."""
        return await anyio.to_thread.run_sync(fn, *args)


def _answer_json(answer: dict[str, Any]) -> Response:
    """A search answer checked against :class:`SearchAnswer` and written by pydantic-core in one step (cheaper on
    the event loop than ``model_dump`` + ``json.dumps``)."""
    return Response(SearchAnswer.model_validate(answer).model_dump_json(), media_type="application/json")


def _all_failed(errors: list[dict[str, Any]]) -> JSONResponse:
    """Every uploaded file failed and nothing else was asked: the first file's status, every file's error."""
    detail = "; ".join(str(e["message"]) for e in errors)
    return JSONResponse({"detail": detail, "errors": errors}, status_code=int(errors[0]["status"]))


def api_router(ctx: WebContext) -> APIRouter:
    """The JSON API under ``/api``: health, info, drawings, search, figures, patents."""
    r = APIRouter(tags=["api"])

    @r.get("/api/health", summary="Liveness and the number of stored figures")
    async def health() -> HealthOut:
        count = await anyio.to_thread.run_sync(lambda: ctx.eng().store.count())
        return HealthOut(status="ok", count=count)

    @r.get("/api/info", summary="Encoder, store and limits of this server")
    async def info() -> InfoOut:
        out = await ctx.in_thread(ctx.eng().info)
        lim = ctx.limiter
        searches = {"running": lim.running, "waiting": lim.waiting, "peak": lim.peak}
        return InfoOut.model_validate({**out, "searches": searches})

    @r.post(
        "/api/drawings",
        summary="Upload 1-7 query drawings (a PDF or multi-page TIFF: one per page); their content hashes (q=...)",
        openapi_extra=_multipart_doc({}),
        response_model=DrawingsOut,
        responses=_UPLOAD_ERRORS,
    )
    async def upload(request: Request) -> Response:
        q, errors = await ctx.form_state(request)
        if errors and not q.drawings:
            return _all_failed(errors)
        return JSONResponse(DrawingsOut.model_validate({"drawings": q.drawings, "errors": errors}).model_dump())

    @r.get("/api/drawings/{digest}.png", summary="A stored query drawing as PNG (cropped with crop=X0,Y0,X1,Y1)")
    async def drawing(digest: str, crop: str | None = None) -> Response:
        box = None
        if crop:
            try:
                box = Crop.parse(f"0:{crop}")[1].as_tuple()
            except ValueError as e:  # pydantic's ValidationError is a ValueError
                raise WebError(422, error_line(e) if isinstance(e, ValidationError) else str(e)) from None
        png = await ctx.image_limiter.run(ctx.eng().drawing_png, digest, 1024, box)
        return Response(png, media_type="image/png", headers=_IMAGE_CACHE)

    @r.post(
        "/api/search",
        summary="Search with uploaded drawings (multipart field `images`) and/or the state parameters; a bad file "
        "is reported in `errors` and the rest of the query still runs (200)",
        openapi_extra=_multipart_doc(state_params()),
        response_model=SearchAnswer,
        responses=_UPLOAD_ERRORS,
    )
    async def api_search_post(request: Request) -> Response:
        q, errors = await ctx.form_state(request)
        if errors and q.empty:
            return _all_failed(errors)
        answer = await ctx.run_search(q)
        answer["errors"] = errors
        return _answer_json(answer)

    @r.get(
        "/api/search",
        summary="Search with the state parameters (the page's URL state)",
        openapi_extra={"parameters": _param_docs(state_params())},
        response_model=SearchAnswer,
    )
    async def api_search_get(request: Request) -> Response:
        return _answer_json(await ctx.run_search(ctx.state(request)))

    _figure_routes(r, ctx)
    _export_routes(r, ctx)
    _history_routes(r, ctx)
    return r


def _history_routes(r: APIRouter, ctx: WebContext) -> None:
    """Saved searches (named) and the search history of this API key, newest first."""

    @r.get("/api/saved", summary="Saved searches (newest first)")
    async def saved(request: Request) -> list[SavedOut]:
        rows = await ctx.in_thread(ctx.history().list, ctx.owner(request), "saved")
        return [SavedOut.model_validate(x) for x in rows]

    @r.get("/api/history", summary="Recent searches run on the page (newest first)")
    async def history(request: Request) -> list[SavedOut]:
        rows = await ctx.in_thread(ctx.history().list, ctx.owner(request), "history")
        return [SavedOut.model_validate(x) for x in rows]

    @r.post(
        "/api/saved",
        summary="Save a search: form fields `name` and `url` (its page URL, /?...); a browser is sent to /history",
        response_model=SavedOut,
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "url": {"type": "string"}},
                            "required": ["url"],
                        }
                    }
                }
            }
        },
    )
    async def save(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        try:
            url = check_url(str(form.get("url") or ""))
        except ValueError as e:
            raise WebError(422, str(e)) from None
        ctx.parse([(k, v) for k, v in parse_qsl(url[2:], keep_blank_values=True)])  # a valid search (422 if not)
        row = await ctx.in_thread(ctx.history().save, ctx.owner(request), str(form.get("name") or ""), url)
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/history", status_code=303)
        return JSONResponse(SavedOut.model_validate(row).model_dump())

    @r.delete("/api/saved/{search_id}", summary="Delete a saved search")
    async def delete(request: Request, search_id: int) -> Response:
        if not await ctx.in_thread(ctx.history().delete, ctx.owner(request), search_id):
            raise WebError(404, f"no saved search {search_id}")
        return Response(status_code=204)


def _figure_routes(r: APIRouter, ctx: WebContext) -> None:
    """Stored figures (by id or patent/figure), their thumbnails, and patents."""

    @r.get("/api/figures/{figure}", summary="A stored figure by point id")
    async def figure(figure: str) -> FigureOut:
        return FigureOut.model_validate(await ctx.in_thread(ctx.eng().figure, figure))

    @r.get("/api/patents/{patent_id}/figures/{figure_id}", summary="A stored figure by patent and figure id")
    async def figure_by_key(patent_id: str, figure_id: str) -> FigureOut:
        return FigureOut.model_validate(await ctx.in_thread(ctx.eng().figure, f"{patent_id}/{figure_id}"))

    @r.get("/api/figures/{figure}/thumb", summary="PNG of a stored figure (size 128, 256 or 1024)")
    async def thumb(figure: str, size: int = 256) -> Response:
        path = await ctx.image_limiter.run(ctx.eng().thumbnail, figure, size)
        return FileResponse(path, media_type="image/png", headers=_IMAGE_CACHE)

    # after .../thumb, which it would otherwise shadow
    @r.get("/api/figures/{patent_id}/{figure_id}", summary="A stored figure by patent and figure id (ids normalised)")
    async def figure_by_path(patent_id: str, figure_id: str) -> FigureOut:
        return FigureOut.model_validate(await ctx.in_thread(ctx.eng().figure, f"{patent_id}/{figure_id}"))

    @r.get("/api/patents/{patent_id}", summary="A patent and all its stored figures")
    async def patent(patent_id: str) -> PatentOut:
        return PatentOut.model_validate(await ctx.in_thread(ctx.eng().patent, patent_id))


def _export_routes(r: APIRouter, ctx: WebContext) -> None:
    """The hit list as a CSV or JSON download."""

    def attachment(suffix: str) -> dict[str, str]:
        return {"Content-Disposition": f'attachment; filename="{_stamp()}-pir-hits.{suffix}"'}

    @r.get("/api/export.csv", summary="The hit list as CSV", openapi_extra={"parameters": _param_docs(state_params())})
    async def export_csv_route(request: Request) -> Response:
        answer = await ctx.run_search(ctx.state(request))
        return PlainTextResponse(export_csv(answer), media_type="text/csv; charset=utf-8", headers=attachment("csv"))

    @r.get(
        "/api/export.json",
        summary="The hit list as JSON (download)",
        openapi_extra={"parameters": _param_docs(state_params())},
    )
    async def export_json(request: Request) -> Response:
        answer = await ctx.run_search(ctx.state(request))
        return Response(json.dumps(answer, indent=2), media_type="application/json", headers=attachment("json"))


def page_router(ctx: WebContext) -> APIRouter:
    """The examiner's pages: search, patent, printable report (not in the OpenAPI schema)."""
    r = APIRouter(include_in_schema=False)
    render = ctx.templates.TemplateResponse

    @r.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        q = ctx.state(request)
        answer, error = await ctx.try_search(q)
        if answer is not None:
            await ctx.in_thread(ctx.history().record, ctx.owner(request), q.url("/"), len(answer["results"]))
        return await ctx.page(request, q, answer, error, [], status=400 if error else 200)

    @r.get("/history", response_class=HTMLResponse)
    async def history_page(request: Request) -> Response:
        owner = ctx.owner(request)
        saved = await ctx.in_thread(ctx.history().list, owner, "saved")
        recent = await ctx.in_thread(ctx.history().list, owner, "history")
        return render(request, "history.html", {"q": SearchRequest(), "saved": saved, "recent": recent})

    @r.post("/search")
    async def page_search(request: Request) -> Response:
        q, errors = await ctx.form_state(request)
        if not errors:
            return RedirectResponse(q.url("/"), status_code=303)
        # A bad file: the page again, the error next to the drawings, everything else kept, the rest searched.
        answer, error = await ctx.try_search(q)
        return await ctx.page(request, q, answer, error, errors, status=200 if answer else errors[0]["status"])

    @r.get("/patent/{patent_id}", response_class=HTMLResponse)
    async def patent_page(request: Request, patent_id: str, fig: str = "") -> Response:
        q = ctx.state(request)
        pat = await ctx.in_thread(ctx.eng().patent, patent_id)
        current = next((f for f in pat["figures"] if f["id"] == fig), pat["figures"][0])
        return render(request, "patent.html", {"q": q, "patent": pat, "current": current})

    @r.get("/report", response_class=HTMLResponse)
    async def report(request: Request) -> Response:
        q = ctx.state(request)
        answer = await ctx.run_search(q)
        info = await ctx.in_thread(ctx.eng().info)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return render(request, "report.html", {"q": q, "answer": answer, "info": info, "now": now})

    return r
