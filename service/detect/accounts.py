"""The accounts read model: where each advertiser's credit stands, from the detectors' state.

Nothing here is computed twice: balances are the detectors' ``AccountState`` as last
committed, and burn rate, exhaustion, live credits (unused, projected forfeit) and ladder
progress come from the same functions the detectors' rules call, as of the state's newest
observation (API time). Amounts are 2-decimal strings in the account's ``currency``.

Usage::

    reader = AccountsReader(redis, settings)
    views = await reader.all()            # one AccountView per advertiser, by name
    view = await reader.get("7100000000001")
    rows = await reader.all(history=False)  # without the burn-down history (a list page's)
    loaded = await reader.load("7100000000001")  # (AccountState, AccountLedger) or None
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import msgspec
from pydantic import BaseModel
from redis.asyncio import Redis

from config.ledger import LadderProgram
from config.redis_text import decoded
from config.settings import Settings
from service.detect.burndown import grant_history
from service.detect.ladder import qualifying_spend
from service.detect.ledger import AccountLedger
from service.detect.ledger_store import ConfigLedger, RedisLedger
from service.detect.list_row import CreditFigure, ListRow, account_figures, row_from
from service.detect.state import AccountState, StateCodec
from service.slot_owner import read_keys
from workers.contract.wire import money_text

__all__ = [
    "ACCOUNT_NAMESPACE",
    "AccountView",
    "AccountsReader",
    "ActiveAlert",
    "BalancePointView",
    "Balances",
    "LadderView",
    "LiveCredit",
    "row_view",
]

# The StateStore namespace the service role keeps account state under (service/roles.py).
ACCOUNT_NAMESPACE = "state"
# The burn-down chart's span.
HISTORY_DAYS = 14
_CODEC = StateCodec(AccountState)


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
    # TikTok's own "Balance Alert" flag (balance <= 3x the last 7 days' average daily spend),
    # as last reported; None if the API did not say.
    balance_reminder: bool | None = None
    # The cash figure is a shared Payment Portfolio's, not this account's alone.
    cash_shared: bool = False
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
        self._base = ConfigLedger(settings.credits, settings.ladder_programs)
        self._ledger = RedisLedger(redis, settings.streams, self._base)

    def _key(self, advertiser_id: str) -> str:
        return self._settings.streams.keyspace.state_key(ACCOUNT_NAMESPACE, advertiser_id)

    async def load(self, advertiser_id: str) -> tuple[AccountState, AccountLedger] | None:
        """The detectors' state of one advertiser and its ledger, or None if it is unknown."""
        state = _decode(await self._redis.get(self._key(advertiser_id)))
        if state is None:
            return None
        return state, await self._ledger.for_advertiser(advertiser_id)

    async def get(self, advertiser_id: str) -> AccountView | None:
        loaded = await self.load(advertiser_id)
        return self.view(*loaded) if loaded is not None else None

    async def many(self, advertiser_ids: Sequence[str]) -> list[AccountView]:
        """Full views of the given advertisers (those known), in the order given."""
        return await self._views([self._key(a) for a in advertiser_ids], history=True)

    async def all(self, *, history: bool = True) -> list[AccountView]:
        """Every advertiser, by name; ``history=False`` leaves ``grant_history`` empty (a list
        shows it only for the rows on screen)."""
        keys = sorted(await self._state_keys())
        views = await self._views(keys, history=history)
        return sorted(views, key=lambda v: (v.advertiser_name.lower(), v.advertiser_id))

    async def versions(self, advertiser_ids: Sequence[str] | None = None) -> dict[str, str | None]:
        """The state version of the advertisers given that are known (None for a state
        written without one), or of every advertiser whose state has one (one HGETALL per
        shard): a view made from a state read after its version holds until the version
        changes."""
        space = self._settings.streams.keyspace
        if advertiser_ids is None:
            every: dict[str, str | None] = {}
            for shard in range(space.shards):
                key = space.versions_key(ACCOUNT_NAMESPACE, shard)
                found = await self._redis.hgetall(key)
                every |= {decoded(a): decoded(v) for a, v in found.items()}
            return every
        known: dict[str, str | None] = {}
        for shard, ids in space.by_shard(advertiser_ids).items():
            key = space.versions_key(ACCOUNT_NAMESPACE, shard)
            values = await self._redis.hmget(key, ids)
            known |= {a: decoded(v) if v else None for a, v in zip(ids, values, strict=True)}
        return {a: known[a] for a in advertiser_ids}

    async def scanned(self) -> tuple[set[str], set[str]]:
        """Every advertiser with a state, and every one with ledger entries saved, found by
        SCANs (which walk the whole keyspace: for discovery now and then, not per request)."""
        space, ledger_prefix = self._settings.streams.keyspace, len(self._ledger.key(""))
        states = {
            space.state_id_of(ACCOUNT_NAMESPACE, decoded(key)) for key in await self._state_keys()
        }
        match = self._ledger.key("*")
        ledgers = {
            decoded(key)[ledger_prefix:]
            async for key in self._redis.scan_iter(match=match, count=10_000)
        }
        return states, ledgers

    async def ledgers(self, advertiser_ids: Iterable[str]) -> dict[str, AccountLedger]:
        """The ledgers of a few advertisers (one pipeline)."""
        return await self._ledger.for_advertisers(advertiser_ids)

    async def ledger_tokens(self) -> dict[str, str]:
        """Every advertiser with ledger entries saved through the API, and a token that
        changes with each edit of them (one HGETALL of the ledger index)."""
        return await self._ledger.indexed()

    async def base_ledgers(self, advertiser_ids: Iterable[str]) -> dict[str, AccountLedger]:
        """The config's ledgers (for advertisers with nothing saved in Redis; no I/O)."""
        return await self._base.for_advertisers(advertiser_ids)

    async def states(self, advertiser_ids: Sequence[str]) -> list[AccountState]:
        """The states of these advertisers (those known and readable; one MGET)."""
        raws = await read_keys(self._redis, [self._key(a) for a in advertiser_ids])
        return await asyncio.to_thread(lambda: [s for s in map(_decode, raws) if s])

    async def views_with(
        self, ledgers: Mapping[str, AccountLedger], *, history: bool
    ) -> list[AccountView]:
        """Views of the advertisers ``ledgers`` names (those known), with those ledgers."""
        keys = [self._key(a) for a in ledgers]
        return await self._views(keys, history=history, ledgers=ledgers)

    async def _state_keys(self) -> set[bytes | str]:
        match = self._settings.streams.keyspace.state_pattern(ACCOUNT_NAMESPACE)
        return {key async for key in self._redis.scan_iter(match=match, count=10_000)}

    async def _views(
        self,
        keys: Sequence[str | bytes],
        *,
        history: bool,
        ledgers: Mapping[str, AccountLedger] | None = None,
    ) -> list[AccountView]:
        # One MGET for the states and one pipeline for their ledgers, whatever the count. The
        # decoding and figures are CPU work (seconds for thousands of accounts): done off the
        # event loop, so health checks and the API keep answering meanwhile.
        raws = await read_keys(self._redis, keys) if keys else []
        states = await asyncio.to_thread(lambda: [s for s in map(_decode, raws) if s])
        if ledgers is None:
            ledgers = await self._ledger.for_advertisers(s.advertiser_id for s in states)
        given = ledgers
        return await asyncio.to_thread(
            lambda: [self.view(s, given[s.advertiser_id], history=history) for s in states]
        )

    def view(
        self, state: AccountState, ledger: AccountLedger, *, history: bool = True
    ) -> AccountView:
        figures = account_figures(state, ledger, self._settings.detect)
        return row_view(
            row_from(state, figures),
            credits=[_live_credit(c) for c in figures.credits],
            # Ladder progress measures "today" from state.now, like the other figures.
            ladders=[_ladder(state, program) for program in ledger.programs] if state.now else [],
            grant_history=[
                BalancePointView(at=at, grant=money_text(grant))
                for at, grant in (grant_history(state, days=HISTORY_DAYS) if history else [])
            ],
        )


