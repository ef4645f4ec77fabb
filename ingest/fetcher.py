"""Polite, robust fetching of one feed URL: never raises for network trouble.

Every fetch ends in a frozen :class:`FetchResult` whose ``outcome`` is one of
:data:`~framewatch.ingest.outcomes.FETCH_OUTCOMES`. The rules live in small named predicates
(``is_modified``, ``is_rate_limited``, ``retry_delay_s``, ``read_capped``) so each is tested
alone. Politeness: a conditional GET from the stored validators, a User-Agent, at most
``per_host`` requests in flight to one host and ``total`` overall, a whole-request timeout
(redirects and body included), and Retry-After honoured through the result.

``file://`` URLs are read from disk with the same size cap, so ``framewatch analyze FILE`` and
tests share the code path; their modification time plays the part of Last-Modified.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from framewatch.ingest import outcomes as oc
from framewatch.settings import Settings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DRAIN_MAX_BYTES = 65_536  # bodies of 304s, redirects and errors up to this are read to keep the connection
RATE_LIMIT_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_S = 7 * 86400.0  # a server's hint beyond a week is treated as a week


class BodyTooLarge(Exception):
    """The body passed the size cap (internal to the fetcher; surfaces as ``too_large``)."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The answer to one fetch; ``outcome`` doubles as the metric label."""

    url: str
    outcome: str
    status: int | None = None
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    retry_after_s: float | None = None
    elapsed_s: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the body holds new content to parse."""
        return self.outcome == oc.OK


# --- predicates -------------------------------------------------------------------------------


def is_modified(status: int) -> bool:
    """False for 304 Not Modified: the validators we sent still match."""
    return status != 304


def is_rate_limited(status: int) -> bool:
    """429 Too Many Requests and 503 Service Unavailable both mean 'come back later'."""
    return status in RATE_LIMIT_STATUSES


def retry_delay_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds asked for by Retry-After (delta-seconds or HTTP date), clamped; None if absent."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from the validators of the last good fetch."""
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def declared_too_large(headers: Mapping[str, str], max_bytes: int) -> bool:
    """True when Content-Length already says the body is over the cap (no need to read it)."""
    length = headers.get("content-length", "")
    return length.isdigit() and int(length) > max_bytes


