"""Alert transitions on the alerts stream, for the tests of what reads it (the HTTP API, the
status page): one transition of an advertiser at a minute past ``T0``, and publishing some as
the detectors do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from faststream.redis import RedisBroker

from config.settings import Settings
from tests.support.notify import transition_for
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import AccountBalanceSnapshot, BalanceInfo

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def transition(advertiser_id: str, kind: str, status: str, minute: int) -> AlertTransition:
    snapshot = AccountBalanceSnapshot(
        bc_id="7001",
        advertiser_id=advertiser_id,
        advertiser_name=f"Shop {advertiser_id}",
        currency="USD",
        balances=BalanceInfo(),
        observed_at=T0 + timedelta(minutes=minute),
    )
    return transition_for(
        snapshot,
        kind=kind,
        status="firing" if status == "firing" else "resolved",
        severity="warning",
        starts_at=T0,
        summary=f"{kind} {status}",
        values={"valid_grant_balance": Decimal("1.5")},
    )


async def publish(settings: Settings, *transitions: AlertTransition) -> None:
    broker = RedisBroker(settings.redis_url or "")
    await broker.connect()
    for t in transitions:
        await broker.publish(t.to_json(), stream=settings.streams.alerts)
    await broker.stop()
