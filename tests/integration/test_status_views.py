"""The status page's list and account pages, and the API they act through, over ASGI on a real
Redis: the summary per currency, search, filters, sorting, paging, the account page with its
credits / transactions / deliveries / silences, 404s, pasting Promotions rows, replay.

The accounts are detector states written straight to Redis as of one fixed clock (``NOW``);
the page reads each account "as of its newest observation", so that clock is the only one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.deliveries import Attempt, Delivery
from service.detect.state import (
    encode_state,
)
from service.http.account_list import PER_PAGE
from service.http.delivery_routes import delivery_store
from service.http.promotions_paste import parse_promotions
from tests.support.alert_stream import publish
from tests.support.api import AUTH, api_settings, app_client
from tests.support.notify import low_firing
from tests.support.status_accounts import (
    ACCOUNTS,
    ALPHA,
    BETA,
    GAMMA,
    NOW,
    WELCOME,
    listed,
    state,
)
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import PROMOTION_ISSUED


def firing(advertiser_id: str, name: str, severity: str, currency: str) -> AlertTransition:
    return low_firing(
        bc_id="b1",
        advertiser_id=advertiser_id,
        name=name,
        currency=currency,
        severity=severity,  # type: ignore[arg-type]
        starts_at=NOW - timedelta(hours=1),
        observed_at=NOW,
    )


@pytest.fixture
async def wired(settings: Settings) -> Settings:
    return api_settings(settings, credits=[WELCOME])


@pytest.fixture
async def http(wired: Settings, redis_client: Redis) -> AsyncIterator[httpx.AsyncClient]:
    await redis_client.mset(
        {wired.streams.key("state", s.advertiser_id): encode_state(s) for s in ACCOUNTS}
    )
    await publish(wired, firing(ALPHA, "Alpha Shop", "warning", "USD"))
    async with app_client(wired, redis_client) as client:
        yield client


def card(html: str, currency: str) -> dict[str, str]:
    found = re.search(rf'<li class="card" data-currency="{currency}">(.*?)</li>', html, re.S)
    assert found, f"no summary for {currency}"
    cells = re.findall(r'<dd class="([\w-]+)">(.*?)</dd>', found.group(1), re.S)
    return {name: re.sub(r"<[^>]+>", "", value).strip() for name, value in cells}


async def page(http: httpx.AsyncClient, **params: Any) -> str:
    response = await http.get("/", params=params)
    assert response.status_code == 200, response.text
    return response.text


async def test_the_summary_is_per_currency_and_matches_the_accounts_api(
    http: httpx.AsyncClient,
) -> None:
    html = await page(http)
    accounts = (await http.get("/v1/accounts", headers=AUTH)).json()
    usd, eur = card(html, "USD"), card(html, "EUR")
    assert usd["credit-left"] == "60.00 USD"  # 60 + 0: never added to the EUR 500
    assert eur["credit-left"] == "500.00 EUR"
    usd_burn = sum(Decimal(a["burn_rate_per_day"] or 0) for a in accounts if a["currency"] == "USD")
    assert usd_burn > 0
    assert usd["burn"] == f"{usd_burn:,.2f} USD"
    assert usd["out-of-credit"] == "1"  # Beta pays with cash
    assert eur["out-of-credit"] == "0"
    assert usd["frozen"] == "100.00 USD"
    [welcome] = next(a for a in accounts if a["advertiser_id"] == ALPHA)["credits"]
    assert usd["expiring"] == f"{Decimal(welcome['unused']):,.2f} USD"
    assert usd["forfeit"] == "40.00 USD"
    assert eur["expiring"] == "0.00 EUR"
    assert usd["alerts-firing"] == "1 warning"
    assert eur["alerts-firing"] == "none"
    # The summary is of what the query selects.
    only_eur = await page(http, currency="EUR")
    assert 'data-currency="USD"' not in only_eur
    assert card(only_eur, "EUR")["credit-left"] == "500.00 EUR"


async def test_search_and_filters_narrow_the_list(http: httpx.AsyncClient) -> None:
    assert listed(await page(http)) == [ALPHA, BETA, GAMMA]  # by name
    assert listed(await page(http, q="gamma")) == [GAMMA]
    assert listed(await page(http, q=BETA[-4:])) == [BETA]  # part of an id
    assert listed(await page(http, q="b2")) == [BETA]  # a business center id
    assert listed(await page(http, bc="b1")) == [ALPHA, GAMMA]
    assert listed(await page(http, currency="EUR")) == [GAMMA]
    assert listed(await page(http, alerts="1")) == [ALPHA]
    assert listed(await page(http, bc="b1", currency="USD")) == [ALPHA]
    # What a GET form sends for "any": empty fields.
    assert listed(await page(http, q="", bc="", currency="", sort="")) == [ALPHA, BETA, GAMMA]
    nothing = await page(http, q="no such shop")
    assert listed(nothing) == []
    assert 'id="empty"' in nothing


async def test_sorting_by_runway_expiry_and_forfeit(http: httpx.AsyncClient) -> None:
    # Alpha runs out in ~3 days (60 at ~20/day), Gamma in ~10 (500 at 50/day); Beta never.
    assert listed(await page(http, sort="runway")) == [ALPHA, GAMMA, BETA]
    assert listed(await page(http, sort="expiry"))[0] == ALPHA  # the only expiry
    assert listed(await page(http, sort="forfeit"))[0] == ALPHA
    bad = await http.get("/", params={"sort": "colour"})
    assert bad.status_code == 422
    assert "sort" in bad.text


async def test_paging_keeps_the_query(
    settings: Settings, wired: Settings, redis_client: Redis
) -> None:
    bulk = [
        state(f"72000000{n:05d}", f"Bulk {n:03d}", bc="b9", currency="USD", valid=n)
        for n in range(PER_PAGE + 5)
    ]
    await redis_client.mset(
        {wired.streams.key("state", s.advertiser_id): encode_state(s) for s in bulk}
    )
    async with app_client(wired, redis_client) as http:
        first = await page(http, q="bulk")
        assert len(listed(first)) == PER_PAGE
        assert "page 1 of 2" in first
        following = re.search(r'<a rel="next" href="([^"]+)"', first)
        assert following
        link = following.group(1).replace("&amp;", "&")
        assert "q=bulk" in link
        second = (await http.get("/" + link)).text
        assert listed(second) == [s.advertiser_id for s in bulk[PER_PAGE:]]
        assert 'rel="prev"' in second
        assert len(listed(await page(http, q="bulk", per_page=10, page=3))) == 10
        # Past the end: the last page.
        assert listed(await page(http, q="bulk", page=99)) == listed(second)
        assert card(first, "USD")["credit-left"] == f"{sum(range(PER_PAGE + 5)):,.2f} USD"


async def test_the_account_page_shows_credits_transactions_deliveries_and_silences(
    http: httpx.AsyncClient, wired: Settings, redis_client: Redis
) -> None:
    episode = firing(ALPHA, "Alpha Shop", "warning", "USD")
    store = delivery_store(redis_client, wired)
    delivery = Delivery.new(
        delivery_id=f"ops:{episode.alert_id}:firing", receiver="ops", transitions=[episode], now=NOW
    )
    await store.create(delivery)
    failed = delivery.model_copy(
        update={
            "status": "failed",
            "attempts": [Attempt(at=NOW, result="failed", status_code=500, error="HTTP 500")],
        }
    )
    await store.save(failed, due=None)
    silence = {"matchers": {"advertiser_id": ALPHA}, "comment": "top-up", "author": "ana"}
    assert (await http.post("/v1/silences", json=silence, headers=AUTH)).status_code == 201
    elsewhere = {**silence, "matchers": {"advertiser_id": GAMMA}}
    assert (await http.post("/v1/silences", json=elsewhere, headers=AUTH)).status_code == 201

    home = await page(http)
    assert f'href="/accounts/{ALPHA}"' in home
    response = await http.get(f"/accounts/{ALPHA}")
    assert response.status_code == 200
    html = response.text
    assert "Alpha Shop" in html
    assert 'class="expiry"' in html  # the credit's expiry marked on the burn-down
    assert 'class="forecast"' in html
    credit = re.search(r'<tr class="credit" data-credit-id="welcome-300">(.*?)</tr>', html, re.S)
    assert credit
    assert "40.00 USD" in credit.group(1)  # projected forfeit
    assert "300.00 USD" in credit.group(1)
    assert "tx-issued-1" in html and PROMOTION_ISSUED in html
    assert f'data-delivery-id="{failed.id}"' in html
    assert "HTTP 500" in html  # the attempt
    assert f'data-replay="{failed.id}"' in html
    silences = re.findall(r'data-silence-id="(sil_\w+)"', html)
    assert len(silences) == 1  # Gamma's silence does not apply here
    # Readable without JavaScript: the action forms are hidden until the script shows them.
    assert re.search(r'<form id="silence-form" hidden data-needs-js', html)


async def test_unknown_accounts_are_a_404_page(http: httpx.AsyncClient) -> None:
    for path in ("/accounts/7199999999999", "/accounts/no%20such!"):
        response = await http.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "No such advertiser" in response.text


async def test_a_failed_delivery_is_replayed(
    http: httpx.AsyncClient, wired: Settings, redis_client: Redis
) -> None:
    store = delivery_store(redis_client, wired)
    episode = firing(ALPHA, "Alpha Shop", "warning", "USD")
    delivery = Delivery.new(
        delivery_id=f"ops:{episode.alert_id}:firing", receiver="ops", transitions=[episode], now=NOW
    )
    await store.create(delivery)
    attempt = Attempt(at=NOW, result="failed", error="refused")
    await store.save(
        delivery.model_copy(update={"status": "failed", "attempts": [attempt]}), due=None
    )
    path = f"/v1/deliveries/{delivery.id}/replay"
    assert (await http.post(path)).status_code == 401
    replayed = await http.post(path, headers=AUTH)
    assert replayed.status_code == 200
    assert replayed.json()["status"] == "pending"
    assert replayed.json()["replayed_after"] == 1
    assert delivery.id not in await store.failed_ids()
    shown = (await http.get(f"/v1/deliveries/{delivery.id}", headers=AUTH)).json()
    assert shown["attempts"][0]["error"] == "refused"  # the history stays
    assert (await http.post("/v1/deliveries/ops:none/replay", headers=AUTH)).status_code == 404


PASTED = (
    "Name\tType\tAmount\tValid period\tUsed\tUnused\n"
    "Welcome offer\tFree\t$1,200.50\t2026-11-01 ~ 2026-11-30\t0\t1,200.50\n"
    "\n"
    "Q4 boost\tAssignable\t300.00 USD\t2026-11-05\t2026-12-31 23:59:59\t10\t290\n"
)


def test_promotions_rows_parse_like_the_page_shows_them() -> None:
    rows = parse_promotions(PASTED, advertiser_id=ALPHA, currency="USD")
    assert [r.errors for r in rows] == [[], []]
    first, second = (r.credit for r in rows)
    assert first is not None and second is not None
    assert (first.id, first.type, first.amount) == (
        "welcome-offer-20261101",
        "free",
        Decimal("1200.50"),
    )
    assert first.valid_to == datetime(2026, 12, 1, tzinfo=UTC)  # the whole last day
    assert second.type == "assignable"
    assert second.valid_to == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    [bad] = parse_promotions(
        "Odd\tFree\tlots\tNov 1, 2026\tNov 30, 2026", advertiser_id=ALPHA, currency="USD"
    )
    assert [field for field, _ in bad.errors] == ["amount"]
    [no_dates] = parse_promotions("Odd\tFree\t10", advertiser_id=ALPHA, currency="USD")
    assert [field for field, _ in no_dates.errors] == ["valid_from"]


async def test_pasted_rows_are_validated_per_row_then_saved_once(http: httpx.AsyncClient) -> None:
    body = {
        "advertiser_id": ALPHA,
        "currency": "USD",
        "text": PASTED + "Broken\tFree\t-5\t2026-11-01\t2026-11-02\n",
    }
    refused = await http.post("/v1/credits/import", json=body, headers=AUTH)
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [["body", "text", 5, "amount"]]
    before = (await http.get("/v1/credits", params={"advertiser_id": ALPHA}, headers=AUTH)).json()
    assert [c["id"] for c in before] == ["welcome-300"]  # nothing saved from a bad paste

    good = {**body, "text": PASTED}
    checked = await http.post("/v1/credits/import", json={**good, "dry_run": True}, headers=AUTH)
    assert checked.status_code == 200
    assert len(checked.json()) == 2
    assert (
        len((await http.get("/v1/credits", params={"advertiser_id": ALPHA}, headers=AUTH)).json())
        == 1
    )
    for _ in range(2):  # pasting the same rows again replaces them
        saved = await http.post("/v1/credits/import", json=good, headers=AUTH)
        assert saved.status_code == 200, saved.text
    after = (await http.get("/v1/credits", params={"advertiser_id": ALPHA}, headers=AUTH)).json()
    assert sorted(c["id"] for c in after) == [
        "q4-boost-20261105",
        "welcome-300",
        "welcome-offer-20261101",
    ]
    # An id that another advertiser's credit holds is that row's error.
    taken = {"advertiser_id": BETA, "currency": "USD", "text": PASTED}
    clash = await http.post("/v1/credits/import", json=taken, headers=AUTH)
    assert clash.status_code == 422
    assert {e["loc"][-1] for e in clash.json()["detail"]} == {"name"}
    assert (await http.post("/v1/credits/import", json=good)).status_code == 401


class Controls(HTMLParser):
    """Form controls a person can reach, whether each sits in a label, and external assets."""

    def __init__(self) -> None:
        super().__init__()
        self.labels = 0
        self.unlabelled: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "label":
            self.labels += 1
        visible = named.get("type") not in {"hidden", "submit", "reset", "button"}
        if tag in {"input", "select", "textarea"} and visible and not self.labels:
            self.unlabelled.append(f"{tag} {named.get('name')}")
        if tag in {"script", "img"} and named.get("src"):
            self.external.append(f"{tag} {named['src']}")
        if tag == "link" and named.get("rel") == "stylesheet":
            self.external.append(f"link {named.get('href')}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.labels -= 1


async def test_every_control_has_a_label_and_nothing_is_fetched_elsewhere(
    http: httpx.AsyncClient,
) -> None:
    for path in ("/", f"/accounts/{ALPHA}", "/accounts/7199999999999"):
        html = (await http.get(path)).text
        controls = Controls()
        controls.feed(html)
        assert controls.unlabelled == [], path
        assert controls.external == [], path  # works offline: CSS and JS are inline
        assert "prefers-color-scheme: dark" in html
        assert "document.cookie" not in html  # the token is never a cookie
