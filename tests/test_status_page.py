"""The status page against the demo scenario: sandbox -> poller -> service, then ``GET /``.

One row per advertiser with its grant balance, burn-down chart, next expiry, frozen amount,
ladder progress and active alerts; and the same page rendered by headless Chromium (Debian's
``chromium``; skipped with a message where it is not installed). Screenshots go to the test's
temporary directory, never into the repository.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from config.settings import Settings
from tests.ops_stack import ADVERTISERS, Stack, ops_stack

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
DRAINING = "7100000000001"
EXPIRING = "7100000000004"
LADDER = "7100000000005"
HELD = "7100000000003"


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
        # The service role's wiring: its consumers and its streams' AsyncAPI document.
        ready = (await stack.get("/readyz")).json()
        assert not [r for r in ready.get("reasons", []) if r.startswith("consumers")]
        channels = (await stack.get("/asyncapi")).json()["channels"]
        assert {stack.settings.streams.snapshots, stack.settings.streams.alerts} <= set(channels)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium; `make test` tries)",
)
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
