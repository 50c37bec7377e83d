"""Refusing subscriber URLs that would let an API caller reach inside our network (SSRF).

A webhook URL must be https, and its host must resolve only to public addresses: no loopback,
link-local (cloud metadata lives there), private, shared, multicast or reserved ranges, and
no IPv6 form that carries such an IPv4 address inside it (IPv4-mapped, NAT64, 6to4) or that
tunnels or translates to one we cannot see (IPv4-compatible, SIIT, Teredo, site-local).
``CREDITWATCH_NOTIFY__ALLOW_PRIVATE_URLS`` lifts these rules for labs and tests.

Checking the URL when it is stored is not enough: its name may resolve elsewhere by the time
we connect (DNS rebinding). ``guarded_client`` connects through ``GuardedBackend``, which
resolves once, checks every address, and connects to a checked one; the URL's hostname still
goes in the Host header and the TLS handshake (SNI and certificate check), because httpcore
takes those from the request, not from the address connected to.

Usage::

    await check_subscriber_url("https://hooks.example.com/cw", allow_private=False)
    async with guarded_client(allow_private=False) as http: ...
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = [
    "GuardedBackend",
    "RefusedAddress",
    "UnsafeUrl",
    "check_subscriber_url",
    "guarded_client",
    "public",
]

Resolver = Callable[[str], Awaitable[list[str]]]

# IPv6 forms refused whatever they carry: they reach an IPv4 network (or a tunnel) through a
# translator, so the address really connected to is not the one we would check.
_TRANSLATED = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0:0/96",  # SIIT, IPv4-translated
        "64:ff9b:1::/48",  # NAT64, local use
        "2001::/32",  # Teredo
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """The URL may not be used as a subscriber; the message says why."""


class RefusedAddress(httpcore.ConnectError):
    """A connection the guard refused; httpx reports it as a ``ConnectError``."""


async def _resolve(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:  # UnicodeError: not a valid IDNA name
        raise UnsafeUrl(f"host {host!r} does not resolve") from error
    return [str(info[4][0]) for info in infos]


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (well-known prefix) or 6to4 address carries."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def public(address: str) -> bool:
    """True for a globally reachable unicast address (an embedded IPv4 judged as itself)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _TRANSLATED):
            return False
        inner = _embedded_v4(ip)
        if inner is not None:
            return public(str(inner))
    return ip.is_global and not ip.is_multicast


async def _public_addresses(
    host: str, resolve: Resolver, allowed: Callable[[str], bool] = public
) -> list[str]:
    """Every address of ``host`` if all are ``allowed``, else UnsafeUrl naming the others."""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = await resolve(host)
    blocked = [a for a in addresses if not allowed(a)]
    if blocked or not addresses:
        raise UnsafeUrl(f"host {host!r} is not public ({', '.join(blocked) or 'no address'})")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses it has just checked."""

    def __init__(
        self, resolve: Resolver = _resolve, allowed: Callable[[str], bool] = public
    ) -> None:
        self._resolve = resolve
        self._allowed = allowed
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await _public_addresses(host, self._resolve, self._allowed)
        except UnsafeUrl as error:
            raise RefusedAddress(str(error)) from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # addresses is never empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("unix sockets are not subscriber endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: GuardedBackend, verify: ssl.SSLContext | None) -> None:
        super().__init__()
        # httpx takes no network backend: the pool it built is replaced by one that has ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify or httpx.create_ssl_context(), network_backend=backend
        )


def guarded_client(
    *,
    allow_private: bool,
    resolve: Resolver = _resolve,
    allowed: Callable[[str], bool] = public,
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """A client for subscriber endpoints: every connection checked (unless ``allow_private``).

    ``allowed`` judges each address (``public``); ``verify`` replaces the default trust
    store (tests with their own CA).
    """
    if allow_private:
        return httpx.AsyncClient()
    return httpx.AsyncClient(transport=_GuardedTransport(GuardedBackend(resolve, allowed), verify))


async def check_subscriber_url(
    url: str, *, allow_private: bool, resolve: Resolver = _resolve
) -> None:
    """Raise UnsafeUrl unless ``url`` is https and every address of its host is public."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as error:  # e.g. an unbalanced IPv6 bracket
        raise UnsafeUrl(f"not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeUrl("must be an http(s) URL with a host")
    if allow_private:
        return
    if parts.scheme != "https":
        raise UnsafeUrl("must be https")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials")
    await _public_addresses(host, resolve)
