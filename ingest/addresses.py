"""The fetch policy: which URLs the fetcher follows and which addresses it may connect to.

Feeds, and the pages they link to, are written by strangers, so every hop of a fetch (the first
request and each redirect) is held to these rules:

* only ``http`` and ``https``. ``file`` only for the URL a person gave (``framewatch analyze
  FILE``, or a sources entry with ``allow_private: true``), never after a redirect or for a link
  found in a feed (:func:`url_refusal`);
* no redirect from ``https`` down to ``http`` (:func:`redirect_refusal`);
* links found in a feed (thread pages, next pages) stay on the feed's own site, and so do their
  redirects (:func:`same_site`);
* after DNS resolution every address of the host must be public (:func:`address_refusal`), and
  the socket is then opened to one of those checked addresses (:class:`GuardedBackend`).

``allow_private`` opts one host into non-public addresses (loopback, RFC 1918, ULA, CGNAT, ...):
the host of the URL given, for an intranet feed or a URL the user typed. A redirect to another
host is held to the public rule again. Link-local addresses (where cloud metadata services
live) and multicast are refused even then: no feed is served from there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

WEB_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# metadata services outside 169.254/16: AWS over IPv6, Alibaba Cloud (inside CGNAT)
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))


class AddressRefused(Exception):
    """The host resolved to an address the policy refuses (surfaces as ``refused_address``)."""


class RedirectRefused(Exception):
    """A redirect to a scheme never followed (surfaces as ``refused_url``)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What one fetch may reach; the default reaches public http(s) addresses only.

    ``allow_private``: the URL's own host may have non-public addresses (a source's
    ``allow_private``, or a URL the user typed). ``site``: the URL is a link found in the feed
    at this URL, so it and its redirects must stay on that feed's site (:func:`same_site`).
    """

    allow_private: bool = False
    site: str | None = None

    @property
    def allows_file(self) -> bool:
        """``file:`` is a local resource: only an opted-in URL given by a person, never a link."""
        return self.allow_private and self.site is None


# --- URLs ----------------------------------------------------------------------------------------


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of *url*, lower-cased, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port out of range or not a number
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def same_site(feed_url: str, url: str) -> bool:
    """True when *url* has the feed's scheme, host and port (default ports filled in).

    One exception: an http feed on port 80 may link to https on port 443 of the same host, an
    upgrade (never a downgrade). Other subdomains of the host are other sites.
    """
    f_scheme, f_host, f_port = origin(feed_url)
    scheme, host, port = origin(url)
    if not f_host or host != f_host:
        return False
    upgrade = (f_scheme, f_port, scheme, port) == ("http", 80, "https", 443)
    return (scheme, port) == (f_scheme, f_port) or upgrade


def url_refusal(url: str, policy: FetchPolicy, *, given: bool) -> str | None:
    """Why *url* may not be requested under *policy*, or None. *given*: the URL the fetch was
    asked for (False for a redirect's Location)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return None if given and policy.allows_file else "file: URLs are read only when a person gave them"
    if scheme not in WEB_SCHEMES:
        return f"{scheme or 'scheme-less'}: URLs are not fetched"[:100]
    if not parts.hostname:
        return "no host"
    if policy.site is not None and not same_site(policy.site, url):
        return f"off the feed's site ({parts.hostname[:100]})"
    return None


def redirect_refusal(from_url: str, to_url: str) -> str | None:
    """Why a redirect from *from_url* to *to_url* may not be followed (scheme rules), or None."""
    to_scheme = urlsplit(to_url).scheme.lower()
    if to_scheme not in WEB_SCHEMES:
        return f"redirect to a {to_scheme or 'scheme-less'}: URL"[:100]
    if urlsplit(from_url).scheme.lower() == "https" and to_scheme == "http":
        return "redirect from https down to http"
    return None


async def refuse_other_schemes(response: httpx.Response) -> None:
    """Response hook: refuse a Location of another scheme while its status is known. httpx
    builds the next request even with redirects off, and raises on ``javascript:`` and such."""
    location = response.headers.get("location", "")
    if response.has_redirect_location and urlsplit(location).scheme:
        why = redirect_refusal(str(response.url), location)
        if why:
            raise RedirectRefused(response.status_code, f"{why}: {location[:200]}")


def private_allowed(policy: FetchPolicy, given_url: str, url: str) -> bool:
    """True when *url*'s host may resolve to non-public addresses: only the opted-in host itself."""
    host = origin(url)[1]
    return policy.allow_private and bool(host) and host == origin(given_url)[1]


# --- addresses -----------------------------------------------------------------------------------


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # :: and ::1 are IPv6's own
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why the fetcher may not connect to *ip*, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = address_refusal(inner, allow_private=allow_private)
            return f"{why} {inner} inside IPv6" if why else None
    if ip in _METADATA:
        return "cloud metadata address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip in _CGNAT:
        return "shared (CGNAT) address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "reserved address"
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address *host* resolves to, through the event loop's getaddrinfo, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> list[str]:
    """*addresses* of *host*, or AddressRefused if ANY of them is refused.

    One refused address is enough: a name that answers public and private addresses together
    is misconfigured or rebinding, and trying only its public ones would hide that.
    """
    checked: list[str] = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise AddressRefused(f"{host[:100]} resolves to {address[:60]!r}, not an address") from None
        why = address_refusal(ip, allow_private=allow_private)
        if why:
            raise AddressRefused(f"{host[:100]} resolves to {address}: {why}")
        checked.append(address)
    if not checked:
        raise AddressRefused(f"{host[:100]} resolves to no address")
    return checked


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows.

    The check runs at connect time, on every new connection (first request and each redirect),
    and the socket is opened to one of the addresses just checked, given as an IP literal, so no
    second lookup happens: a DNS answer that changes between check and connect (rebinding)
    cannot reach a refused address, and no byte is sent to one. TLS still verifies the
    certificate against the URL's host name: httpcore passes the origin's host as
    ``server_hostname``, not the address connected to.
    """

    def __init__(self, *, allow_private: bool, resolve: Resolver = system_resolve) -> None:
        self.allow_private = allow_private
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve *host*, refuse it if any address is refused, else connect to a checked one."""
        try:
            resolved = await self._resolve(host, port)
        except OSError as exc:  # no such name: a connection error, like any unreachable host
            raise httpcore.ConnectError(f"cannot resolve {host[:100]}: {exc}") from exc
        addresses = check_addresses(host, resolved, allow_private=self.allow_private)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # in the resolver's order, like a browser without happy eyeballs
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is never empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never used: feeds are fetched over TCP only."""
        raise AddressRefused("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop."""
        await self._inner.sleep(seconds)


def guarded_transport(
    *, allow_private: bool, resolve: Resolver, tls: ssl.SSLContext, limits: httpx.Limits
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through :class:`GuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(verify=tls, limits=limits, trust_env=False)
    # httpx (0.28) has no public hook for the network backend: its pool is replaced by one built
    # with the same arguments plus ours. tests/ingest/test_fetch_policy.py fails if this stops
    # taking effect (a loopback fetch that is not opted in would then answer).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(allow_private=allow_private, resolve=resolve),
    )
    return transport
