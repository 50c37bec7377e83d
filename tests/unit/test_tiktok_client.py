"""TikTokClient against httpx.MockTransport, with no-op sleeps and a fake-clock budget."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from pydantic import SecretStr

from config.settings import TikTokSettings
from tests.support.fake_time import FakeMonotonic
from workers import suspensions, tiktok
from workers.api_budget import ApiBudget, RateLimits
from workers.contract import wire
from workers.suspensions import Pause
from workers.tiktok import (
    ApiError,
    AuthError,
    BadRequest,
    MalformedReply,
    PermissionDenied,
    RateLimited,
    TikTokClient,
    TikTokError,
    TransientError,
)

TOKEN = "tok-SECRET-5f0c1e2d3a4b"
BASE_URL = "https://api.example.test/open_api/v1.3"

Reply = httpx.Response | Exception
Handler = Callable[[httpx.Request], Reply]
Logs = list[MutableMapping[str, Any]]


def ok(data: Any, request_id: str = "req-ok") -> httpx.Response:
    body = {"code": 0, "message": "OK", "request_id": request_id, "data": data}
    return httpx.Response(200, content=wire.dumps(body))


def api_code(code: int, message: str = "nope", request_id: str = "req-err") -> httpx.Response:
    body = {"code": code, "message": message, "request_id": request_id, "data": {}}
    return httpx.Response(200, json=body)


def raw(body: bytes | str, status: int = 200) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=content)


class FixedRng(random.Random):
    """``random()`` always returns the same value, so backoff delays are predictable."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class Api:
    """A scripted server plus a client wired to it; records requests and backoff sleeps."""

    def __init__(
        self,
        script: Handler | list[Reply],
        *,
        qps: float = 1000.0,
        rng: random.Random | None = None,
        **settings: Any,
    ) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.clock = FakeMonotonic()
        options: dict[str, Any] = {"max_retries": 3, "backoff_base_s": 0.5, **settings}
        self.budget = ApiBudget(
            RateLimits(qps),
            suspension_s=options.get("suspension_s", 300.0),
            suspend_after_s=options.get("suspend_after_s", 3.0),
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        self._script = script
        self.settings = TikTokSettings(base_url=BASE_URL, access_token=SecretStr(TOKEN), **options)
        self.client = TikTokClient(
            self.settings,
            budget=self.budget,
            transport=httpx.MockTransport(self._handle),
            sleep=self._sleep,
            rng=rng if rng is not None else FixedRng(0.5),
        )

    async def _sleep(self, seconds: float) -> None:
        # Backoff takes (fake) time too: the client's suspensions judge it on this clock.
        self.sleeps.append(seconds)
        self.clock.now += seconds

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if callable(self._script):
            reply = self._script(request)
        else:
            # The last scripted reply repeats forever.
            reply = self._script[min(len(self.requests), len(self._script)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def params(self, index: int = -1) -> dict[str, str]:
        return dict(self.requests[index].url.params)


MakeApi = Callable[..., Api]


@pytest.fixture
async def make_api() -> AsyncIterator[MakeApi]:
    made: list[Api] = []

    def make(script: Handler | list[Reply], **kwargs: Any) -> Api:
        api = Api(script, **kwargs)
        made.append(api)
        return api

    yield make
    for api in made:
        await api.client.aclose()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Logs]:
    with structlog.testing.capture_logs() as captured:
        # A fresh proxy: the module's one may have been cached under another configuration
        # (service.logs sets cache_logger_on_first_use) by an earlier test.
        for module in (tiktok.client, tiktok.transport):
            monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))
        yield captured


# -- the envelope ---------------------------------------------------------------------


async def test_ok_envelope_returns_data(make_api: MakeApi) -> None:
    api = make_api([ok({"bc_id": "7001", "currency": "USD"})])
    data = await api.client.get("/bc/balance/get/", {"bc_id": "7001"})
    assert data == {"bc_id": "7001", "currency": "USD"}
    assert len(api.requests) == 1


async def test_message_text_is_not_compared(make_api: MakeApi) -> None:
    body = {"code": 0, "message": "ok", "request_id": "r", "data": {"x": 1}}
    api = make_api([httpx.Response(200, json=body)])
    assert await api.client.get("/bc/balance/get/", {}) == {"x": 1}


