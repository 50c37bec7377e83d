"""The standalone poller's HTTP surface: ``/healthz`` and ``/metrics`` (Prometheus).

``creditwatch poller`` serves it on ``api.host``:``api.port`` so the QPS budget, the API's
replies and poll durations can be scraped. In ``creditwatch run`` both roles share one
process, and the service role's app serves the same registry.

Usage::

    async with listening(ops_app(), host=api.host, port=api.port, name="poller"): ...
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["ops_app"]


async def _healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


async def _metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def ops_app() -> Starlette:
    """``/healthz`` (the process is up) and ``/metrics`` (this process's registry)."""
    return Starlette(routes=[Route("/healthz", _healthz), Route("/metrics", _metrics)])
