"""Refusing subscriber URLs that would let an API caller reach inside our network (SSRF).

A webhook URL must be https, and its host must resolve only to public addresses: no loopback,
link-local (cloud metadata lives there), private, shared, multicast or reserved ranges.
``CREDITWATCH_NOTIFY__ALLOW_PRIVATE_URLS`` lifts both rules for labs and tests.

Usage::

    await check_subscriber_url("https://hooks.example.com/cw", allow_private=False)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

__all__ = ["UnsafeUrl", "check_subscriber_url"]

Resolver = Callable[[str], Awaitable[list[str]]]


class UnsafeUrl(ValueError):
    """The URL may not be used as a subscriber; the message says why."""


async def _resolve(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:  # UnicodeError: not a valid IDNA name
        raise UnsafeUrl(f"host {host!r} does not resolve") from error
    return [str(info[4][0]) for info in infos]


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


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
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = await resolve(host)
    blocked = [a for a in addresses if not _public(a)]
    if blocked or not addresses:
        raise UnsafeUrl(f"host {host!r} is not public ({', '.join(blocked) or 'no address'})")
