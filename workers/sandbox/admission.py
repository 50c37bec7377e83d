"""The sandbox API's request pipeline, shared by every endpoint: the token (40105), the
grants (40001), the QPS/QPM/QPD limits and suspensions (40100), injected faults (HTTP 500,
code 50000, latency; seeded dice, so runs repeat), the envelope, the simulated ``Date``
header, and the statistics of what clients did.

Usage::

    api = SandboxApi(simulation, clock, access_token=..., limiter=..., faults=...,
                     monotonic=time.monotonic, grants=grants)
    Route(f"{API_PREFIX}/bc/balance/get/", api.route(handler), methods=["GET"])
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import format_datetime
from typing import Any, Literal

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .clock import SimClock
from .envelope import BAD_TOKEN, OK, RATE_LIMITED, SYSTEM_ERROR, ApiError, envelope
from .grants import Grants
from .limits import RateLimiter
from .params import Handler
from .scenario import Faults
from .simulation import Simulation, UnknownAccountError

__all__ = ["API_PREFIX", "SANDBOX_APP", "SandboxApi", "SandboxStats"]

API_PREFIX = "/open_api/v1.3"


@dataclass
class SandboxStats:
    """What clients did, for tests and the demo to check a client's manners."""

    requests_by_path: Counter[str] = field(default_factory=Counter)
    replies_by_code: Counter[str] = field(default_factory=Counter)
    max_requests_per_second: int = 0
    throttled: int = 0
    # Refused because a suspension was on (counted in ``throttled`` too).
    suspended: int = 0
    # The latest API arrivals: (wall-clock time, path), for tests to see when calls came.
    arrivals: deque[tuple[float, str]] = field(
        default_factory=lambda: deque(maxlen=10_000), repr=False
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_by_path": dict(self.requests_by_path),
            "replies_by_code": dict(self.replies_by_code),
            "max_requests_per_second": self.max_requests_per_second,
            "throttled": self.throttled,
            "suspended": self.suspended,
        }


# Every token the sandbox accepts belongs to its one developer app: limits are per app.
SANDBOX_APP = "sandbox-app"


class _QpsWindow:
    """Arrivals per token in a sliding 1-second window (for the stats); throttled ones too."""

    def __init__(self) -> None:
        self._arrivals: dict[str, deque[float]] = {}

    def arrive(self, token: str, at: float) -> int:
        """Record one arrival; returns how many arrived in the second ending now."""
        arrivals = self._arrivals.setdefault(token, deque())
        while arrivals and arrivals[0] <= at - 1.0:
            arrivals.popleft()
        arrivals.append(at)
        return len(arrivals)


class SandboxApi:
    """The request pipeline shared by every API route."""

    def __init__(
        self,
        simulation: Simulation,
        clock: SimClock,
        *,
        access_token: str,
        limiter: RateLimiter,
        faults: Faults,
        monotonic: Callable[[], float],
        grants: Grants,
    ) -> None:
        self.grants = grants
        self.simulation = simulation
        self.clock = clock
        self.stats = SandboxStats()
        self._token = access_token
        self.limiter = limiter
        self._window = _QpsWindow()
        self._monotonic = monotonic
        self.faults = faults
        self._dice = random.Random(faults.seed)  # noqa: S311 - reproducible, not secret

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._dice = random.Random(faults.seed)  # noqa: S311

    def sync(self) -> None:
        """Bring the simulation up to the clock's time."""
        self.simulation.advance_to(self.clock.now())

    def route(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.call(request, handler)

        return endpoint

    async def call(self, request: Request, handler: Handler) -> Response:
        response = await self._answer(request, handler)
        # RFC 7231 Date, in simulated time: what the client takes for "now" at the API.
        response.headers["date"] = format_datetime(self.simulation.now.astimezone(UTC), usegmt=True)
        return response

    async def _answer(self, request: Request, handler: Handler) -> Response:
        self.stats.requests_by_path[request.url.path] += 1
        self.sync()
        try:
            self._admit(request.headers.get("Access-Token"), request.url.path)
            self._check_access(request.query_params)
            self._check_grant(request)
            if self.faults.latency_ms:
                await asyncio.sleep(self.faults.latency_ms / 1000)
            fault = self._roll_faults()
            if fault == "http_500":
                return self._count(PlainTextResponse("Internal Server Error", 500), fault)
            if fault == "error_code":
                raise ApiError(SYSTEM_ERROR, "System error, please retry later.")
            self.sync()
            data = handler(self.simulation, request.query_params)
        except ApiError as error:
            return self._count(envelope(error.code, error.message, {}), str(error.code))
        return self._count(envelope(OK, "OK", data), str(OK))

    def _admit(self, token: str | None, url_path: str) -> None:
        token = self.grants.admit(token)
        real = self._monotonic()
        path = url_path.removeprefix(API_PREFIX)
        self.stats.arrivals.append((time.time(), path))
        seen = self._window.arrive(token, real)
        self.stats.max_requests_per_second = max(self.stats.max_requests_per_second, seen)
        refusal = self.limiter.admit(SANDBOX_APP, path, real=real, sim=self.simulation.now)
        if refusal is not None:
            self.stats.throttled += 1
            if refusal == "suspended":
                self.stats.suspended += 1
            raise ApiError(RATE_LIMITED, "Too many requests. Please retry in some time.")

    def _check_access(self, params: QueryParams) -> None:
        """40105 for a business center (or one of its accounts) whose access is revoked."""
        bc_id = params.get("bc_id")
        advertiser_id = params.get("advertiser_id")
        if bc_id is None and advertiser_id is not None:
            with contextlib.suppress(UnknownAccountError):
                bc_id = self.simulation.account(advertiser_id).bc_id
        if bc_id is not None and self.simulation.revoked(bc_id):
            raise ApiError(BAD_TOKEN, "Access token is incorrect or has been revoked.")

    def _check_grant(self, request: Request) -> None:
        """40001 for a business center (or account) the token does not reach, or a payment
        endpoint without a Finance role there (see ``grants``)."""
        params = request.query_params
        bc_id = params.get("bc_id")
        advertiser_id = params.get("advertiser_id")
        if bc_id is None and advertiser_id is not None:
            with contextlib.suppress(UnknownAccountError):
                bc_id = self.simulation.account(advertiser_id).bc_id
        path = request.url.path.removeprefix(API_PREFIX)
        self.grants.authorize(request.headers.get("Access-Token", ""), path, bc_id)

    def _roll_faults(self) -> Literal["http_500", "error_code"] | None:
        # Both dice are rolled on every admitted request, so the fault sequence depends only
        # on the seed and the request count, not on which rates are set.
        http_roll, code_roll = self._dice.random(), self._dice.random()
        if http_roll < self.faults.http_500_rate:
            return "http_500"
        if code_roll < self.faults.error_code_rate:
            return "error_code"
        return None

    def _count(self, response: Response, code: str) -> Response:
        self.stats.replies_by_code[code] += 1
        return response
