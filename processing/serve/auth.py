"""API tokens: roles viewer < analyst < admin, stored as sha256 hashes, sent as ``Bearer``.

A token is 32 random bytes (URL-safe base64) shown once, at creation; the tokens file keeps only
its sha256, so a leaked file opens nothing. The bootstrap admin token comes from a SecretStr
setting and lives in memory as its hash too. Nothing here logs a token or its hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from framewatch.errors import ConfigError
from framewatch.timeutil import format_utc, parse_utc, utcnow

log = logging.getLogger(__name__)

RANK = {"viewer": 1, "analyst": 2, "admin": 3}
COOKIE = "framewatch_token"  # the workbench's login (HttpOnly, SameSite=Strict); reads only, never writes
SAFE_METHODS = ("GET", "HEAD")
BOOTSTRAP_ID = "bootstrap"


def token_hash(token: str) -> str:
    """sha256 of a token, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe base64 with a ``fw_`` prefix (greppable by scanners)."""
    return "fw_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token: never its plaintext."""

    id: str
    name: str
    role: str
    sha256: str
    created_at: datetime


class TokenStore:
    """Tokens by hash, persisted to a JSON file (written atomically) when one is given."""

    def __init__(self, path: Path | None, bootstrap: str | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenRecord] = {}
        if bootstrap:
            self._tokens[BOOTSTRAP_ID] = TokenRecord(BOOTSTRAP_ID, "bootstrap-admin", "admin",
                                                     token_hash(bootstrap), utcnow())
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["tokens"]
            for row in rows:
                rec = TokenRecord(str(row["id"]), str(row["name"]), str(row["role"]), str(row["sha256"]),
                                  parse_utc(str(row["created_at"])))
                if rec.role not in RANK or len(rec.sha256) != 64:
                    raise ValueError(f"token {rec.id!r}: bad role or hash")
                self._tokens[rec.id] = rec
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: cannot read tokens file: {exc}") from exc

    def _save(self) -> None:
        if self.path is None:
            return
        rows = [{"id": t.id, "name": t.name, "role": t.role, "sha256": t.sha256, "created_at": format_utc(t.created_at)}
                for t in self._tokens.values() if t.id != BOOTSTRAP_ID]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"tokens": rows}, indent=1), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def authenticate(self, token: str) -> TokenRecord | None:
        """The record of *token*, or None (constant-time comparison of the hashes)."""
        digest = token_hash(token)
        with self._lock:
            found = None
            for rec in self._tokens.values():
                if hmac.compare_digest(rec.sha256, digest):
                    found = rec
            return found

    def create(self, name: str, role: str) -> tuple[TokenRecord, str]:
        """A new token of *role*; returns its record and its plaintext (shown once)."""
        token = new_token()
        rec = TokenRecord(secrets.token_hex(6), name, role, token_hash(token), utcnow())
        with self._lock:
            self._tokens[rec.id] = rec
            self._save()
        log.info("token %s (%s, role %s) created", rec.id, name, role)
        return rec, token

    def delete(self, token_id: str) -> bool:
        """Revoke a token; False when there is none with this id."""
        with self._lock:
            if self._tokens.pop(token_id, None) is None:
                return False
            self._save()
        log.info("token %s revoked", token_id)
        return True

    def list(self) -> list[TokenRecord]:
        """Every token, oldest first."""
        with self._lock:
            return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))


bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>`.")


def require(store: TokenStore, role: str) -> Callable[..., TokenRecord]:
    """A FastAPI dependency: the caller's token, which must hold *role* or more (401 / 403)."""

    def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> TokenRecord:  # noqa: B008
        token = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else ""
        if not token and request.method in SAFE_METHODS:
            # a page's link (the export) carries the login cookie; a cookie never authorises a write,
            # so a forged cross-site form can change nothing
            token = request.cookies.get(COOKIE, "")
        if not token:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        rec = store.authenticate(token)
        if rec is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        if RANK[rec.role] < RANK[role]:
            raise HTTPException(403, f"this needs the {role} role; the token has {rec.role}")
        return rec

    return check
