"""Every credit-lifecycle alert kind through the real path, one scenario test per kind.

Sandbox API (real HTTP, paused clock moved by the test) → pollers of every source → Redis
snapshot stream → detectors (state in Redis) → alerts stream → notifier → a local webhook
receiver that verifies every signature. The story runs once for the module (about 10 s);
each test then checks one kind: it fired once with the right values, resolved when it
should, and the healthy account got nothing at all.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.api import ApiSettings
from config.settings import (
    DetectSettings,
    NotifySettings,
    Settings,
    StreamSettings,
)
from service.detect.state import AccountState, SpendDays, StateStore
from service.roles import poller_role, service_role
from service.streams import NOTIFIERS
from tests.support.end_to_end import sandbox_api
from tests.support.polls import polls_every
from tests.support.receiver import WebhookSink
from tests.support.scenarios import scenario_text
from tests.support.streams import drained
from tests.support.waiting import eventually
from workers.sandbox import SandboxServer, parse_scenario

TOKEN = "lifecycle-token-8c1d"
BC, AUTH_BC = "7000000000001", "7000000000002"
HEALTHY, DRAIN, EXPIRE, FROZEN = "7100000000010", "7100000000011", "7100000000012", "7100000000013"
LADDER, DISCOUNT, MISMATCH, STALE = (
    "7100000000014",
    "7100000000015",
    "7100000000016",
    "7100000000017",
)
AUTH = "7100000000018"
HOUR = 3600
STEP_H = 2
END_H = 40

SCENARIO = scenario_text(
    "lifecycle",
    TOKEN=TOKEN,
    BC=BC,
    HEALTHY=HEALTHY,
    DRAIN=DRAIN,
    EXPIRE=EXPIRE,
    FROZEN=FROZEN,
    LADDER=LADDER,
    DISCOUNT=DISCOUNT,
    MISMATCH=MISMATCH,
    STALE=STALE,
    AUTH_BC=AUTH_BC,
    AUTH=AUTH,
)

# (hour, advertiser, action, extra): applied when the story reaches that hour.
EVENTS: list[tuple[int, str, str, dict[str, Any]]] = [
    (2, FROZEN, "freeze_grant", {"amount": "300.00"}),
    (8, FROZEN, "unfreeze_grant", {}),
    (14, DRAIN, "grant_topup", {"amount": "1000.00"}),
]
ACCOUNTS = (HEALTHY, DRAIN, EXPIRE, FROZEN, LADDER, DISCOUNT, MISMATCH, STALE, AUTH)
START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class Story:
    payloads: list[dict[str, Any]]
    verified: bool

    def of(self, kind: str, advertiser_id: str | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in self.payloads
            if p["type"] == kind
            and (advertiser_id is None or p["data"]["advertiser_id"] == advertiser_id)
        ]

    def statuses(self, kind: str, advertiser_id: str | None = None) -> list[str]:
        return [p["data"]["status"] for p in self.of(kind, advertiser_id)]


def _settings(redis_url: str, tmp: Path, sandbox: SandboxServer, sink: WebhookSink) -> Settings:
    ledger = sandbox.sandbox.scenario.ledger
    hook, route = sink.receiver_and_route("life")
    return Settings(
        api=ApiSettings(port=0),
        credits=ledger.credits,
        ladder_programs=ledger.ladder_programs,
        redis_url=redis_url,
        data_dir=tmp,
        streams=StreamSettings(
            prefix=f"cwlife-{uuid.uuid4().hex[:10]}", consumer="life-1", reclaim_idle_ms=5000
        ),
        tiktok=sandbox_api(sandbox.base_url, TOKEN, [BC, AUTH_BC], qps=200, qpm=12_000),
        poll=polls_every(balance_s=0.2, spend_s=0.3, report_s=1.0, bc_balance_s=1.0),
        # Stale after 10 balance intervals (2 s of silence); mismatches reported after 6 h.
        # The sandbox's spend figures do not lag: reconcile on them as read.
        detect=DetectSettings(stale_intervals=10, reconcile_after_h=6, reconcile_lag_h=0),
        notify=NotifySettings(console=False, receivers=[hook], route=route),
    )


async def _admin(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sandbox.admin_url}{path}", json=body)
        response.raise_for_status()


async def _settle(
    redis: Redis, settings: Settings, sink: WebhookSink, sim_time: datetime, skip: str = ""
) -> None:
    """Until every account's balance and spend as of ``sim_time`` are applied, and what
    they caused is delivered."""
    store = StateStore(redis, settings.streams, AccountState, "state")
    accounts = [a for a in ACCOUNTS if a != skip]

    async def caught_up() -> bool:
        for advertiser_id in accounts:
            state = await store.load(advertiser_id)
            if state is None or state.last_observed_at is None:
                return False
            if state.last_observed_at < sim_time:
                return False
            # The day of ``sim_time`` read since: a sweep reads today, then the days before,
            # so a fresh read of an older day says nothing of today's figure.
            today = state.spend.get("bc_cost", SpendDays()).get(sim_time.date())
            if today is None or today.observed_at < sim_time:
                return False
        return True

    await eventually(caught_up, within=20)
    await eventually(lambda: drained(redis, settings.streams.alerts, NOTIFIERS), within=20)

    async def sent() -> bool:
        # A routed alert waits in its group until due, then as a delivery until it is sent
        # (a claimed one too: its lease is its score). No group due by now and no delivery
        # left means every notification so far has reached the sink.
        groups_due = await redis.zcount(settings.streams.key("groups", "due"), "-inf", time.time())
        return groups_due == 0 and await redis.zcard(settings.streams.key("deliveries", "due")) == 0

    await eventually(sent, within=20)


async def _run_story(redis_url: str, tmp: Path) -> Story:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = _settings(redis_url, tmp, sandbox, sink)
        redis = Redis.from_url(redis_url)
        try:
            async with service_role(settings, redis_url), poller_role(settings, redis_url):
                await _settle(redis, settings, sink, START)
                for hour in range(STEP_H, END_H + 1, STEP_H):
                    # Up to a second before the hour, where every source catches up, then onto
                    # it: whichever source is polled first on the hour, what fires then sees
                    # spend as of a second earlier (under a cent here), on any machine load.
                    await _admin(sandbox, "/clock/advance", {"seconds": STEP_H * HOUR - 1})
                    await _settle(redis, settings, sink, START + timedelta(hours=hour, seconds=-1))
                    await _admin(sandbox, "/clock/advance", {"seconds": 1})
                    for at, advertiser_id, action, extra in EVENTS:
                        if at == hour:
                            body = {"advertiser_id": advertiser_id, "action": action, **extra}
                            await _admin(sandbox, "/events", body)
                            await _admin(sandbox, "/clock/advance", {"seconds": 1})
                    if hour == 16:
                        await _stale_episode(sandbox, sink)
                    if hour == 18:
                        await _auth_episode(sandbox, sink)
                    await _settle(redis, settings, sink, START + timedelta(hours=hour))
        finally:
            keys = [k async for k in redis.scan_iter(match=f"{settings.streams.prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
        return Story(payloads=sink.payloads(), verified=all(r.verified for r in sink.received))


async def _stale_episode(sandbox: SandboxServer, sink: WebhookSink) -> None:
    """The account drops out of the listings long enough (wall time) to go stale."""
    await _admin(sandbox, "/events", {"advertiser_id": STALE, "action": "hide_account"})
    await eventually(lambda: _has(sink, "data.stale", "firing"), within=15)
    await _admin(sandbox, "/events", {"advertiser_id": STALE, "action": "show_account"})
    await _admin(sandbox, "/clock/advance", {"seconds": 60})


async def _auth_episode(sandbox: SandboxServer, sink: WebhookSink) -> None:
    await _admin(sandbox, "/events", {"advertiser_id": AUTH, "action": "revoke_access"})
    await eventually(lambda: _has(sink, "source.auth_failed", "firing"), within=15)
    await _admin(sandbox, "/events", {"advertiser_id": AUTH, "action": "restore_access"})
    await _admin(sandbox, "/clock/advance", {"seconds": 60})
    await eventually(lambda: _has(sink, "source.auth_failed", "resolved"), within=15)


async def _has(sink: WebhookSink, kind: str, status: str) -> bool:
    return any(p["type"] == kind and p["data"]["status"] == status for p in sink.payloads())


@pytest.fixture(scope="module")
def story(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    yield asyncio.run(_run_story(redis_url, tmp_path_factory.mktemp("lifecycle")))


def values(payload: dict[str, Any]) -> dict[str, str]:
    return dict(payload["data"]["values"])


def about(text: str, expected: str, within: str = "0.02") -> bool:
    """Equal give or take ``within``: each event nudges the paused clock by 1 s, and rates
    are read from balances rounded to the cent over those slightly uneven spans."""
    return abs(Decimal(text) - Decimal(expected)) <= Decimal(within)


def once_then_resolved(story: Story, kind: str, advertiser_id: str) -> dict[str, Any]:
    """The kind fired once and resolved once, with one alert_id; returns the firing."""
    found = story.of(kind, advertiser_id)
    assert [p["data"]["status"] for p in found] == ["firing", "resolved"], found
    assert found[0]["data"]["alert_id"] == found[1]["data"]["alert_id"]
    assert found[1]["data"]["ends_at"] is not None
    return found[0]


def test_every_delivery_is_signed_and_the_healthy_account_is_quiet(story: Story) -> None:
    assert story.verified
    assert story.payloads
    assert story.of("credit.low", HEALTHY) == []
    assert [p for p in story.payloads if p["data"]["advertiser_id"] == HEALTHY] == []
    ids = [(p["data"]["alert_id"], p["data"]["status"]) for p in story.payloads]
    assert len(ids) == len(set(ids)), "no transition is delivered twice"


def test_depletion_forecast(story: Story) -> None:
    firing = once_then_resolved(story, "credit.depletion_forecast", DRAIN)
    # 100 at 10/h: seen at 2 h with 80 left at 240/day, it runs out at 10 h.
    assert about(values(firing)["burn_rate_per_day"], "240.00", within="0.10")
    runs_out = datetime.fromisoformat(values(firing)["projected_exhaustion_at"])
    assert abs(runs_out - datetime(2026, 11, 1, 10, tzinfo=UTC)) < timedelta(minutes=2)
    assert values(firing)["valid_grant_balance"] == "80.00"


def test_credit_expiring_once_per_horizon(story: Story) -> None:
    found = story.of("credit.expiring", EXPIRE)
    firing = [p for p in found if p["data"]["status"] == "firing"]
    # 30 h left at the start: inside 14, 7 and 3 days at once, so one notice (3 d); then 1 d.
    assert [values(p)["horizon_days"] for p in firing] == ["3", "1"]
    assert values(firing[0])["unused"] == "200.00"
    # At 6 h: 12 spent, 188 unused; 24 h more at 48/day leaves 140 to forfeit.
    assert values(firing[1])["unused"] == "188.00"
    assert about(values(firing[1])["projected_forfeit"], "140.00")
    assert values(firing[1])["expires_at"] == "2026-11-02T06:00:00+00:00"
    resolved = [p for p in found if p["data"]["status"] == "resolved"]
    assert sorted(p["data"]["alert_id"] for p in resolved) == sorted(
        p["data"]["alert_id"] for p in firing
    )
    assert all(values(p)["reason"] == "expired" for p in resolved)


def test_credit_expired(story: Story) -> None:
    [expired] = story.of("credit.expired", EXPIRE)
    assert expired["data"]["status"] == "firing"
    assert about(values(expired)["forfeited"], "140.00")
    assert values(expired)["credit_id"] == "c-exp"


def test_credit_frozen(story: Story) -> None:
    firing = once_then_resolved(story, "credit.frozen", FROZEN)
    assert values(firing)["frozen_grant_balance"] == "300.00"
    assert "appeal" in firing["data"]["summary"]


def test_credit_issued(story: Story) -> None:
    declared = story.of("credit.issued", EXPIRE)
    assert sorted(values(p)["credit_id"] for p in declared) == ["c-exp", "c-long"]
    [undeclared] = story.of("credit.issued", DRAIN)
    assert values(undeclared)["amount"] == "1000.00"
    assert values(undeclared)["declared"] == "no"
    assert undeclared["data"]["severity"] == "info"


def test_cash_low_after_credit(story: Story) -> None:
    firing = once_then_resolved(story, "cash.low_after_credit", DRAIN)
    # Credit gone at 10 h; 100 cash at 240/day lasts 0.42 days.
    assert values(firing)["runway_days"] == "0.42"
    assert about(values(firing)["spend_rate_per_day"], "240.00", within="0.10")


def test_ladder_tier_reached(story: Story) -> None:
    [reached] = story.of("ladder.tier_reached", LADDER)
    assert values(reached)["tier_threshold"] == "100.00"
    assert about(values(reached)["qualifying_spend"], "100.00")


def test_ladder_at_risk(story: Story) -> None:
    firing = once_then_resolved(story, "ladder.at_risk", LADDER)
    # At 10 h: 100 of 1000, 26 h left: 900 / (26/24) = 830.77 a day needed; 240 a day spent.
    assert about(values(firing)["qualifying_spend"], "100.00")
    assert values(firing)["next_tier_threshold"] == "1000.00"
    assert about(values(firing)["required_daily_spend"], "830.77", within="0.50")
    assert about(values(firing)["current_daily_spend"], "240.00", within="0.10")
    assert values(firing)["window_ends_at"] == "2026-11-02T12:00:00+00:00"


def test_ladder_window_closing(story: Story) -> None:
    found = story.of("ladder.window_closing", LADDER)
    # The whole 36 h window is within the last 48 h: closing for tier 100 from the start,
    # ended by reaching it; then closing for tier 1000 until the window ends. Each tier is an
    # alert of its own: the first's resolved and the second's firing come from one snapshot
    # and go out side by side, so only the order within each alert is fixed.
    episodes: dict[str, list[dict[str, Any]]] = {}
    for p in found:
        episodes.setdefault(p["data"]["alert_id"], []).append(p)
    by_tier = {values(e[0])["next_tier_threshold"]: e for e in episodes.values()}
    assert sorted(by_tier) == ["100.00", "1000.00"]
    for tier in by_tier.values():
        assert [p["data"]["status"] for p in tier] == ["firing", "resolved"]
    # Tier 1000 was closing only once tier 100 was reached.
    assert by_tier["1000.00"][0]["timestamp"] >= by_tier["100.00"][1]["timestamp"]


def test_discount_cap_near_and_reached(story: Story) -> None:
    near = once_then_resolved(story, "discount.cap_near", DISCOUNT)
    assert values(near)["discount_used"] == "16.00"
    reached = once_then_resolved(story, "discount.cap_reached", DISCOUNT)
    assert values(reached)["discount_used"] == "20.00"
    assert values(reached)["cap"] == "20.00"


def test_reconcile_mismatch(story: Story) -> None:
    firing = once_then_resolved(story, "reconcile.mismatch", MISMATCH)
    # 50 of undeclared credit on top of the declared 100.
    assert values(firing)["difference"] == "50.00"


def test_data_stale(story: Story) -> None:
    once_then_resolved(story, "data.stale", STALE)
    assert story.of("data.stale", HEALTHY) == []


def test_source_auth_failed(story: Story) -> None:
    found = story.of("source.auth_failed")
    assert [p["data"]["status"] for p in found] == ["firing", "resolved"]
    assert {p["data"]["bc_id"] for p in found} == {AUTH_BC}


def test_low_and_exhausted_still_work(story: Story) -> None:
    assert story.statuses("credit.low", DRAIN) == ["firing", "resolved"]
    assert story.statuses("credit.exhausted", DRAIN) == ["firing", "resolved"]
    assert Decimal(values(story.of("credit.exhausted", DRAIN)[0])["valid_grant_balance"]) == 0
