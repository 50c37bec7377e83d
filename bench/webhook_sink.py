"""The benchmarks' fast webhook receiver: a bare asyncio + h11 HTTP/1.1 server in its own process.

Benchmark 7 sends about 1,000 webhooks/s at it (from creditwatch, then from Alertmanager);
Starlette on uvicorn in the same process as the probes would be the slowest hop. This one
parses with h11 (keep-alive, no ASGI), and records, with ``time.monotonic()`` (Linux's
CLOCK_MONOTONIC, one clock for every process on the machine), when each message arrived:

- ``POST /cw``: a creditwatch webhook. Its Standard Webhooks signature is verified (an
  unverified one is counted and answered 400); each ``webhook-id`` is counted, so a duplicate
  shows; a probe's (``PROBE_KIND``) first arrival is kept by its ``advertiser_id``, and the
  last new message's arrival (``cw_last``: how long the deliveries took to drain).
- ``POST /am``: an Alertmanager notification; a probe alert's first arrival is kept by its
  ``probe`` label.
- ``POST /alone``: verified and counted only (the sink measured on its own).
- ``GET /stats``: what arrived, as JSON; ``POST /reset`` forgets it (between phases).

Usage::

    port = start_sink(secret)          # in a child process; returns its port
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import socket
import time
from collections import Counter
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import h11
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

__all__ = ["PROBE_KIND", "PROBE_LABEL", "Sink", "start_sink"]

PROBE_LABEL = "probe"  # an Alertmanager probe alert's label
PROBE_KIND = "credit.exhausted"  # creditwatch's probes; the load is of other kinds
_READ = 65536


class Sink:
    """What arrived, and the HTTP handling that records it."""

    def __init__(self, secret: str) -> None:
        self._verifier = Webhook(secret)
        self.reset()

    def reset(self) -> None:
        self.ids: Counter[str] = Counter()
        self.unverified = 0
        self.probes: dict[str, float] = {}
        self.am_notifications = 0
        self.am_alerts = 0
        self.alone = 0
        self.cw_last: float | None = None  # when the last new creditwatch message arrived

    def stats(self) -> dict[str, Any]:
        return {
            "messages": sum(self.ids.values()),
            "unique": len(self.ids),
            "duplicates": sum(n - 1 for n in self.ids.values() if n > 1),
            "unverified": self.unverified,
            "probes": self.probes,
            "am_notifications": self.am_notifications,
            "am_alerts": self.am_alerts,
            "alone": self.alone,
            "cw_last": self.cw_last,
        }

    def handle(self, method: bytes, target: bytes, headers: dict[str, str], body: bytes) -> int:
        """Record one request; returns the status to answer."""
        at = time.monotonic()
        if target == b"/cw":
            try:
                payload = self._verifier.verify(body, headers)
            except WebhookVerificationError:
                self.unverified += 1
                return 400
            if headers["webhook-id"] not in self.ids:
                self.cw_last = at
            self.ids[headers["webhook-id"]] += 1
            if payload["type"] == PROBE_KIND:
                self.probes.setdefault(str(payload["data"]["advertiser_id"]), at)
            return 204
        if target == b"/am":
            notification = json.loads(body)
            self.am_notifications += 1
            for alert in notification["alerts"]:
                self.am_alerts += 1
                probe = alert["labels"].get(PROBE_LABEL)
                if probe is not None:
                    self.probes.setdefault(probe, at)
            return 204
        if target == b"/alone":
            try:
                self._verifier.verify(body, headers)
            except WebhookVerificationError:
                self.unverified += 1
                return 400
            self.alone += 1
            return 204
        if target == b"/reset" and method == b"POST":
            self.reset()
            return 204
        return 404

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One keep-alive connection, request after request."""
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(_READ))
                elif isinstance(event, h11.Request):
                    request, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body.extend(event.data)
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    writer.write(self._answer(conn, request, bytes(body)))
                    await writer.drain()
                    if conn.our_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
                else:  # ConnectionClosed, or the peer broke the protocol
                    return
        except (h11.RemoteProtocolError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, conn: h11.Connection, request: h11.Request, body: bytes) -> bytes:
        headers = {name.decode(): value.decode() for name, value in request.headers}
        if request.target == b"/stats":
            status, content = 200, json.dumps(self.stats()).encode()
        else:
            status, content = self.handle(request.method, request.target, headers, body), b""
        reply = [("content-length", str(len(content)))]
        if content:
            reply.append(("content-type", "application/json"))
        out = conn.send(h11.Response(status_code=status, headers=reply)) or b""
        if content:
            out += conn.send(h11.Data(data=content)) or b""
        return out + (conn.send(h11.EndOfMessage()) or b"")


def _run(secret: str, port_out: Queue[int], stop: Event) -> None:
    asyncio.run(_serve(secret, port_out, stop))


async def _serve(secret: str, port_out: Queue[int], stop: Event) -> None:
    sink = Sink(secret)
    server = await asyncio.start_server(sink.serve, "127.0.0.1", 0, backlog=1024)
    port_out.put(server.sockets[0].getsockname()[1])
    async with server:
        while not stop.is_set():  # noqa: ASYNC110 - a multiprocessing event, not an asyncio one
            await asyncio.sleep(0.2)


def start_sink(secret: str, stop: Event) -> tuple[SpawnProcess, int]:
    """The sink in a child process (until ``stop`` is set); returns it and its port."""
    spawn = multiprocessing.get_context("spawn")
    port_out: Queue[int] = spawn.Queue()
    process = spawn.Process(target=_run, args=(secret, port_out, stop), name="webhook-sink")
    process.start()
    return process, port_out.get(timeout=60)
