"""One POST to a receiver, its reply read within bounds: size, the whole attempt's time, no
decompression.

A receiver's reply is untrusted: a 300 MB body, a gzip bomb or a reply dripped a byte at a
time must not grow the process or hold the attempt past its timeout (and so past the
delivery lease, which would send it twice). So the request asks for ``identity`` encoding and
the reply is read raw (never inflated), only its first ``MAX_REPLY_BYTES`` are kept and the
connection is closed on the rest, and one deadline covers connect, send and the whole reply:
httpx's own timeout bounds each read, not their sum.

The request is built here, not by the client's ``build_request``: a receiver's POST needs
none of what that merges in (base URL, params, cookies), and under an alert burst building it
there cost about as much as a third of the transport's own work per request. The client still
sends it (its mounts, proxies, hooks and guarded transport apply), except on the receivers'
own client (``http_transport.DirectClient``, which has none of those): there the POST goes to
its transport's ``post`` as bytes, past httpx's request and response objects, within the
same bounds.

Usage::

    reply = await post(http, url, content=body, headers=headers, timeout_s=15)
    reply.status_code, reply.headers.get("retry-after"), reply.body   # TimeoutError on time
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from service.deliver.http_transport import DirectClient

__all__ = ["MAX_REPLY_BYTES", "Reply", "post"]

# Enough for any error message a receiver means us to read (Slack's is a word).
MAX_REPLY_BYTES = 64 * 1024
# What the client's defaults would add, under our own name.
_HEADERS = {"accept": "*/*", "user-agent": "creditwatch"}


@dataclass(frozen=True)
class Reply:
    """A receiver's answer: the status, the headers, and at most ``MAX_REPLY_BYTES`` of the
    body as it came over the wire."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    truncated: bool


async def post(
    http: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    content: bytes | str,
    headers: dict[str, str],
    timeout_s: float,
    max_bytes: int = MAX_REPLY_BYTES,
) -> Reply:
    """POST and read the reply; TimeoutError once ``timeout_s`` has passed in all, else the
    reply or httpx's TransportError."""
    if isinstance(http, DirectClient):
        # The receivers' own client: past httpx's request and response objects, which cost
        # as much as the rest of the POST (the transport reads within the same bounds).
        body = content.encode() if isinstance(content, str) else content
        fields = {**_HEADERS, **headers, "accept-encoding": "identity"}
        async with asyncio.timeout(timeout_s):
            target = url if isinstance(url, httpx.URL) else httpx.URL(url)  # parsed once
            raw = await http.post_raw(target, list(fields.items()), body, max_bytes=max_bytes)
        return Reply(raw.status_code, httpx.Headers(raw.headers), raw.body, raw.truncated)
    request = httpx.Request(
        "POST",
        url,
        content=content,
        headers={**_HEADERS, **headers, "accept-encoding": "identity"},
        extensions={"timeout": httpx.Timeout(timeout_s).as_dict()},
    )
    async with asyncio.timeout(timeout_s):
        response = await http.send(request, stream=True)
        try:
            body, truncated = await _read_raw(response, max_bytes)
        finally:
            await response.aclose()  # before the whole body, this closes the connection
    return Reply(response.status_code, response.headers, body, truncated)


async def _read_raw(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The first ``max_bytes`` of the body as it came, and whether there was more."""
    body = bytearray()
    # Raw: a compressed reply is kept compressed, never inflated past the cap.
    async for chunk in response.aiter_raw():
        room = max_bytes - len(body)
        body += chunk[:room]
        if len(chunk) > room:
            return bytes(body), True
    return bytes(body), False
