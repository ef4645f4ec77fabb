"""Templates (package data), the page response with its security headers, and the static files."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from framewatch.processing.serve.auth import TokenRecord
from framewatch.processing.workbench.explain import frame_class, highlight

PACKAGE = "framewatch.processing.workbench"
STATIC_TYPES = {"workbench.css": "text/css; charset=utf-8", "workbench.js": "text/javascript; charset=utf-8",
                "favicon.svg": "image/svg+xml"}
# every byte a page uses comes from this app: no CDN, no inline script
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _template(name: str) -> str | None:
    try:
        return resources.files(PACKAGE).joinpath("templates", name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "\u2014"


def _pct(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.0%}" if abs(value) >= 0.1 else f"{value:.1%}"


def _query(params: dict[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return urlencode(merged)


ENV = Environment(loader=FunctionLoader(_template), autoescape=select_autoescape(default=True),
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
ENV.filters.update(when=_when, pct=_pct, frame_class=frame_class)
ENV.globals.update(highlight=highlight, query=_query, Markup=Markup)


def page(request: Request, name: str, who: TokenRecord, csrf: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page; every page names the role of the token that opened it."""
    html = ENV.get_template(name).render(request=request, who=who, role=who.role, csrf=csrf,
                                         can_write=who.role in ("analyst", "admin"), **context)
    return secured(HTMLResponse(html, status_code=status))


def bare(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page shown before login (the login form, an error)."""
    return secured(HTMLResponse(ENV.get_template(name).render(who=None, role=None, **context), status_code=status))


R = TypeVar("R", bound=Response)


def secured(response: R) -> R:
    """Security headers of every page: CSP, no sniffing, no framing, no caching of private data."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def static(name: str) -> Response | None:
    """One of the app's own static files, or None."""
    if name not in STATIC_TYPES:
        return None
    body = resources.files(PACKAGE).joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC_TYPES[name], headers={"Cache-Control": "max-age=3600",
                                                                  "X-Content-Type-Options": "nosniff"})
