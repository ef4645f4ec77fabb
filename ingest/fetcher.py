"""Polite, robust fetching of one feed URL: never raises for network trouble.

Every fetch ends in a frozen :class:`FetchResult` whose ``outcome`` is one of
:data:`~framewatch.ingest.outcomes.FETCH_OUTCOMES`. The rules live in small named predicates
(``is_modified``, ``is_rate_limited``, ``retry_delay_s``, ``read_capped``) so each is tested
alone. Politeness: a conditional GET from the stored validators, a User-Agent, at most
``per_host`` requests in flight to one host and ``total`` overall, a whole-request timeout
(redirects and body included), and Retry-After honoured through the result.

Safety (the fetch policy, :mod:`~framewatch.ingest.addresses`): each fetch takes a
:class:`FetchPolicy`; every hop is checked for scheme, site and, after DNS, address, and refusals
end as ``refused_url`` / ``refused_address`` before a byte is sent. The body is read raw and
decoded here, one step at a time with a bounded output, so the size cap holds for decoded bytes
(a gzip bomb stops at the cap); stacked, unknown or corrupt codings are ``bad_content_encoding``.
Per-host connection pools are closed once idle, so thousands of hosts do not hold sockets.

``file://`` URLs are read from disk with the same size cap, so ``framewatch analyze FILE`` and
tests share the code path; their modification time plays the part of Last-Modified. Only an
opted-in URL given by a person may be one (``FetchPolicy.allows_file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from framewatch.ingest import outcomes as oc
from framewatch.ingest.addresses import (
    AddressRefused,
    FetchPolicy,
    RedirectRefused,
    Resolver,
    guarded_transport,
    private_allowed,
    redirect_refusal,
    refuse_other_schemes,
    system_resolve,
    url_refusal,
)
from framewatch.settings import Settings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DRAIN_MAX_BYTES = 65_536  # bodies of 304s, redirects and errors up to this are read to keep the connection
RATE_LIMIT_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_S = 7 * 86400.0  # a server's hint beyond a week is treated as a week
DECODED_CODINGS = frozenset({"gzip", "x-gzip", "deflate"})  # what we ask for in Accept-Encoding
CLIENT_IDLE_S = 120.0  # a host's pool unused this long is closed (feeds poll every 15 min or so)
MAX_HOSTS = 256  # at most this many hosts keep a pool; the least recently used idle one goes first
PUBLIC_ONLY = FetchPolicy()  # the default: public http(s) addresses only


class BodyTooLarge(Exception):
    """The body passed the size cap (internal to the fetcher; surfaces as ``too_large``)."""


class BadContentEncoding(Exception):
    """Stacked, unknown or corrupt Content-Encoding (surfaces as ``bad_content_encoding``)."""


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


def content_coding(value: str | None) -> str | None:
    """The one coding named by a Content-Encoding header, None for identity.

    Raises BadContentEncoding for a stack of codings (``gzip, gzip`` multiplies a bomb) or one
    we do not decode.
    """
    codings = [c.strip().lower() for c in (value or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1:
        raise BadContentEncoding(f"stacked Content-Encoding {value[:80]!r}" if value else "stacked")
    if codings and codings[0] not in DECODED_CODINGS:
        raise BadContentEncoding(f"unknown Content-Encoding {codings[0][:40]!r}")
    return codings[0] if codings else None


class CappedInflater:
    """Incremental gzip / deflate decoding that never produces more than it is allowed.

    Each step asks zlib for at most the room left plus one byte, so a bomb is caught at the cap
    instead of expanding in memory first. Concatenated gzip members are decoded in turn; bytes
    after the end of the stream are ignored, as browsers do.
    """

    def __init__(self, coding: str) -> None:
        self.gzip = coding in ("gzip", "x-gzip")
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if self.gzip else zlib.MAX_WBITS)
        self._started = False
        self._ended = False

    def decode(self, data: bytes, room: int) -> bytes:
        """Decode the next raw *data*; BodyTooLarge past *room* bytes, BadContentEncoding if corrupt."""
        out = bytearray()
        while data and not self._ended:
            try:
                out += self._zlib.decompress(data, room - len(out) + 1)
            except zlib.error as exc:
                if not self.gzip and not self._started:  # raw deflate, without the zlib wrapper
                    self._zlib, self._started = zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                raise BadContentEncoding(f"corrupt {'gzip' if self.gzip else 'deflate'} data: {exc}") from exc
            self._started = True
            if len(out) > room:
                raise BodyTooLarge("decoded body over the cap")
            if not self._zlib.eof:
                data = self._zlib.unconsumed_tail  # empty: the step was not cut short by the cap
            elif self.gzip and self._zlib.unused_data[:2] == b"\x1f\x8b":  # another member
                data = self._zlib.unused_data
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                self._ended = True
        return bytes(out)


async def read_decoded(raw: AsyncIterator[bytes], coding: str | None, max_bytes: int) -> bytes:
    """Read a raw body stream, decoding *coding* as it comes; BodyTooLarge once the raw or the
    decoded bytes pass *max_bytes*."""
    inflater = CappedInflater(coding) if coding else None
    parts: list[bytes] = []
    raw_size = size = 0
    async for chunk in raw:
        raw_size += len(chunk)
        if raw_size > max_bytes:  # also ends a compressed stream that never decodes to anything
            raise BodyTooLarge(f"body over {max_bytes} bytes")
        try:
            part = inflater.decode(chunk, max_bytes - size) if inflater else chunk
        except BodyTooLarge:
            raise BodyTooLarge(f"decoded body over {max_bytes} bytes") from None
        size += len(part)
        if size > max_bytes:
            raise BodyTooLarge(f"decoded body over {max_bytes} bytes")
        parts.append(part)
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


@dataclass(slots=True)
class _Host:
    """One host's request slots and connection pools (one pool per address rule)."""

    limit: asyncio.Semaphore
    clients: dict[bool, httpx.AsyncClient] = field(default_factory=dict)
    active: int = 0  # fetches using or waiting for this host: never evicted while above 0
    last_used: float = 0.0


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
        client_idle_s: float = CLIENT_IDLE_S,
        max_hosts: int = MAX_HOSTS,
        resolve: Resolver = system_resolve,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.per_host = per_host
        self.user_agent = user_agent
        self.client_idle_s = client_idle_s
        self.max_hosts = max_hosts
        self._resolve = resolve
        self._clock = clock
        self._total = asyncio.Semaphore(total)
        # One small connection pool per host: httpcore scans its whole pool for every request,
        # so one pool of `total` connections costs O(total^2) per cycle; per-host pools stay tiny.
        self._hosts: OrderedDict[str, _Host] = OrderedDict()  # least recently used first
        self._tls = httpx.create_ssl_context()  # one TLS context shared by every host's pool

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

    def open_hosts(self) -> list[str]:
        """The hosts holding a connection pool now, least recently used first."""
        return [key for key, host in self._hosts.items() if host.clients]

    async def aclose(self) -> None:
        """Close the pooled connections."""
        hosts, self._hosts = list(self._hosts.values()), OrderedDict()
        await _close(hosts)

    async def _evict_idle(self) -> None:
        """Close the pools of hosts idle for client_idle_s, and the least recently used ones past
        max_hosts: httpcore closes expired keep-alive sockets only when a pool is used again, so
        a pool left alone would hold its sockets for good."""
        now = self._clock()
        idle = [k for k, h in self._hosts.items() if not h.active and now - h.last_used >= self.client_idle_s]
        over = len(self._hosts) - len(idle) - self.max_hosts
        if over > 0:
            gone = set(idle)
            idle += [k for k, h in self._hosts.items() if not h.active and k not in gone][:over]
        await _close([self._hosts.pop(key) for key in idle])

    @contextlib.asynccontextmanager
    async def _using(self, url: str) -> AsyncIterator[_Host]:
        key = host_of(url)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(asyncio.Semaphore(self.per_host))
        self._hosts.move_to_end(key)
        host.active += 1  # before evicting, so this host is never the one closed
        try:
            await self._evict_idle()
            yield host
        finally:
            host.active -= 1
            host.last_used = self._clock()

    def _client(self, host: _Host, private_ok: bool) -> httpx.AsyncClient:
        client = host.clients.get(private_ok)
        if client is None:
            limits = httpx.Limits(max_connections=self.per_host, max_keepalive_connections=self.per_host)
            client = host.clients[private_ok] = httpx.AsyncClient(
                headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"},
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=False,
                trust_env=False,
                event_hooks={"response": [refuse_other_schemes]},
                transport=guarded_transport(
                    allow_private=private_ok, resolve=self._resolve, tls=self._tls, limits=limits
                ),
            )
        return client

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        policy: FetchPolicy = PUBLIC_ONLY,
    ) -> FetchResult:
        """Fetch *url* conditionally under *policy*; returns a FetchResult, never raises for I/O
        trouble. A URL from a sources file gets ``FetchPolicy(allow_private=source.allow_private)``,
        a URL the user typed ``FetchPolicy(allow_private=True)``, a link found in a feed
        ``FetchPolicy(allow_private=source.allow_private, site=source.url)``."""
        started = time.perf_counter()
        refusal = url_refusal(url, policy, given=True)
        if refusal:
            result = FetchResult(url, oc.REFUSED_URL, detail=refusal)
        elif urlsplit(url).scheme.lower() == "file":
            result = read_file_url(url, last_modified, self.max_bytes)
        else:
            result = await self._fetch_http(url, conditional_headers(etag, last_modified), policy)
        return _with_elapsed(result, time.perf_counter() - started)

    async def _fetch_http(self, url: str, headers: dict[str, str], policy: FetchPolicy) -> FetchResult:
        seen = {url}
        current = url
        deadline: float | None = None  # starts once a slot is ours: queueing is not the server's fault
        for _hop in range(self.max_redirects + 1):
            # host slot first: a task queued behind a busy host must not hold a global slot
            async with self._using(current) as host, host.limit, self._total:
                if deadline is None:
                    deadline = time.monotonic() + self.timeout_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return FetchResult(current, oc.TIMEOUT, detail="timed out across redirects")
                client = self._client(host, private_allowed(policy, url, current))
                try:
                    async with asyncio.timeout(remaining):
                        result, location = await self._one_request(client, current, headers)
                except AddressRefused as exc:
                    return FetchResult(current, oc.REFUSED_ADDRESS, detail=str(exc)[:300])
                except RedirectRefused as exc:
                    return FetchResult(current, oc.REFUSED_URL, status=exc.status, detail=str(exc))
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
            refusal = redirect_refusal(current, location) or url_refusal(location, policy, given=False)
            if refusal:
                return FetchResult(current, oc.REFUSED_URL, status=result.status,
                                   detail=f"{refusal}: {location[:200]}")
            if location in seen:
                return FetchResult(current, oc.REDIRECT_LOOP, status=result.status, detail=f"loops back to {location}")
            seen.add(location)
            current = location
        return FetchResult(current, oc.REDIRECT_LOOP, detail=f"more than {self.max_redirects} redirects")

    async def _one_request(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> tuple[FetchResult, str | None]:
        """One hop: the result, or the absolute Location to follow next."""
        async with client.stream("GET", url, headers=headers) as response:
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
            # raw bytes decoded here, not by httpx: it would decode a stack of codings and only
            # then hand us the chunks, so a bomb would expand before any cap could see it
            body = await read_decoded(response.aiter_raw(), content_coding(hdrs.get("content-encoding")), self.max_bytes)
        except BadContentEncoding as exc:
            return FetchResult(url, oc.BAD_CONTENT_ENCODING, status, detail=str(exc)[:300])
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


async def _close(hosts: list[_Host]) -> None:
    for host in hosts:
        for client in host.clients.values():
            await client.aclose()


def _with_elapsed(result: FetchResult, elapsed: float) -> FetchResult:
    return FetchResult(
        result.url, result.outcome, result.status, result.body, result.content_type, result.etag,
        result.last_modified, result.retry_after_s, elapsed, result.detail,
    )
