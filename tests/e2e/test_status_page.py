"""The status page against the demo scenario: sandbox -> poller -> service, then ``GET /``.

One row per advertiser with its grant balance, burn-down chart, next expiry, frozen amount,
ladder progress and active alerts; and the same page rendered by headless Chromium (Debian's
``chromium``; skipped with a message where it is not installed). Screenshots go to the test's
temporary directory, never into the repository. Chromium is also driven as a person would
(``tests.support.browser``): search narrows the list, an account page opens from it, a credit
declared in its form reaches the ledger and the API (after the API's 422 showed next to the
field) and is edited from its row, pasted Promotions rows are checked per line and saved, a failed
delivery replayed from the page is sent again, and a silence set from the page silences the
account's next alerts.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import utc_now
from service.deliver.deliveries import Attempt, Delivery
from service.detect.ledger_store import ConfigLedger, RedisLedger
from service.http.delivery_routes import delivery_store
from service.streams import read_entries
from tests.support.browser import Chromium
from tests.support.ops_stack import ADVERTISERS, TOKEN, Stack, ops_stack
from tests.support.waiting import eventually
from workers.contract.alerts import parse_transition
from workers.contract.envelope import payload_of

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium; `make test` tries)",
)
DRAINING = "7100000000001"
EXPIRING = "7100000000004"
LADDER = "7100000000005"
HELD = "7100000000003"  # Euro Partners pays from a SHARED Payment Portfolio


def row(html: str, advertiser_id: str) -> str:
    found = re.search(
        rf'<tr class="account" data-advertiser-id="{advertiser_id}">(.*?)</tr>', html, re.S
    )
    assert found, f"no row for {advertiser_id}"
    return found.group(1)


async def story(stack: Stack) -> None:
    """Into the scenario: credit draining, a credit about to expire, 500 EUR frozen."""
    for _ in range(3):
        await stack.advance(6)


def check_rows(html: str) -> None:
    assert len(re.findall(r'<tr class="account"', html)) == ADVERTISERS
    draining = row(html, DRAINING)
    assert "Draining Shop" in draining
    assert re.search(r"\d[\d,]*\.\d\d USD", draining)  # grant balance with its currency
    assert "<polyline" in draining  # the burn-down
    assert 'class="forecast"' in draining  # and its dashed forecast
    assert "credit.depletion_forecast" in draining
    assert "2026-11-02 16:00 UTC" in row(html, EXPIRING)  # welcome-300's expiry
    assert "500.00 EUR" in row(html, HELD)  # frozen since +12h
    assert 'role="progressbar"' in row(html, LADDER)


async def test_status_page_shows_a_row_per_advertiser(settings: Settings) -> None:
    async with ops_stack(settings) as stack:
        await story(stack)
        response = await stack.get("/", headers={})  # the page needs no token
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        check_rows(response.text)
        assert "(shared portfolio)" in row(response.text, HELD)
        assert "(shared portfolio)" not in row(response.text, DRAINING)
        assert "TikTok balance alert" not in row(response.text, DRAINING)
        accounts = {a["advertiser_id"]: a for a in (await stack.get("/v1/accounts")).json()}
        assert (accounts[HELD]["cash_shared"], accounts[DRAINING]["cash_shared"]) == (True, False)
        assert accounts[DRAINING]["balance_reminder"] is False
        # Spending fast enough that the balance is under 3x the average day: TikTok's own
        # balance alert goes on, and the page and the API say so.
        async with httpx.AsyncClient() as client:
            event = {"advertiser_id": DRAINING, "action": "set_burn_rate", "per_hour": "100"}
            response = await client.post(f"{stack.sandbox.admin_url}/events", json=event)
            response.raise_for_status()
        await stack.advance(6)
        page = (await stack.get("/", headers={})).text
        assert "TikTok balance alert" in row(page, DRAINING)
        [draining] = [
            a for a in (await stack.get("/v1/accounts")).json() if a["advertiser_id"] == DRAINING
        ]
        assert draining["balance_reminder"] is True
        # The service role's wiring: its consumers and its streams' AsyncAPI document.
        ready = (await stack.get("/readyz")).json()
        assert not [r for r in ready.get("reasons", []) if r.startswith("consumers")]
        channels = (await stack.get("/asyncapi")).json()["channels"]
        assert {stack.settings.streams.snapshots, stack.settings.streams.alerts} <= set(channels)


@needs_chromium
async def test_status_page_renders_in_headless_chromium(settings: Settings, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    async with ops_stack(settings) as stack:
        await story(stack)
        flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}/p"]
        # The server runs in this event loop: Chromium must be awaited, not waited for.
        dump = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *flags,
            "--dump-dom",
            f"{stack.url}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        dom, _ = await asyncio.wait_for(dump.communicate(), timeout=90)
        shot = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *flags,
            "--window-size=1400,900",
            f"--screenshot={tmp_path / 'status.png'}",
            f"{stack.url}/",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(shot.wait(), timeout=90)
    check_rows(dom.decode())
    assert (tmp_path / "status.png").stat().st_size > 10_000


def silenced_for(deliveries: list[Delivery], advertiser_id: str, silence_id: str) -> list[str]:
    return [
        d.id
        for d in deliveries
        if d.status == "silenced"
        and silence_id in d.note
        and any(t.advertiser_id == advertiser_id for t in d.transitions)
    ]


@needs_chromium
async def test_search_narrows_the_list_and_an_account_page_opens(
    settings: Settings, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    async with ops_stack(settings) as stack, Chromium(CHROMIUM, tmp_path) as page:
        await story(stack)
        await page.goto(f"{stack.url}/")
        assert await page.js("document.querySelectorAll('tr.account').length") == ADVERTISERS
        await page.type("input[name=q]", "draining")
        await page.press_enter()
        await page.until(
            "location.search.includes('q=draining') && document.readyState === 'complete'"
            " && document.querySelectorAll('tr.account').length === 1"
        )
        assert DRAINING in await page.text("tr.account")
        assert "USD" in await page.text("#summary")
        await page.click(f'tr.account[data-advertiser-id="{DRAINING}"] a.name')
        await page.until(f"location.pathname === '/accounts/{DRAINING}'")
        await page.until("document.querySelector('h1#account') !== null")
        assert await page.text("h1#account") == "Draining Shop"
        assert await page.js("document.querySelector('#burndown polyline.actual') !== null")


@needs_chromium
async def test_a_credit_declared_and_a_silence_set_from_the_page(
    settings: Settings, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    async with (
        ops_stack(settings) as stack,
        Chromium(CHROMIUM, tmp_path) as page,
        Redis.from_url(settings.redis_url or "") as redis,
    ):
        await story(stack)
        await page.goto(f"{stack.url}/accounts/{DRAINING}")
        # The token, once, for this tab.
        await page.type("#token", TOKEN)
        await page.press_enter()
        await page.until("sessionStorage.getItem('creditwatch.token') !== null")
        assert await page.js("document.cookie") == ""

        form = "#credit-form"
        await page.type(f"{form} [name=id]", "browser-credit")
        await page.type(f"{form} [name=name]", "Declared in the browser")
        await page.fill(f"{form} [name=type]", "assignable")
        await page.type(f"{form} [name=amount]", "-5")
        await page.fill(f"{form} [name=valid_from]", "2026-11-01")
        await page.fill(f"{form} [name=valid_to]", "2026-11-30")
        await page.click(f"{form} button[type=submit]")
        # The API's 422 lands next to the field it names.
        await page.until("document.querySelector('#err-amount').textContent !== ''")
        assert (
            await page.js("document.querySelector('[name=amount]').getAttribute('aria-invalid')")
            == "true"
        )
        await page.type(f"{form} [name=amount]", "250")
        await page.click(f"{form} button[type=submit]")
        await page.until("document.querySelector('tr[data-credit-id=\"browser-credit\"]') !== null")
        assert "250.00 USD" in await page.text('tr[data-credit-id="browser-credit"]')
        stored = (await stack.get("/v1/credits/browser-credit")).json()
        assert (stored["advertiser_id"], stored["amount"], stored["source"]) == (
            DRAINING,
            "250.00",
            "api",
        )
        # Edit it: the form is filled from the row and saved with PUT.
        await page.click('tr[data-credit-id="browser-credit"] button[data-edit-credit]')
        assert await page.js("document.querySelector('#credit-form [name=valid_to]').value") == (
            "2026-11-30"
        )
        await page.type(f"{form} [name=amount]", "260")
        await page.click(f"{form} button[type=submit]")
        await page.until(
            "(r => r !== null && r.textContent.includes('260.00 USD'))"
            "(document.querySelector('tr[data-credit-id=\"browser-credit\"]'))"
        )
        stored = (await stack.get("/v1/credits/browser-credit")).json()
        assert stored["amount"] == "260.00"
        ledger = await RedisLedger(
            redis, stack.settings.streams, ConfigLedger([], [])
        ).for_advertiser(DRAINING)
        assert ledger.credit("browser-credit") is not None

        # Rows pasted from the Promotions page: a bad one is named by line, nothing saved.
        paste = "#paste-form"
        good = "Boost\tAssignable\t120.00\t2026-11-01 ~ 2026-11-20"
        await page.fill(f"{paste} [name=text]", f"{good}\nBad\tFree\tlots\t2026-11-01 ~ 2026-11-20")
        await page.click(f"{paste} button[value=save]")
        await page.until("document.querySelector('#err-text').textContent.includes('line 2')")
        await page.fill(f"{paste} [name=text]", good)
        await page.click(f"{paste} button[value=save]")
        await page.until("document.querySelector('tr[data-credit-id=\"boost-20261101\"]') !== null")
        assert (await stack.get("/v1/credits/boost-20261101")).json()["amount"] == "120.00"

        # A delivery of one of its alerts that failed for good, replayed from the page: the
        # service's sender sends it again, to the same receiver.
        [(_, fields)] = await read_entries(redis, stack.settings.streams.alerts, count=1)
        transition = parse_transition(payload_of(fields))
        failed = Delivery.new(
            delivery_id=f"e2e:{transition.transition_id}:by-hand",
            receiver="e2e",
            transitions=[transition],
            now=utc_now(),
        )
        store = delivery_store(redis, stack.settings)
        await store.create(failed)
        gave_up = Attempt(at=utc_now(), result="failed", status_code=500, error="HTTP 500")
        await store.save(
            failed.model_copy(update={"status": "failed", "attempts": [gave_up]}), due=None
        )
        await page.goto(f"{stack.url}/accounts/{transition.advertiser_id}")
        button = f'button[data-replay="{failed.id}"]'
        await page.js(f"document.querySelector('{button}').closest('details').open = true")
        await page.click(button)

        async def delivered() -> bool:
            again = await store.get(failed.id)
            return again is not None and again.status == "delivered"

        await eventually(delivered, within=30)
        assert "queued again" in await page.text(f"{button} + span")
        await page.goto(f"{stack.url}/accounts/{DRAINING}")

        # Silence every alert of the account for 4 h, then let its credit run out (at +45h).
        silence = "#silence-form"
        await page.type(f"{silence} [name=comment]", "top-up on its way")
        await page.type(f"{silence} [name=author]", "ana")
        await page.click(f"{silence} button[type=submit]")
        await page.until("document.querySelector('tr.silence') !== null")
        silence_id = await page.js("document.querySelector('tr.silence').dataset.silenceId")
        [active] = (await stack.get("/v1/silences", params={"state": "active"})).json()
        assert (active["id"], active["matchers"]) == (silence_id, {"advertiser_id": DRAINING})
        seen = len(stack.sink.received)
        for _ in range(5):
            await stack.advance(6)

        async def silenced() -> bool:
            return bool(silenced_for(await store.history(limit=500), DRAINING, silence_id))

        await eventually(silenced, within=30)
        sent = [r.body for r in stack.sink.received[seen:]]
        assert not [body for body in sent if DRAINING.encode() in body]
