"""The accounts read model: where each advertiser's credit stands, from the detectors' state.

Nothing here is computed twice: balances are the detectors' ``AccountState`` as last
committed, and burn rate, exhaustion, live credits (unused, projected forfeit) and ladder
progress come from the same functions the detectors' rules call, as of the state's newest
observation (API time). Amounts are 2-decimal strings in the account's ``currency``.

Usage::

    reader = AccountsReader(redis, settings)
    views = await reader.all()            # one AccountView per advertiser, by name
    view = await reader.get("7100000000001")
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from config.ledger import LadderProgram
from config.settings import Settings
from service.detect.figures import credit_estimates, grant_burn
from service.detect.forecast import exhaustion_at
from service.detect.ladder import qualifying_spend
from service.detect.state import AccountState
from service.http.burndown import grant_history
from service.ledger import AccountLedger
from service.ledger_store import ConfigLedger, RedisLedger
from workers.wire import money_text

__all__ = [
    "ACCOUNT_NAMESPACE",
    "AccountView",
    "AccountsReader",
    "ActiveAlert",
    "BalancePointView",
    "Balances",
    "LadderView",
    "LiveCredit",
]

# The StateStore namespace the service role keeps account state under (service/roles.py).
ACCOUNT_NAMESPACE = "state"
# The burn-down chart's span.
HISTORY_DAYS = 14


class Balances(BaseModel):
    grant: str
    valid_grant: str
    frozen_grant: str
    cash: str


class LiveCredit(BaseModel):
    """A credit live now: declared in the ledger, or issued without a declaration."""

    id: str
    name: str
    declared: bool
    amount: str
    unused: str
    valid_from: datetime
    valid_to: datetime | None
    # What it will still hold at ``valid_to`` at the current burn rate (an estimate).
    projected_forfeit: str | None


class LadderView(BaseModel):
    id: str
    name: str
    window_start: datetime
    window_end: datetime
    qualifying_spend: str
    tiers_reached: int
    tiers: int
    next_tier_threshold: str | None
    next_tier_reward: str | None
    # Qualifying spend as a share of the highest tier, 0 to 100.
    progress_percent: float


class ActiveAlert(BaseModel):
    alert_id: str
    kind: str
    starts_at: datetime


class BalancePointView(BaseModel):
    at: datetime
    grant: str


class AccountView(BaseModel):
    advertiser_id: str
    advertiser_name: str
    bc_id: str
    currency: str
    observed_at: datetime | None
    balances: Balances
    burn_rate_per_day: str | None
    projected_exhaustion_at: datetime | None
    next_expiry_at: datetime | None
    credits: list[LiveCredit]
    ladders: list[LadderView]
    active_alerts: list[ActiveAlert]
    grant_history: list[BalancePointView]


class AccountsReader:
    """Reads account state and the ledger from Redis and makes views of them."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._ledger = RedisLedger(
            redis, settings.streams, ConfigLedger(settings.credits, settings.ladder_programs)
        )

    def _key(self, advertiser_id: str) -> str:
        return self._settings.streams.key(ACCOUNT_NAMESPACE, advertiser_id)

    async def get(self, advertiser_id: str) -> AccountView | None:
        state = _decode(await self._redis.get(self._key(advertiser_id)))
        if state is None:
            return None
        return self.view(state, await self._ledger.for_advertiser(advertiser_id))

    async def all(self) -> list[AccountView]:
        keys = sorted({key async for key in self._redis.scan_iter(match=self._key("*"))})
        views: list[AccountView] = []
        for raw in await self._redis.mget(keys) if keys else []:
            state = _decode(raw)
            if state is not None:
                ledger = await self._ledger.for_advertiser(state.advertiser_id)
                views.append(self.view(state, ledger))
        return sorted(views, key=lambda v: (v.advertiser_name.lower(), v.advertiser_id))

    def view(self, state: AccountState, ledger: AccountLedger) -> AccountView:
        profile = state.profile
        burn: Decimal | None = None
        runs_out: datetime | None = None
        credits: list[LiveCredit] = []
        ladders: list[LadderView] = []
        # The figures measure "today" from state.now: an account seen only through a
        # business-center snapshot has none yet.
        if state.now is not None:
            burn = grant_burn(state, self._settings.detect, ledger)
            if state.last_observed_at is not None and burn is not None:
                runs_out = exhaustion_at(state.valid_grant, burn, state.last_observed_at)
            credits = _live_credits(state, ledger)
            ladders = [_ladder(state, program) for program in ledger.programs]
        expiries = [c.valid_to for c in credits if c.valid_to is not None and Decimal(c.unused)]
        return AccountView(
            advertiser_id=state.advertiser_id,
            advertiser_name=profile.advertiser_name if profile else "",
            bc_id=profile.bc_id if profile else "",
            currency=profile.currency if profile else "XXX",
            observed_at=state.last_observed_at,
            balances=Balances(
                grant=money_text(state.grant),
                valid_grant=money_text(state.valid_grant),
                frozen_grant=money_text(state.frozen_grant),
                cash=money_text(state.valid_cash),
            ),
            burn_rate_per_day=money_text(burn) if burn is not None else None,
            projected_exhaustion_at=runs_out,
            next_expiry_at=min(expiries, default=None),
            credits=credits,
            ladders=ladders,
            active_alerts=sorted(
                (
                    ActiveAlert(
                        alert_id=e.alert_id, kind=key.split("|", 1)[0], starts_at=e.starts_at
                    )
                    for key, e in state.open.items()
                ),
                key=lambda a: (a.starts_at, a.kind),
            ),
            grant_history=[
                BalancePointView(at=at, grant=money_text(grant))
                for at, grant in grant_history(state, days=HISTORY_DAYS)
            ],
        )


def _decode(raw: bytes | str | None) -> AccountState | None:
    if raw is None:
        return None
    try:
        return AccountState.model_validate_json(raw)
    except ValidationError:
        return None  # the detectors log and start it afresh; here it is just not shown


def _live_credits(state: AccountState, ledger: AccountLedger) -> list[LiveCredit]:
    entries, left = credit_estimates(state, ledger)
    return [
        LiveCredit(
            id=entry.id,
            name=entry.name,
            declared=entry.declared,
            amount=money_text(entry.amount),
            unused=money_text(left[entry.id]),
            valid_from=entry.valid_from,
            valid_to=entry.valid_to,
            # The expiry rule's own projection, committed with the state.
            projected_forfeit=(
                money_text(state.credit_unused[entry.id])
                if entry.id in state.credit_unused
                else None
            ),
        )
        for entry in entries
        if entry.id in left
    ]


def _ladder(state: AccountState, program: LadderProgram) -> LadderView:
    qualifying = qualifying_spend(state, program)
    reached = [t for t in program.tiers if qualifying >= t.threshold]
    following = next((t for t in program.tiers if qualifying < t.threshold), None)
    top = program.tiers[-1].threshold
    return LadderView(
        id=program.id,
        name=program.name,
        window_start=program.window_start,
        window_end=program.window_end,
        qualifying_spend=money_text(qualifying),
        tiers_reached=len(reached),
        tiers=len(program.tiers),
        next_tier_threshold=money_text(following.threshold) if following else None,
        next_tier_reward=money_text(following.reward) if following else None,
        progress_percent=float(min(qualifying / top * 100, Decimal(100))),
    )