async def test_sends_access_token_header_and_json_params(make_api: MakeApi) -> None:
    api = make_api([ok({"advertiser_account_list": [], "page_info": {"total_page": 1}})])
    await api.client.advertiser_balances("7001")
    request = api.requests[0]
    assert request.method == "GET"
    assert request.url.path == "/open_api/v1.3/advertiser/balance/get/"
    assert request.headers["Access-Token"] == TOKEN
    assert "Authorization" not in request.headers
    # No `fields`: under the literal reading a list would drop currency and name.
    assert api.params() == {"bc_id": "7001", "page": "1", "page_size": "50"}


async def test_param_encoding(make_api: MakeApi) -> None:
    api = make_api([ok({})])
    params = {
        "filtering": {"keyword": "shop", "advertiser_status": ["A", "B"]},
        "ids": ("1", "2"),
        "flag": True,
        "amount": Decimal("1.10"),
        "skipped": None,
    }
    await api.client.get("/x/", params)
    assert api.params() == {
        "filtering": '{"keyword":"shop","advertiser_status":["A","B"]}',
        "ids": '["1","2"]',
        "flag": "true",
        "amount": "1.10",
    }
    assert json.loads(api.params()["filtering"])["advertiser_status"] == ["A", "B"]


async def test_money_is_parsed_as_exact_decimal(make_api: MakeApi) -> None:
    body = (
        b'{"code":0,"message":"OK","request_id":"r","data":'
        b'{"a":0.1,"b":0.2,"grant_balance":12.30,"big":12345678901234567.89,"n":7}}'
    )
    api = make_api([raw(body)])
    data = await api.client.get("/bc/balance/get/", {"bc_id": "1"})
    assert data["a"] + data["b"] == Decimal("0.3")
    assert isinstance(data["grant_balance"], Decimal)
    assert str(data["grant_balance"]) == "12.30"
    assert data["big"] == Decimal("12345678901234567.89")
    assert data["n"] == 7
    assert isinstance(data["n"], int)


# -- retries --------------------------------------------------------------------------


async def test_throttled_twice_then_ok(make_api: MakeApi, logs: Logs) -> None:
    endpoint = "/bc/balance/get/"
    before_retries = metric("creditwatch_api_retries_total", endpoint=endpoint, reason="throttled")
    before_40100 = metric("creditwatch_api_calls_total", endpoint=endpoint, code="40100")
    before_ok = metric("creditwatch_api_calls_total", endpoint=endpoint, code="0")
    api = make_api([api_code(40100), api_code(40100), ok({"fine": True})])

    assert await api.client.get(endpoint, {"bc_id": "1"}) == {"fine": True}

    assert len(api.requests) == 3
    # min(30, 0.5 * 2**attempt) * 0.5 for attempts 0 and 1
    assert api.sleeps == [0.25, 0.5]
    assert api.budget.granted == 3  # every attempt took a grant
    after_retries = metric("creditwatch_api_retries_total", endpoint=endpoint, reason="throttled")
    assert after_retries - before_retries == 2
    after_40100 = metric("creditwatch_api_calls_total", endpoint=endpoint, code="40100")
    assert after_40100 - before_40100 == 2
    after_ok = metric("creditwatch_api_calls_total", endpoint=endpoint, code="0")
    assert after_ok - before_ok == 1
    retries = [entry for entry in logs if entry["event"] == "api.retry"]
    assert [entry["attempt"] for entry in retries] == [1, 2]
    assert all(entry["log_level"] == "warning" for entry in retries)
    assert all(entry["code"] == 40100 and entry["endpoint"] == endpoint for entry in retries)
    assert [entry["delay"] for entry in retries] == [0.25, 0.5]


@pytest.mark.parametrize("code", [40100, 40133, 40132, 40016, 61000])
async def test_throttled_forever_raises_rate_limited_when_pausing_is_off(
    make_api: MakeApi, code: int
) -> None:
    api = make_api(
        [api_code(code, request_id="req-last")],
        max_retries=4,
        backoff_max_s=1.0,
        suspension_s=0,
    )
    with pytest.raises(RateLimited) as caught:
        await api.client.get("/bc/balance/get/", {"bc_id": "1"})
    assert len(api.requests) == 5  # max_retries + 1
    assert api.sleeps == [0.25, 0.5, 0.5, 0.5]  # capped at backoff_max_s, then jittered
    assert caught.value.code == code
    assert caught.value.request_id == "req-last"
    assert caught.value.endpoint == "/bc/balance/get/"
    assert isinstance(caught.value, TransientError)


