"""The SSRF guard on the address actually connected to, against real local servers: a DNS
rebinding to loopback is refused at connect time, and TLS keeps the hostname for SNI and the
certificate. (The refusals of the URLs themselves are unit tests: tests/unit/test_url_guard.py.)"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trustme

from service.deliver.url_guard import check_subscriber_url, guarded_client
from tests.support.receiver import WebhookSink


class Flipping:
    """DNS rebinding: public when the URL is checked, loopback by the time we connect."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, host: str) -> list[str]:
        self.calls += 1
        return ["93.184.215.14"] if self.calls == 1 else ["127.0.0.1"]


async def test_the_address_connected_to_is_checked_closing_the_rebinding_window() -> None:
    flipping = Flipping()
    async with WebhookSink() as sink:
        url = sink.url.replace("127.0.0.1", "localhost")
        await check_subscriber_url(
            url.replace("http://", "https://"), allow_private=False, resolve=flipping
        )
        async with guarded_client(allow_private=False, resolve=flipping) as http:
            with pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.1"):
                await http.post(url, content=b"{}")
    assert sink.received == []
    assert flipping.calls == 2  # resolved once to check, once to connect: never again


class TlsServer:
    """A one-route HTTPS server recording the SNI name and Host header it was sent."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self.context.sni_callback = self._sni
        self.names: list[str | None] = []
        self.hosts: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    def _sni(self, _: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        self.names.append(name)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        pairs = (line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        headers = {name.lower(): value for name, value in pairs}
        self.hosts.append(headers.get("host", ""))
        await reader.readexactly(int(headers.get("content-length", "0")))
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> TlsServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def loopback_for(name: str) -> Callable[[str], Awaitable[list[str]]]:
    async def resolve(host: str) -> list[str]:
        assert host == name
        return ["127.0.0.1"]

    return resolve


async def test_tls_keeps_the_hostname_for_sni_and_the_certificate() -> None:
    """Connecting to the checked address, not the name, must not weaken TLS: the handshake
    names the host and the certificate is verified for it. (Loopback is let through here,
    standing in for the public address a real name would have.)"""
    ca = trustme.CA()
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    name = "hooks.example.test"
    async with TlsServer(ca.issue_cert(name)) as server:
        async with guarded_client(
            allow_private=False,
            resolve=loopback_for(name),
            allowed=lambda address: address == "127.0.0.1",
            verify=trust,
        ) as http:
            answer = await http.post(f"https://{name}:{server.port}/hook", content=b"{}")
        assert answer.status_code == 204
        assert server.names == [name]
        assert server.hosts == [f"{name}:{server.port}"]
    async with (
        TlsServer(ca.issue_cert("someone-else.test")) as server,
        guarded_client(
            allow_private=False,
            resolve=loopback_for(name),
            allowed=lambda address: address == "127.0.0.1",
            verify=trust,
        ) as http,
    ):
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await http.post(f"https://{name}:{server.port}/hook", content=b"{}")
