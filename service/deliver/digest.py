"""What a digest says: every account's credit, burn, runway, expiring credits, ladders, alerts.

The figures are not computed here: they are the accounts read model's
(``service.detect.accounts``), the same the API's ``/v1/accounts`` and the status page show,
taken at the moment the digest is made. A digest is a value (kept in its delivery, so a retry
sends the same one), with a total per currency on top. "Expiring soon" means within
``EXPIRING_DAYS`` of the account's last observation (API time, the clock its figures use).

Usage::

    digest = make_digest(await AccountsReader(redis, settings).all(), title=..., period=...,
                         now=clock(), links=AlertLinks.of(settings.notify))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from service.deliver.links import AlertLinks
from service.detect.accounts import AccountView
from workers.contract.wire import money_text

__all__ = [
    "EXPIRING_DAYS",
    "Digest",
    "DigestAccount",
    "DigestTotal",
    "ExpiringCredit",
    "FiringAlert",
    "LadderProgress",
    "make_digest",
]

EXPIRING_DAYS = 7


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpiringCredit(_Value):
    name: str
    unused: str
    valid_to: AwareDatetime
    # What it will still hold when it expires at the current burn (forfeited), if known.
    projected_forfeit: str | None


class LadderProgress(_Value):
    name: str
    qualifying_spend: str
    tiers_reached: int
    tiers: int
    next_tier_threshold: str | None
    progress_percent: float
    window_end: AwareDatetime


class FiringAlert(_Value):
    kind: str
    starts_at: AwareDatetime


class DigestAccount(_Value):
    advertiser_id: str
    advertiser_name: str
    bc_id: str
    currency: str
    observed_at: AwareDatetime | None
    credit_left: str
    out_of_credit: bool
    frozen: str
    cash: str
    burn_per_day: str | None
    runs_out_at: AwareDatetime | None
    runway_days: str | None
    expiring: list[ExpiringCredit]
    ladders: list[LadderProgress]
    firing: list[FiringAlert]
    link: str


class DigestTotal(_Value):
    currency: str
    accounts: int
    credit_left: str
    burn_per_day: str
    expiring: str
    projected_forfeit: str
    firing: int


class Digest(_Value):
    title: str
    period: str
    generated_at: AwareDatetime
    totals: list[DigestTotal]
    accounts: list[DigestAccount]

    @property
    def firing(self) -> int:
        return sum(len(a.firing) for a in self.accounts)


def _runway_days(view: AccountView, now: datetime) -> str | None:
    if view.projected_exhaustion_at is None:
        return None
    reference = view.observed_at or now
    days = (view.projected_exhaustion_at - reference).total_seconds() / 86400
    return f"{max(days, 0.0):.1f}"


def _expiring(view: AccountView, now: datetime) -> list[ExpiringCredit]:
    horizon = (view.observed_at or now) + timedelta(days=EXPIRING_DAYS)
    return [
        ExpiringCredit.model_validate(c, from_attributes=True)
        for c in view.credits
        if c.valid_to is not None and c.valid_to <= horizon and Decimal(c.unused) > 0
    ]


def _account(view: AccountView, now: datetime, links: AlertLinks) -> DigestAccount:
    return DigestAccount(
        advertiser_id=view.advertiser_id,
        advertiser_name=view.advertiser_name,
        bc_id=view.bc_id,
        currency=view.currency,
        observed_at=view.observed_at,
        credit_left=view.balances.valid_grant,
        out_of_credit=Decimal(view.balances.valid_grant) <= 0,
        frozen=view.balances.frozen_grant,
        cash=view.balances.cash,
        burn_per_day=view.burn_rate_per_day,
        runs_out_at=view.projected_exhaustion_at,
        runway_days=_runway_days(view, now),
        expiring=_expiring(view, now),
        ladders=[LadderProgress.model_validate(x, from_attributes=True) for x in view.ladders],
        firing=[FiringAlert.model_validate(x, from_attributes=True) for x in view.active_alerts],
        link=(
            links.status_page(view.advertiser_id)
            or links.promotions(view.advertiser_id, view.bc_id)
        ),
    )


def _totals(accounts: Sequence[DigestAccount]) -> list[DigestTotal]:
    out: list[DigestTotal] = []
    for currency in sorted({a.currency for a in accounts}):
        mine = [a for a in accounts if a.currency == currency]
        expiring = [c for a in mine for c in a.expiring]
        out.append(
            DigestTotal(
                currency=currency,
                accounts=len(mine),
                credit_left=money_text(sum((Decimal(a.credit_left) for a in mine), Decimal(0))),
                burn_per_day=money_text(
                    sum((Decimal(a.burn_per_day or 0) for a in mine), Decimal(0))
                ),
                expiring=money_text(sum((Decimal(c.unused) for c in expiring), Decimal(0))),
                projected_forfeit=money_text(
                    sum((Decimal(c.projected_forfeit or 0) for c in expiring), Decimal(0))
                ),
                firing=sum(len(a.firing) for a in mine),
            )
        )
    return out


def make_digest(
    views: Sequence[AccountView], *, title: str, period: str, now: datetime, links: AlertLinks
) -> Digest:
    accounts = [_account(view, now, links) for view in views]
    return Digest(
        title=title, period=period, generated_at=now, totals=_totals(accounts), accounts=accounts
    )
