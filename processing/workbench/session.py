"""Who opened a page: the API token from the login cookie, and the CSRF token its forms carry.

Login stores the token itself in an HttpOnly, SameSite=Strict cookie (the same check as the API,
no second kind of credential). A form that changes state carries a CSRF token: an HMAC of the
token's hash under a key made at start-up, so it is tied to the login and worthless elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

from fastapi import HTTPException, Request

from framewatch.processing.serve.auth import COOKIE, RANK, TokenRecord, TokenStore, token_hash

LOGIN = "/ui/login"
MAX_AGE_S = 12 * 3600


class LoginNeeded(Exception):
    """No valid login cookie: the page redirects to the login form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class Sessions:
    """Checks page requests against the API's token store."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self._key = secrets.token_bytes(32)

    def who(self, request: Request, role: str = "viewer") -> TokenRecord:
        """The cookie's token record, holding *role* or more (LoginNeeded / 403)."""
        token = request.cookies.get(COOKIE, "")
        rec = self.store.authenticate(token) if token else None
        if rec is None:
            raise LoginNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if RANK[rec.role] < RANK[role]:
            raise HTTPException(403, f"this needs the {role} role; you are signed in as {rec.role}")
        return rec

    def token(self, request: Request) -> str:
        """The plaintext token of the login cookie (for relaying a write to the API in-process)."""
        return request.cookies.get(COOKIE, "")

    def csrf(self, request: Request) -> str:
        """The CSRF token of this login."""
        digest = token_hash(request.cookies.get(COOKIE, ""))
        return hmac.new(self._key, digest.encode("ascii"), hashlib.sha256).hexdigest()

    def check_csrf(self, request: Request, sent: str) -> None:
        """403 unless *sent* is this login's CSRF token."""
        if not sent or not hmac.compare_digest(sent, self.csrf(request)):
            raise HTTPException(403, "the form's CSRF token does not match this login: reload the page")


def login_url(next_url: str) -> str:
    """The login form, returning to *next_url*."""
    return f"{LOGIN}?next={quote(next_url, safe='')}"


def safe_next(next_url: str | None) -> str:
    """A local path to return to after login (never another site)."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        return "/ui/"
    return next_url
