"""Helpers for the notification tests: transitions to route, and a pipeline on a fake clock."""

from __future__ import annotations

import random
from collections.abc import Callable, Sized
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from redis.asyncio import Redis

from config.notify import NotifySettings, RetrySchedule
from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.pipeline import NotifyPipeline
from workers.contract import wire
from workers.contract.alerts import AlertTransition, Severity, Status, episode_id
from workers.contract.snapshots import AccountBalanceSnapshot, BalanceInfo

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# What the e2e ``notify_with`` fixture gives: configured settings in, a pipeline out.
NotifyWith = Callable[..., NotifyPipeline]


def transition_for(
    snapshot: AccountBalanceSnapshot,
    *,
    kind: str,
    status: Status,
    severity: Severity,
    starts_at: datetime,
    summary: str,
    values: dict[str, Decimal],
) -> AlertTransition:
    """A transition about the account a snapshot describes, amounts as 2-decimal text."""
    return AlertTransition(
        alert_id=episode_id(kind, snapshot.advertiser_id, starts_at),
        kind=kind,
        status=status,
        severity=severity,
        advertiser_id=snapshot.advertiser_id,
        advertiser_name=snapshot.advertiser_name,
        bc_id=snapshot.bc_id,
        currency=snapshot.currency,
        summary=summary,
        values={name: wire.money_text(amount) for name, amount in values.items()},
        starts_at=starts_at,
        ends_at=snapshot.observed_at if status == "resolved" else None,
        observed_at=snapshot.observed_at,
    )


def low_firing(
    *,
    bc_id: str,
    advertiser_id: str,
    name: str,
    currency: str,
    severity: Severity,
    starts_at: datetime,
    observed_at: datetime,
) -> AlertTransition:
    """A firing ``credit.low`` that says only "``name`` is low", with no values: an alert the
    status page lists, not one a receiver renders."""
    snapshot = AccountBalanceSnapshot(
        bc_id=bc_id,
        advertiser_id=advertiser_id,
        advertiser_name=name,
        currency=currency,
        balances=BalanceInfo(),
        observed_at=observed_at,
    )
    return transition_for(
        snapshot,
        kind="credit.low",
        status="firing",
        severity=severity,
        starts_at=starts_at,
        summary=f"{name} is low",
        values={},
    )


def transition(
    kind: str = "credit.exhausted",
    *,
    status: Status = "firing",
    severity: Severity = "critical",
    advertiser_id: str = "71",
    bc_id: str = "70",
    name: str = "Draining Shop",
    starts_at: datetime = T0,
    observed_at: datetime | None = None,
    grant: str = "0",
) -> AlertTransition:
    snapshot = AccountBalanceSnapshot(
        bc_id=bc_id,
        advertiser_id=advertiser_id,
        advertiser_name=name,
        currency="USD",
        balances=BalanceInfo(),
        observed_at=observed_at or starts_at,
    )
    return transition_for(
        snapshot,
        kind=kind,
        status=status,
        severity=severity,
        starts_at=starts_at,
        summary=f"Ad credit of {name} is at {grant} USD.",
        values={"valid_grant_balance": Decimal(grant), "valid_cash_balance": Decimal("12.5")},
    )


def resolved(firing: AlertTransition, at: datetime) -> AlertTransition:
    return firing.model_copy(update={"status": "resolved", "ends_at": at, "observed_at": at})


def notify_settings(settings: Settings, **notify: Any) -> Settings:
    """``settings`` with a notify section: no implicit console, retries 5 s, 60 s, no jitter."""
    notify.setdefault("console", False)
    notify.setdefault(
        "retry", RetrySchedule(delays=[timedelta(seconds=5), timedelta(seconds=60)], jitter=0)
    )
    return settings.model_copy(update={"notify": NotifySettings.model_validate(notify)})


class Announced:
    """Collects the ops alerts the sender raises (instead of publishing them)."""

    def __init__(self) -> None:
        self.alerts: list[AlertTransition] = []

    async def __call__(self, transition: AlertTransition) -> None:
        self.alerts.append(transition)


def pipeline(
    settings: Settings,
    redis: Redis,
    http: httpx.AsyncClient,
    clock: FakeClock,
    announced: Announced | None = None,
    **kwargs: Any,
) -> NotifyPipeline:
    return NotifyPipeline(
        settings,
        redis,
        http,
        announce=announced or Announced(),
        clock=clock,
        rng=random.Random(7),
        **kwargs,
    )


async def run_rounds(
    notify: NotifyPipeline, clock: FakeClock, rounds: int, every: float | timedelta
) -> None:
    """``rounds`` delivery rounds, the clock moved on ``every`` after each."""
    for _ in range(rounds):
        await notify.run_once()
        clock.advance(every)


async def waits_then_retries(
    notify: NotifyPipeline, clock: FakeClock, sent: Sized, waiting: float
) -> None:
    """A throttled first attempt: ``waiting`` seconds on, the retry is not yet due (still only
    the first request in ``sent``); one second later it is, and goes out."""
    clock.advance(waiting)
    await notify.run_once()
    assert len(sent) == 1
    clock.advance(1)
    await notify.run_once()