async def test_zero_retries_means_one_attempt(make_api: MakeApi) -> None:
    api = make_api([api_code(40100)], max_retries=0, suspension_s=0)
    with pytest.raises(RateLimited):
        await api.client.get("/bc/balance/get/", {})
    assert len(api.requests) == 1
    assert api.sleeps == []


@pytest.mark.parametrize("code", [40100, 61000, 40133])
async def test_a_persistent_throttle_pauses_the_endpoint_and_spends_no_retry(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Throttled for 10 s (a suspension): the client backs off for ``suspend_after_s``, then
    sends nothing for ``suspension_s``, then carries on with its retries unspent."""
    endpoint = "/advertiser/balance/get/"
    sent_at: list[float] = []
    clock_of: list[FakeMonotonic] = []

    def server(request: httpx.Request) -> httpx.Response:
        now = clock_of[0].now
        sent_at.append(now)
        return api_code(code) if now < 10.0 else ok({"fine": True})

    api = make_api(server, max_retries=2, suspension_s=300.0, suspend_after_s=3.0)
    clock_of.append(api.clock)
    pauses: list[Pause] = []

    async def told(pause: Pause) -> None:
        pauses.append(pause)

    monkeypatch.setattr(suspensions, "log", structlog.get_logger(suspensions.__name__))
    before = metric("creditwatch_api_suspensions_total", endpoint=endpoint)
    # The gauge is process-wide: other tests' budgets may have left their pauses in it.
    paused_before = metric("creditwatch_api_suspended", endpoint=endpoint)
    with structlog.testing.capture_logs() as logs, tiktok.pause_listener(told):
        assert await api.client.get(endpoint, {"bc_id": "1"}) == {"fine": True}

    # Backoff 0.25, 0.5, 1, 2 (jitter fixed at 0.5): five throttles over 3.75 s, then the
    # pause, then one request that gets through: six attempts with max_retries=2.
    assert sent_at == pytest.approx([0.0, 0.25, 0.75, 1.75, 3.75, 303.75])
    assert api.sleeps[:4] == [0.25, 0.5, 1.0, 2.0]
    [pause] = pauses
    assert (pause.endpoint, pause.code) == (endpoint, code)
    assert (pause.until - pause.since).total_seconds() == pytest.approx(300.0)
    assert metric("creditwatch_api_suspensions_total", endpoint=endpoint) == before + 1
    assert metric("creditwatch_api_suspended", endpoint=endpoint) == paused_before
    events = [entry["event"] for entry in logs]
    assert events.count("api.suspended") == 1
    assert events.count("api.resumed") == 1
    assert "api.gave_up" not in events
    assert api.budget.suspensions.active() == []


async def test_a_throttled_probe_pauses_again_at_once(make_api: MakeApi) -> None:
    """Still suspended when the pause ends: one probe, then a pause twice as long."""
    sent_at: list[float] = []
    clock_of: list[FakeMonotonic] = []

    def server(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock_of[0].now)
        return api_code(40100) if clock_of[0].now < 400.0 else ok({})

    api = make_api(server, suspension_s=300.0, suspend_after_s=3.0)
    clock_of.append(api.clock)
    await api.client.get("/bc/balance/get/", {})
    # Throttles until 3.75 s, the probe at 303.75 s (throttled: paused again at once, for
    # 600 s), the next probe at 903.75 s.
    assert sent_at == pytest.approx([0.0, 0.25, 0.75, 1.75, 3.75, 303.75, 903.75])


async def test_throttles_between_successes_are_no_suspension(make_api: MakeApi) -> None:
    """A QPS blip: throttles, then a success, then throttles again, never for 3 s straight."""
    replies = [api_code(40100), api_code(40100), ok({"a": 1})] * 4
    api = make_api(replies, suspension_s=300.0, suspend_after_s=3.0, backoff_base_s=1.0)
    for _ in range(4):
        assert await api.client.get("/bc/balance/get/", {}) == {"a": 1}
    assert api.budget.suspensions.active() == []
    assert max(api.sleeps) <= 1.0  # backoffs only, no pause


async def test_full_jitter_stays_within_the_cap(make_api: MakeApi) -> None:
    api = make_api([api_code(50000)], max_retries=8, backoff_max_s=2.0, rng=random.Random(1234))
    with pytest.raises(TransientError):
        await api.client.get("/bc/balance/get/", {})
    caps = [min(2.0, 0.5 * 2**attempt) for attempt in range(8)]
    assert len(api.sleeps) == 8
    assert all(0.0 <= delay <= cap for delay, cap in zip(api.sleeps, caps, strict=True))
    assert len(set(api.sleeps)) == 8  # jittered, not fixed


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(httpx.Response(500, text="oops"), id="http-500"),
        pytest.param(httpx.Response(503), id="http-503"),
        pytest.param(api_code(50000), id="code-50000"),
        pytest.param(api_code(50002), id="code-50002"),
        pytest.param(api_code(60001), id="code-60001"),
        pytest.param(httpx.ReadTimeout("timed out"), id="read-timeout"),
        pytest.param(httpx.ConnectTimeout("timed out"), id="connect-timeout"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.Response(429), id="http-429"),
    ],
)
async def test_transient_failure_then_ok(make_api: MakeApi, first: Reply) -> None:
    api = make_api([first, ok({"fine": True})])
    assert await api.client.get("/bc/balance/get/", {}) == {"fine": True}
    assert len(api.requests) == 2
    assert api.sleeps == [0.25]


async def test_http_500_then_ok_is_counted(make_api: MakeApi) -> None:
    endpoint = "/bc/balance/get/"
    before = metric("creditwatch_api_calls_total", endpoint=endpoint, code="http_500")
    before_retry = metric("creditwatch_api_retries_total", endpoint=endpoint, reason="http_5xx")
    api = make_api([httpx.Response(500), ok({})])
    await api.client.get(endpoint, {})
    assert metric("creditwatch_api_calls_total", endpoint=endpoint, code="http_500") == before + 1
    after_retry = metric("creditwatch_api_retries_total", endpoint=endpoint, reason="http_5xx")
    assert after_retry == before_retry + 1


async def test_timeout_then_ok_is_counted(make_api: MakeApi) -> None:
    endpoint = "/bc/balance/get/"
    before = metric("creditwatch_api_calls_total", endpoint=endpoint, code="timeout")
    api = make_api([httpx.ReadTimeout("slow"), ok({"fine": True})])
    assert await api.client.get(endpoint, {}) == {"fine": True}
    assert metric("creditwatch_api_calls_total", endpoint=endpoint, code="timeout") == before + 1


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(httpx.Response(502), id="http-502"),
        pytest.param(httpx.ReadTimeout("slow"), id="timeout"),
        pytest.param(httpx.ConnectError("refused"), id="transport"),
        pytest.param(api_code(50002), id="maintenance"),
    ],
)
async def test_transient_forever_raises_transient_error(make_api: MakeApi, reply: Reply) -> None:
    api = make_api([reply])
    with pytest.raises(TransientError) as caught:
        await api.client.get("/bc/balance/get/", {})
    assert not isinstance(caught.value, RateLimited)
    assert len(api.requests) == 4
    assert "gave up after 4 attempts" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (40105, AuthError),
        (40104, AuthError),
        (40102, AuthError),
        (40106, AuthError),
        (40107, AuthError),
        (40001, PermissionDenied),
        (40002, BadRequest),
        (40003, ApiError),
        (51234, ApiError),
    ],
)
async def test_non_retryable_codes_raise_after_one_attempt(
    make_api: MakeApi, code: int, error: type[TikTokError]
) -> None:
    api = make_api([api_code(code, message="bad thing", request_id="req-1"), ok({})])
    with pytest.raises(error) as caught:
        await api.client.get("/bc/balance/get/", {"bc_id": "1"})
    assert type(caught.value) is error
    assert len(api.requests) == 1
    assert api.sleeps == []
    assert caught.value.code == code
    assert caught.value.request_id == "req-1"
    assert caught.value.endpoint == "/bc/balance/get/"
    assert "bad thing" in str(caught.value)


async def test_unexpected_http_status_without_envelope(make_api: MakeApi) -> None:
    api = make_api([httpx.Response(404, text="<html>not found</html>")])
    with pytest.raises(ApiError, match="HTTP 404"):
        await api.client.get("/nope/", {})
    assert len(api.requests) == 1


async def test_error_envelope_on_http_error_status_keeps_its_code(make_api: MakeApi) -> None:
    body = {"code": 40105, "message": "token expired", "request_id": "r", "data": {}}
    api = make_api([httpx.Response(401, json=body)])
    with pytest.raises(AuthError):
        await api.client.get("/bc/balance/get/", {})


# -- malformed replies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param(b"<html>gateway</html>", "not JSON", id="html"),
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"\xff\xfe\x00", "not JSON", id="binary"),
        pytest.param(b"[1, 2]", "an array, not a JSON object", id="array"),
        pytest.param(b'{"message": "OK", "data": {}}', "lacks 'code'", id="no-code"),
        pytest.param(b'{"code": "0", "data": {}}', "has 'code' a string", id="code-text"),
        pytest.param(b'{"code": true, "data": {}}', "has 'code' a boolean", id="code-bool"),
        pytest.param(b'{"code": 0, "data": [1]}', "'data' is an array", id="data-array"),
        pytest.param(b'{"code": 0}', "'data' is missing", id="data-missing"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "not JSON", id="deep-nesting"),
    ],
)
async def test_malformed_reply(make_api: MakeApi, body: bytes, why: str) -> None:
    endpoint = "/bc/balance/get/"
    before = metric("creditwatch_api_calls_total", endpoint=endpoint, code="malformed")
    api = make_api([raw(body), ok({})])
    with pytest.raises(MalformedReply, match=why):
        await api.client.get(endpoint, {})
    assert len(api.requests) == 1
    assert metric("creditwatch_api_calls_total", endpoint=endpoint, code="malformed") == before + 1


async def test_malformed_reply_text_is_truncated(make_api: MakeApi) -> None:
    api = make_api([raw("x" * 10_000)])
    with pytest.raises(MalformedReply) as caught:
        await api.client.get("/bc/balance/get/", {})
    assert len(str(caught.value)) < 400


# -- paging and endpoints ---------------------------------------------------------------


def balance_page(rows: list[Any], page: int, total_page: int) -> httpx.Response:
    page_info = {"page": page, "page_size": 2, "total_number": 5, "total_page": total_page}
    return ok({"advertiser_account_list": rows, "page_info": page_info})


def pager(pages: dict[int, list[Any]], total_page: int) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return balance_page(pages.get(page, []), page, total_page)

    return handle


async def test_pages_through_all_rows_once_in_order(make_api: MakeApi) -> None:
    pages = {
        1: [{"advertiser_id": "1"}, {"advertiser_id": "2"}],
        2: [{"advertiser_id": "3"}, {"advertiser_id": "4"}],
        3: [{"advertiser_id": "5"}],
    }
    api = make_api(pager(pages, total_page=3), page_size=2)
    rows = await api.client.advertiser_balances("7001")
    assert [row["advertiser_id"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert [api.params(i)["page"] for i in range(len(api.requests))] == ["1", "2", "3"]
    assert {api.params(i)["page_size"] for i in range(3)} == {"2"}
    assert {api.params(i)["bc_id"] for i in range(3)} == {"7001"}


async def test_paging_stops_on_an_empty_page(make_api: MakeApi) -> None:
    api = make_api(pager({1: [{"advertiser_id": "1"}]}, total_page=9))
    rows = await api.client.advertiser_balances("7001")
    assert rows == [{"advertiser_id": "1"}]
    assert len(api.requests) == 2


async def test_paging_stops_at_the_page_limit(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    monkeypatch.setattr(tiktok.client, "MAX_PAGES", 3)
    api = make_api(lambda request: balance_page([{"advertiser_id": "x"}], 1, 1_000_000))
    rows = await api.client.advertiser_balances("7001")
    assert len(rows) == 3
    assert len(api.requests) == 3
    assert any(entry["event"] == "api.paging_truncated" for entry in logs)


async def test_no_accounts(make_api: MakeApi) -> None:
    api = make_api([balance_page([], 1, 0)])
    assert await api.client.advertiser_balances("7001") == []
    assert len(api.requests) == 1


async def test_non_object_rows_are_rejected_and_counted(make_api: MakeApi, logs: Logs) -> None:
    source = "advertiser_balance"
    before = metric("creditwatch_accounts_rejected_total", source=source)
    api = make_api([balance_page([{"advertiser_id": "1"}, "junk", None, 5], 1, 1)])
    rows = await api.client.advertiser_balances("7001")
    assert rows == [{"advertiser_id": "1"}]
    assert metric("creditwatch_accounts_rejected_total", source=source) == before + 3
    rejected = [entry for entry in logs if entry["event"] == "api.row_rejected"]
    assert [entry["index"] for entry in rejected] == [1, 2, 3]
    assert all(entry["bc_id"] == "7001" for entry in rejected)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"page_info": {"total_page": 1}}, "advertiser_account_list' is missing"),
        ({"advertiser_account_list": {}, "page_info": {"total_page": 1}}, "is an object"),
        ({"advertiser_account_list": []}, "page_info' is missing"),
        ({"advertiser_account_list": [], "page_info": []}, "page_info' is an array"),
        ({"advertiser_account_list": [], "page_info": {}}, "total_page"),
        ({"advertiser_account_list": [], "page_info": {"total_page": "2"}}, "total_page"),
        ({"advertiser_account_list": [], "page_info": {"total_page": -1}}, "total_page"),
    ],
)
async def test_malformed_page_raises(make_api: MakeApi, data: dict[str, Any], why: str) -> None:
    api = make_api([ok(data)])
    with pytest.raises(MalformedReply, match=why):
        await api.client.advertiser_balances("7001")


async def test_bc_balance(make_api: MakeApi) -> None:
    api = make_api([ok({"bc_id": "7001", "grant_balance": Decimal("5.00")})])
    data = await api.client.bc_balance("7001")
    assert data["grant_balance"] == Decimal("5.00")
    assert api.requests[0].url.path.endswith("/bc/balance/get/")
    assert api.params() == {"bc_id": "7001"}


# -- budget, lifecycle, secrecy ---------------------------------------------------------


async def test_every_attempt_waits_for_the_budget(make_api: MakeApi) -> None:
    before = metric("creditwatch_ratelimit_wait_seconds_total")
    api = make_api([api_code(40100), ok({})], qps=1)
    await api.client.get("/bc/balance/get/", {})
    assert api.budget.granted == 2
    # The retry had to wait for the 1-QPS window (1 s + 0.02 s margin) on the fake clock,
    # less the 0.25 s its backoff had taken already.
    waited = metric("creditwatch_ratelimit_wait_seconds_total") - before
    assert waited == pytest.approx(1.02 - 0.25)


async def test_context_manager_closes_the_client() -> None:
    settings = TikTokSettings(base_url=BASE_URL, access_token=SecretStr(TOKEN))
    transport = httpx.MockTransport(lambda request: ok({}))
    async with TikTokClient(settings, transport=transport) as api:
        assert await api.get("/bc/balance/get/", {}) == {}
    with pytest.raises(RuntimeError):
        await api.get("/bc/balance/get/", {})


def test_a_client_without_a_budget_builds_its_own() -> None:
    settings = TikTokSettings(base_url=BASE_URL, access_token=SecretStr(TOKEN), qps=7)
    client = TikTokClient(settings)
    assert client.budget.qps == 7
    assert TOKEN not in repr(client)


async def test_path_must_be_absolute(make_api: MakeApi) -> None:
    api = make_api([ok({})])
    with pytest.raises(ValueError, match="path"):
        await api.client.get("bc/balance/get/", {})
    assert api.requests == []


def echo_token(request: httpx.Request) -> httpx.Response:
    """A hostile or buggy server that echoes the token wherever it can."""
    token = request.headers["Access-Token"]
    kind = request.url.params.get("kind")
    if kind == "text":
        return raw(f"<html>bad token {token}</html>")
    if kind == "long":
        return raw("x" * 188 + token)  # the token straddles the truncation point
    if kind == "code":
        body = {"code": 40105, "message": f"token {token} revoked", "request_id": token}
        return httpx.Response(200, json=body)
    if kind == "throttle":
        body = {"code": 40100, "message": f"slow down {token}", "request_id": f"id-{token}"}
        return httpx.Response(200, json=body)
    if kind == "nocode":
        return httpx.Response(200, json={"message": token, "data": {}})
    raise httpx.ConnectError(f"cannot connect with {token}")


@pytest.mark.parametrize("kind", ["text", "long", "code", "throttle", "nocode", "connect"])
async def test_token_never_appears_in_errors_or_logs(
    make_api: MakeApi, logs: Logs, kind: str
) -> None:
    # Pausing off: a throttle forever must end in an error here, to look at its text.
    api = make_api(echo_token, suspension_s=0)
    with pytest.raises(TikTokError) as caught:
        await api.client.get("/bc/balance/get/", {"kind": kind})
    error = caught.value
    texts = [str(error), repr(error), repr(error.args), str(error.request_id), repr(logs)]
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[:10] not in text  # not even a prefix
    assert TOKEN not in repr(api.client)
