"""The transport's grants are stamped when a request reaches the wire: through httpx's real
HTTP transport (httpcore's trace hook) to a real local server, a request held up between its
grant and its send counts in the budget from its send."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from config.settings import TikTokSettings
from tests.support.fake_time import FakeMonotonic
from tests.support.recording_server import Answer, RecordingServer
from workers.api_budget import ApiBudget, RateLimits
from workers.tiktok.transport import ApiTransport

OK = Answer(200, {"code": 0, "message": "OK", "request_id": "r1", "data": {}})


class HeldUp(httpx.AsyncBaseTransport):
    """The real HTTP transport, reached ``stall_s`` (of ``clock``) after the grant."""

    def __init__(self, clock: FakeMonotonic, stall_s: float) -> None:
        self._clock = clock
        self._stall_s = stall_s
        self._http = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._clock.now += self._stall_s
        return await self._http.handle_async_request(request)

    async def aclose(self) -> None:
        await self._http.aclose()


async def test_a_request_sent_late_counts_from_its_send() -> None:
    clock = FakeMonotonic(1000.0)
    # One request a second: the next grant is due a second after the last request went out.
    budget = ApiBudget(RateLimits(1), margin_s=0.0, clock=clock, sleep=clock.sleep)
    async with RecordingServer(default=OK) as api:
        settings = TikTokSettings(base_url=api.url, access_token=SecretStr("t" * 20), max_retries=0)
        transport = ApiTransport(
            settings, budget=budget, transport=HeldUp(clock, 5.0), sleep=clock.sleep
        )
        try:
            await transport.get("/bc/balance/get/", {"bc_id": "7001"})  # granted at 1000
        finally:
            await transport.aclose()
    assert len(api.requests) == 1
    assert clock.now == 1005.0  # sent at 1005
    # Counted from its grant, the next would be free at once (1001 is past).
    assert await budget.acquire("/bc/balance/get/") == 1.0