def row_view(
    row: ListRow,
    *,
    credits: Sequence[LiveCredit] = (),
    ladders: Sequence[LadderView] = (),
    grant_history: Sequence[BalancePointView] = (),
) -> AccountView:
    """An account's view from its list row, plus what a row does not carry; without them,
    the view the status page shows of an account whose state it cannot read now."""
    return AccountView(
        advertiser_id=row.advertiser_id,
        advertiser_name=row.advertiser_name,
        bc_id=row.bc_id,
        currency=row.currency,
        observed_at=row.observed_at,
        balances=Balances(
            grant=str(row.grant),
            valid_grant=str(row.valid_grant),
            frozen_grant=str(row.frozen_grant),
            cash=str(row.cash),
        ),
        balance_reminder=row.balance_reminder,
        cash_shared=row.cash_shared,
        burn_rate_per_day=str(row.burn_per_day) if row.burn_per_day is not None else None,
        projected_exhaustion_at=row.runs_out_at,
        next_expiry_at=row.next_expiry_at,
        credits=list(credits),
        ladders=list(ladders),
        active_alerts=[
            ActiveAlert(alert_id=alert_id, kind=kind, starts_at=since)
            for alert_id, kind, since in row.alerts
        ],
        grant_history=list(grant_history),
    )


def _decode(raw: bytes | str | None) -> AccountState | None:
    if raw is None:
        return None
    try:
        return _CODEC.decode(raw)
    except msgspec.DecodeError:
        return None  # the detectors log and start it afresh; here it is just not shown


def _live_credit(figure: CreditFigure) -> LiveCredit:
    entry = figure.entry
    return LiveCredit(
        id=entry.id,
        name=entry.name,
        declared=entry.declared,
        amount=money_text(entry.amount),
        unused=money_text(figure.unused),
        valid_from=entry.valid_from,
        valid_to=entry.valid_to,
        projected_forfeit=money_text(figure.forfeit) if figure.forfeit is not None else None,
    )


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