async def read_capped(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """Read a (decoded) body stream, raising BodyTooLarge as soon as it passes *max_bytes*."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"body over {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def drain(response: httpx.Response) -> None:
    """Read a small unwanted body to its end so the pooled connection can be reused."""
    if declared_too_large(response.headers, DRAIN_MAX_BYTES) or response.is_stream_consumed:
        return
    with contextlib.suppress(BodyTooLarge, httpx.HTTPError):
        await read_capped(response.aiter_raw(), DRAIN_MAX_BYTES)


def host_of(url: str) -> str:
    """The host[:port] a URL points at: the key of the per-host limit."""
    return urlsplit(url).netloc.lower()


# --- the fetcher --------------------------------------------------------------------------------


class Fetcher:
    """Fetch URLs with per-host and total concurrency limits; use one per worker event loop."""

    def __init__(
        self,
        *,
        timeout_s: float,
        max_bytes: int,
        max_redirects: int,
        per_host: int,
        total: int,
        user_agent: str,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.per_host = per_host
        self.user_agent = user_agent
        self._total = asyncio.Semaphore(total)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        # One small connection pool per host: httpcore scans its whole pool for every request,
        # so one pool of `total` connections costs O(total^2) per cycle; per-host pools stay tiny.
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._tls = httpx.create_ssl_context()  # one TLS context shared by every host's pool

    def _client_for(self, url: str) -> httpx.AsyncClient:
        key = host_of(url)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = httpx.AsyncClient(
                headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"},
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=self.per_host, max_keepalive_connections=self.per_host),
                verify=self._tls,
                trust_env=False,
            )
        return client

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> Fetcher:
        """A fetcher with the limits of *settings*."""
        values: dict[str, object] = {
            "timeout_s": settings.fetch_timeout_s,
            "max_bytes": settings.fetch_max_bytes,
            "max_redirects": settings.fetch_max_redirects,
            "per_host": settings.per_host_concurrency,
            "total": settings.total_concurrency,
            "user_agent": settings.user_agent,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Close the pooled connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Fetch *url* conditionally; returns a FetchResult, never raises for I/O trouble."""
        started = time.perf_counter()
        if url.startswith("file:"):
            result = read_file_url(url, last_modified, self.max_bytes)
        else:
            result = await self._fetch_http(url, conditional_headers(etag, last_modified))
        return _with_elapsed(result, time.perf_counter() - started)

    def _host_limit(self, url: str) -> asyncio.Semaphore:
        host = host_of(url)
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(self.per_host)
        return sem

    async def _fetch_http(self, url: str, headers: dict[str, str]) -> FetchResult:
        seen = {url}
        current = url
        deadline: float | None = None  # starts once a slot is ours: queueing is not the server's fault
        for _hop in range(self.max_redirects + 1):
            # host slot first: a task queued behind a busy host must not hold a global slot
            async with self._host_limit(current), self._total:
                if deadline is None:
                    deadline = time.monotonic() + self.timeout_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return FetchResult(current, oc.TIMEOUT, detail="timed out across redirects")
                try:
                    async with asyncio.timeout(remaining):
                        result, location = await self._one_request(current, headers)
                except TimeoutError:
                    return FetchResult(current, oc.TIMEOUT, detail=f"no answer in {self.timeout_s:g}s")
                except httpx.TimeoutException as exc:
                    return FetchResult(current, oc.TIMEOUT, detail=type(exc).__name__)
                except (httpx.DecodingError, httpx.RemoteProtocolError) as exc:
                    return FetchResult(current, oc.HTTP_ERROR, detail=f"{type(exc).__name__}: {exc}"[:300])
                except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                    return FetchResult(current, oc.CONNECTION_ERROR, detail=f"{type(exc).__name__}: {exc}"[:300])
            if location is None:
                return result
            if location in seen:
                return FetchResult(current, oc.REDIRECT_LOOP, status=result.status, detail=f"loops back to {location}")
            seen.add(location)
            current = location
        return FetchResult(current, oc.REDIRECT_LOOP, detail=f"more than {self.max_redirects} redirects")

    async def _one_request(self, url: str, headers: dict[str, str]) -> tuple[FetchResult, str | None]:
        """One hop: the result, or the absolute Location to follow next."""
        async with self._client_for(url).stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status in REDIRECT_STATUSES and "location" in response.headers:
                await drain(response)
                return FetchResult(url, oc.REDIRECT_LOOP, status), str(response.url.join(response.headers["location"]))
            result = await self._result_of(url, response)
            if result.outcome != oc.OK:
                await drain(response)
            return result, None

    async def _result_of(self, url: str, response: httpx.Response) -> FetchResult:
        status = response.status_code
        hdrs = response.headers
        etag, last_modified = hdrs.get("etag"), hdrs.get("last-modified")
        if not is_modified(status):
            return FetchResult(url, oc.NOT_MODIFIED, status, etag=etag, last_modified=last_modified)
        if is_rate_limited(status):
            delay = retry_delay_s(hdrs, datetime.now(UTC))
            return FetchResult(url, oc.RATE_LIMITED, status, retry_after_s=delay, detail=f"HTTP {status}")
        if status >= 400 or status < 200:
            return FetchResult(url, oc.HTTP_ERROR, status, retry_after_s=retry_delay_s(hdrs, datetime.now(UTC)), detail=f"HTTP {status}")
        if declared_too_large(hdrs, self.max_bytes):
            return FetchResult(url, oc.TOO_LARGE, status, detail=f"Content-Length {hdrs['content-length']}")
        try:
            body = await read_capped(response.aiter_bytes(), self.max_bytes)
        except BodyTooLarge as exc:
            return FetchResult(url, oc.TOO_LARGE, status, detail=str(exc))
        return FetchResult(
            url, oc.OK, status, body, hdrs.get("content-type"), etag, last_modified,
            retry_delay_s(hdrs, datetime.now(UTC)),
        )


def read_file_url(url: str, last_modified: str | None, max_bytes: int) -> FetchResult:
    """Read a ``file://`` URL; its mtime stands in for Last-Modified."""
    path = Path(unquote(urlsplit(url).path))
    try:
        stat = path.stat()
        mtime = format_datetime(datetime.fromtimestamp(int(stat.st_mtime), UTC), usegmt=True)
        if last_modified == mtime:
            return FetchResult(url, oc.NOT_MODIFIED, last_modified=mtime)
        if stat.st_size > max_bytes:
            return FetchResult(url, oc.TOO_LARGE, detail=f"{stat.st_size} bytes")
        with path.open("rb") as fh:
            body = fh.read(max_bytes + 1)
    except OSError as exc:
        return FetchResult(url, oc.CONNECTION_ERROR, detail=f"{type(exc).__name__}: {exc}"[:300])
    if len(body) > max_bytes:
        return FetchResult(url, oc.TOO_LARGE, detail=f"body over {max_bytes} bytes")
    ctype = mimetypes.guess_type(path.name)[0]
    return FetchResult(url, oc.OK, body=body, content_type=ctype, last_modified=mtime)


def _with_elapsed(result: FetchResult, elapsed: float) -> FetchResult:
    return FetchResult(
        result.url, result.outcome, result.status, result.body, result.content_type, result.etag,
        result.last_modified, result.retry_after_s, elapsed, result.detail,
    )
