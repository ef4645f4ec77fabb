"""Login, the forms that change state (label, promote), the labels page, static files, and the
mounting of the workbench (queue and models pages too) on the API app.

A form posts here with its CSRF token; the write is then relayed in-process to the API's own
endpoint with the login's token as bearer, so the roles, validation and Kafka writes are the
API's, unchanged. The browser gets a redirect back (post/redirect/get).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from framewatch.processing.serve.auth import COOKIE
from framewatch.processing.serve.topics import BrokerUnavailable
from framewatch.processing.workbench import charts, pages
from framewatch.processing.workbench.render import bare, page, static
from framewatch.processing.workbench.session import (
    MAX_AGE_S,
    LoginNeeded,
    Sessions,
    login_url,
    safe_next,
)
from framewatch.settings import LABELS

if TYPE_CHECKING:
    from framewatch.processing.serve.app import ServeContext

API = "/api/v1"
LABELS_SHOWN = 200
FORM_MAX = 16_384


async def form_of(request: Request) -> dict[str, str]:
    """An url-encoded form body (first value per field)."""
    body = await request.body()
    if len(body) > FORM_MAX:
        raise HTTPException(413, "form too large")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


async def relay(request: Request, sessions: Sessions, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
    """Call the API's own endpoint in-process with the login's token."""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://workbench", timeout=60) as client:
        return await client.request(method, API + path, json=body,
                                    headers={"Authorization": f"Bearer {sessions.token(request)}"})


def problem(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail"))[:300]
    except ValueError:
        return f"HTTP {resp.status_code}"


def add_form_routes(router: APIRouter, ctx: ServeContext, sessions: Sessions) -> None:
    """Login, logout, label, promote, labels list."""

    @router.get("/ui/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(next: str | None = None) -> HTMLResponse:
        return bare("login.html", title="Sign in", next=safe_next(next), error=None)

    @router.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await form_of(request)
        token, target = form.get("token", "").strip(), safe_next(form.get("next"))
        if not token or ctx.tokens.authenticate(token) is None:
            return bare("login.html", status=401, title="Sign in", next=target, error="That token is not known.")
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(COOKIE, token, max_age=MAX_AGE_S, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
        return resp

    @router.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        sessions.who(request)
        sessions.check_csrf(request, (await form_of(request)).get("csrf", ""))
        resp = RedirectResponse("/ui/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    @router.post("/ui/items/{key}/segments/{index}/label", include_in_schema=False)
    async def label(request: Request, key: str, index: int) -> Response:
        sessions.who(request, "analyst")
        form = await form_of(request)
        sessions.check_csrf(request, form.get("csrf", ""))
        frame = form.get("frame", "").strip()
        path = f"/items/{quote(key, safe=':')}/segments/{index}/label"
        resp = await (relay(request, sessions, "DELETE", path, {}) if frame == "" else
                      relay(request, sessions, "PUT", path, {"frame": frame}))
        back = f"/ui/items/{quote(key, safe=':')}"
        if resp.status_code != 200:
            return RedirectResponse(f"{back}?{urlencode({'error': problem(resp)})}#segment-{index}", status_code=303)
        done = urlencode({"saved": index, "label": frame or "cleared"})
        return RedirectResponse(f"{back}?{done}#segment-{index}", status_code=303)

    @router.post("/ui/clusters/{cluster}/promote", include_in_schema=False)
    async def promote(request: Request, cluster: str) -> Response:
        sessions.who(request, "analyst")
        form = await form_of(request)
        sessions.check_csrf(request, form.get("csrf", ""))
        watch = form.get("watch", "")
        body = {"watch": watch, "frame_id": form.get("frame_id", "").strip(), "label": form.get("label", "").strip()}
        resp = await relay(request, sessions, "POST", f"/clusters/{quote(cluster, safe=':')}/promote", body)
        back = f"/ui/watches/{quote(watch, safe=':')}"
        if resp.status_code != 200:
            return RedirectResponse(f"{back}?{urlencode({'error': problem(resp)})}#clusters", status_code=303)
        return RedirectResponse(f"{back}?{urlencode({'promoted': resp.json()['detail']})}#clusters", status_code=303)

    @router.get("/ui/labels", response_class=HTMLResponse, include_in_schema=False)
    def labels(request: Request) -> HTMLResponse:
        who = sessions.who(request)
        error, rows = None, []
        assert ctx.writer is not None
        try:
            rows = [v for v in ctx.writer.read(LABELS).values() if v is not None]
        except BrokerUnavailable as exc:
            error = f"The labels cannot be read now: {exc}"
        rows.sort(key=lambda r: (str(r.get("at", "")), str(r.get("item_key", ""))), reverse=True)
        counts: dict[str, float] = {}
        for r in rows:
            counts[str(r.get("frame") or "cleared")] = counts.get(str(r.get("frame") or "cleared"), 0) + 1
        chart = charts.svg(charts.bar_spec(counts or {"none yet": 0}, title="Labels by frame", axis="labels"))
        return page(request, "labels.html", who, sessions.csrf(request), title="Labels", labels=rows[:LABELS_SHOWN], chart=chart,
                    total=len(rows), error=error)


def add_pages(app: FastAPI, ctx: ServeContext) -> None:
    """Mount the workbench on the API app: pages under /ui/, / redirects there."""
    sessions = Sessions(ctx.tokens)
    router = APIRouter()

    @app.exception_handler(LoginNeeded)
    def _login(request: Request, exc: LoginNeeded) -> Response:
        return RedirectResponse(login_url(exc.next_url), status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # pages answer errors as a page; the API keeps its JSON problems
        if request.url.path.startswith("/ui/") and request.method == "GET":
            return bare("error.html", status=exc.status_code, title=f"Error {exc.status_code}", detail=exc.detail)
        return await http_exception_handler(request, exc)

    @router.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @router.get("/favicon.ico", include_in_schema=False)
    @router.get("/ui/static/{name}", include_in_schema=False)
    def static_file(name: str = "favicon.svg") -> Response:
        found = static(name)
        if found is None:
            raise HTTPException(404, "no such file")
        return found

    # the queue's routes use this module's relay: imported here, not at the top (a cycle)
    from framewatch.processing.workbench.models import add_model_routes
    from framewatch.processing.workbench.queue import add_queue_routes

    pages.add_read_pages(router, ctx, sessions)
    add_form_routes(router, ctx, sessions)
    add_queue_routes(router, ctx, sessions)
    add_model_routes(router, ctx, sessions)
    app.include_router(router)
