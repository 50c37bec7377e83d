"""Risk-weighted polls on a real Redis with the real detectors: an account forecast to run out
is marked at risk, polled on its own (keyword, one row) between sweeps, and no longer once
its credit has run out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import NotifySettings, Settings
from service.deadletter import DeadLetters
from service.detect import credit_balance
from service.roles import service_role
from tests.support.snapshots import grant_snapshot
from tests.support.streams import body, entries
from tests.support.waiting import eventually
from workers.contract.alerts import parse_transition
from workers.contract.snapshots import AccountBalanceSnapshot
from workers.poller import BalancePoller
from workers.publish import SnapshotPublisher
from workers.risk_marks import RiskMarks
from workers.risk_polls import RiskPolls

BC, AT_RISK, SAFE = "70", "71", "72"


def snapshot(advertiser_id: str, grant: str, at: datetime) -> AccountBalanceSnapshot:
    return grant_snapshot(BC, advertiser_id, grant, at, name=f"Shop {advertiser_id}")


class KeywordApi:
    """The balance endpoint: every keyword poll is noted and answers ``grant``."""

    def __init__(self, grant: str) -> None:
        self.grant = grant
        self.keyword_polls: list[tuple[str, str]] = []
        self.sweeps = 0

    async def advertiser_balances(self, bc_id: str) -> list[dict[str, Any]]:
        self.sweeps += 1
        return []

    async def advertiser_balance_pages(self, bc_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        yield await self.advertiser_balances(bc_id)

    async def advertiser_balance(self, bc_id: str, advertiser_id: str) -> list[dict[str, Any]]:
        self.keyword_polls.append((bc_id, advertiser_id))
        return [
            {
                "advertiser_id": advertiser_id,
                "advertiser_name": f"Shop {advertiser_id}",
                "advertiser_status": "SHOW_ACCOUNT_STATUS_APPROVED",
                "currency": "USD",
                "timezone": "UTC",
                "balance_info": {
                    "grant_balance": Decimal(self.grant),
                    "valid_grant_balance": Decimal(self.grant),
                },
            }
        ]


class Clock:
    """The poller's clock: real time plus however far the test has moved it on."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s


async def test_an_at_risk_account_is_polled_alone_until_it_has_run_out(
    settings: Settings, redis_client: Redis
) -> None:
    settings = settings.model_copy(update={"notify": NotifySettings(console=False)})
    marks = RiskMarks(redis_client, settings.streams)
    now = datetime.now(UTC)
    async with service_role(settings, settings.redis_url or "") as broker:
        # 100 -> 50 in ten minutes: 300 an hour, so the low line (20) is 6 minutes away
        # and the end of the credit 10. The other account barely moves.
        for advertiser_id, first, then in ((AT_RISK, "100", "50"), (SAFE, "1000", "999.99")):
            await broker.publish(
                snapshot(advertiser_id, first, now - timedelta(minutes=10)).to_json(),
                stream=settings.streams.snapshots,
            )
            await broker.publish(
                snapshot(advertiser_id, then, now).to_json(),
                stream=settings.streams.snapshots,
            )

        async def marked() -> bool:
            return bool(await marks.due(until=time.time() + 3600))

        await eventually(marked)
        due = await marks.due(until=time.time() + 3600)
        assert [(bc, adv) for bc, adv, _ in due] == [(BC, AT_RISK)]
        # The low line's moment, on this machine's clock.
        assert time.time() + 300 <= due[0][2] <= time.time() + 420

        api = KeywordApi(grant="0")
        clock = Clock()
        publisher = SnapshotPublisher(broker, redis_client, settings.streams)
        poller = BalancePoller(
            api,
            publisher,
            reject=DeadLetters(redis_client, settings.streams).put,
            clock=lambda: datetime.now(UTC),
        )
        risks = RiskPolls(poller, marks, repoll_s=30, centers={BC}, clock=clock)
        assert await risks.run() == 0  # its moment has not come: the sweeps will do
        assert api.keyword_polls == []
        clock.ahead_s = due[0][2] - time.time() + 1
        assert await risks.run() == 1
        assert api.keyword_polls == [(BC, AT_RISK)]
        assert api.sweeps == 0  # on its own, not a sweep
        assert await risks.run() == 0  # not again within risk_repoll_s

        async def exhausted_and_unmarked() -> bool:
            alerts = [
                parse_transition(body(f))
                for f in await entries(redis_client, settings.streams.alerts)
            ]
            fired = any(
                t.kind == credit_balance.EXHAUSTED
                and t.status == "firing"
                and t.advertiser_id == AT_RISK
                for t in alerts
            )
            return fired and not await marks.due(until=time.time() + 3600)

        await eventually(exhausted_and_unmarked)
        clock.ahead_s += 31.0  # past the re-poll gap: it would be polled again if still marked
        assert await risks.run() == 0
        assert api.keyword_polls == [(BC, AT_RISK)]


async def test_accounts_of_other_business_centers_are_left_to_their_poller(
    settings: Settings, redis_client: Redis
) -> None:
    marks = RiskMarks(redis_client, settings.streams)
    await marks.update(at_risk={("99", "991"): time.time() - 5}, safe=[])
    api = KeywordApi(grant="10")
    broker = RedisBroker(settings.redis_url or "")
    poller = BalancePoller(
        api,
        SnapshotPublisher(broker, redis_client, settings.streams),
        reject=DeadLetters(redis_client, settings.streams).put,
    )
    risks = RiskPolls(poller, marks, repoll_s=5, centers={BC})
    assert await risks.run() == 0
    assert api.keyword_polls == []
