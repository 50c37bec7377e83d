"""The sandbox's ad accounts and how their balances evolve in simulated time.

Each account spends ``burn_rate_per_hour`` continuously, paid from the valid ad credit (grant)
first and then from the valid cash balance, as TikTok bills manual-payment accounts; when both
are empty, spending stops. Scheduled events (top-ups, freezes, rate changes) apply at their time.

Declared credits (the scenario's ``ledger``) are issued at ``valid_from`` (grant rises, a
``PROMOTION_ISSUED`` is booked), absorb grant spend earliest-expiry first (the undeclared rest of
the grant is spent last), and forfeit what is left at ``valid_to`` (``PROMOTION_EXPIRED``).

State changes only at *breakpoints* fixed by the scenario: event times, UTC midnights (the
spend ledger is per UTC day) and local midnights of every account's time zone (reports are
per local day). Between breakpoints, balances are computed from the last one by a
single formula, so the answer at time t is the same however often, or how finely, anyone polled
before t. Amounts are exact Decimals; they are rounded to cents only in ``BalanceView``.

Usage::

    sim = Simulation(load_scenario("workers/scenarios/demo.yaml"))
    sim.advance_to(sim.now + timedelta(hours=30))
    sim.balances("7100000000001").valid_grant_balance       # Decimal('150.00')
    sim.apply_now(EventAction(advertiser_id="7100000000001", action="cash_topup", amount=100))
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Literal

from workers.contract import zones
from workers.contract.wire import CENT

from .scenario import (
    AdvertiserSpec,
    BusinessCenterSpec,
    EventAction,
    PaymentPortfolioSpec,
    Scenario,
)

__all__ = [
    "Account",
    "AppliedEvent",
    "BalanceView",
    "Balances",
    "BudgetView",
    "BusinessCenter",
    "DaySpend",
    "Simulation",
    "Transaction",
    "TransactionType",
    "UnknownAccountError",
    "money",
]

TransactionType = Literal["PROMOTION_ISSUED", "PROMOTION_EXPIRED", "ADD_BALANCE"]

# Far more digits than cents need, so rounding inside one segment never reaches the output.
_EXACT = Context(prec=50)
_SECONDS_PER_HOUR = Decimal(3600)
_ZERO = Decimal(0)


def money(amount: Decimal) -> Decimal:
    """An amount as the API shows it: exactly two decimals, never ``-0.00``."""
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded else _ZERO.quantize(CENT)


def _floor_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_DOWN)


class UnknownAccountError(LookupError):
    """No advertiser or business center with that id exists in the scenario."""


@dataclass
class Balances:
    """Exact balances of one account. Frozen amounts and tax are whole cents by construction."""

    cash: Decimal
    frozen_cash: Decimal
    cash_tax: Decimal
    grant: Decimal
    frozen_grant: Decimal
    credit: Decimal
    frozen_credit: Decimal

    @property
    def valid_grant(self) -> Decimal:
        return self.grant - self.frozen_grant

    @property
    def valid_cash(self) -> Decimal:
        return self.cash - self.frozen_cash - self.cash_tax

    @classmethod
    def from_spec(cls, spec: AdvertiserSpec) -> Balances:
        return cls(
            cash=spec.cash_balance,
            frozen_cash=spec.frozen_cash_balance,
            cash_tax=spec.cash_tax,
            grant=spec.grant_balance,
            frozen_grant=spec.frozen_grant_balance,
            credit=spec.credit_balance,
            frozen_credit=spec.frozen_credit_balance,
        )


@dataclass(frozen=True)
class BalanceView:
    """Balances as ``balance_info`` reports them, in the contract's field order.

    Only the stored components are rounded; every total is derived from the rounded
    components, so the documented identities hold to the cent in every reply.
    """

    account_balance: Decimal
    frozen_balance: Decimal
    valid_account_balance: Decimal
    tax: Decimal
    cash_balance: Decimal
    frozen_cash_balance: Decimal
    cash_tax: Decimal
    valid_cash_balance: Decimal
    grant_balance: Decimal
    valid_grant_balance: Decimal
    frozen_grant_balance: Decimal
    credit_balance: Decimal
    valid_credit_balance: Decimal
    frozen_credit_balance: Decimal

    @classmethod
    def of(cls, balances: Balances) -> BalanceView:
        cash, frozen_cash, cash_tax = (
            money(balances.cash),
            money(balances.frozen_cash),
            money(balances.cash_tax),
        )
        grant, frozen_grant = money(balances.grant), money(balances.frozen_grant)
        credit, frozen_credit = money(balances.credit), money(balances.frozen_credit)
        valid_cash = cash - (frozen_cash + cash_tax)
        valid_grant = grant - frozen_grant
        return cls(
            account_balance=cash + grant,
            frozen_balance=frozen_cash + frozen_grant,
            valid_account_balance=valid_cash + valid_grant,
            tax=cash_tax,
            cash_balance=cash,
            frozen_cash_balance=frozen_cash,
            cash_tax=cash_tax,
            valid_cash_balance=valid_cash,
            grant_balance=grant,
            valid_grant_balance=valid_grant,
            frozen_grant_balance=frozen_grant,
            credit_balance=credit,
            valid_credit_balance=credit - frozen_credit,
            frozen_credit_balance=frozen_credit,
        )

    @classmethod
    def total(cls, views: Iterable[BalanceView]) -> BalanceView:
        """Field-wise sum; sums of views satisfy the same identities."""
        names = [f.name for f in fields(cls)]
        sums = dict.fromkeys(names, _ZERO.quantize(CENT))
        for view in views:
            for name in names:
                sums[name] += getattr(view, name)
        return cls(**sums)

    def as_dict(self) -> dict[str, Decimal]:
        return asdict(self)


@dataclass(frozen=True)
class DaySpend:
    """What an account spent, split by what paid for it (exact)."""

    cash_amount: Decimal = _ZERO
    grant_amount: Decimal = _ZERO

    @property
    def amount(self) -> Decimal:
        return self.cash_amount + self.grant_amount

    def __add__(self, other: DaySpend) -> DaySpend:
        with localcontext(_EXACT):
            return DaySpend(
                cash_amount=self.cash_amount + other.cash_amount,
                grant_amount=self.grant_amount + other.grant_amount,
            )


@dataclass(frozen=True)
class BudgetView:
    """The budget fields of ``/advertiser/balance/get/``; informational, spend is not capped."""

    budget_mode: str
    budget: Decimal
    budget_cost: Decimal
    budget_remaining: Decimal


@dataclass(frozen=True)
class Transaction:
    """A billing event, as ``/bc/account/transaction/get/`` lists it."""

    transaction_id: str
    advertiser_id: str
    bc_id: str
    transaction_type: TransactionType
    amount: Decimal
    create_time: datetime

    @property
    def amount_type(self) -> str:
        return "NEGATIVE" if self.transaction_type == "PROMOTION_EXPIRED" else "POSITIVE"


@dataclass(frozen=True)
class AppliedEvent:
    """An action and the simulated time it took effect."""

    at: datetime
    action: EventAction


@dataclass(frozen=True)
class BusinessCenter:
    bc_id: str
    name: str
    currency: str
    advertiser_ids: tuple[str, ...]
    timezone: str = "UTC"
    portfolio: PaymentPortfolioSpec | None = None
    # Whether the token may read transactions of accounts shared in from other BCs.
    shared_access: bool = True


@dataclass
class Account:
    """One ad account. ``settled`` holds its balances as of the simulation's last breakpoint."""

    advertiser_id: str
    bc_id: str
    name: str
    status: str | None
    currency: str
    timezone: str
    budget_mode: str
    budget: Decimal
    burn_rate_per_hour: Decimal
    settled: Balances
    ledger: dict[date, DaySpend] = field(default_factory=dict)
    local_ledger: dict[date, DaySpend] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)
    # Issued, not yet expired declared credits: what is left of each, and when it expires.
    credits: dict[str, Decimal] = field(default_factory=dict)
    credit_expiry: dict[str, datetime] = field(default_factory=dict)
    hidden: bool = False
    # The BC that owns the account when it is shared in from another one (else None).
    owner_bc_id: str | None = None

    @property
    def zone(self) -> tzinfo:
        return zones.zone(self.timezone)

    def book(self, day: date, local_day: date, spent: DaySpend) -> None:
        """Add spend to both day ledgers and draw its grant part from credits, earliest first."""
        self.ledger[day] = self.ledger.get(day, DaySpend()) + spent
        self.local_ledger[local_day] = self.local_ledger.get(local_day, DaySpend()) + spent
        left = spent.grant_amount
        with localcontext(_EXACT):
            for credit_id in sorted(self.credits, key=lambda c: self.credit_expiry[c]):
                used = min(left, self.credits[credit_id])
                self.credits[credit_id] -= used
                left -= used

    @classmethod
    def from_spec(cls, bc: BusinessCenterSpec, spec: AdvertiserSpec) -> Account:
        return cls(
            advertiser_id=spec.advertiser_id,
            bc_id=bc.bc_id,
            name=spec.name,
            status=spec.status,
            currency=spec.currency or bc.currency,
            timezone=spec.timezone,
            budget_mode=spec.budget_mode,
            budget=spec.budget,
            burn_rate_per_hour=spec.burn_rate_per_hour,
            settled=Balances.from_spec(spec),
            owner_bc_id=spec.owner_bc_id,
        )


def _seconds(span: timedelta) -> Decimal:
    """A timedelta as exact seconds (``total_seconds`` would be a float)."""
    whole = Decimal(span.days * 86_400 + span.seconds)
    return whole + Decimal(span.microseconds).scaleb(-6)


def _draw(balances: Balances, per_hour: Decimal, span: timedelta) -> DaySpend:
    """Spend over ``span`` at a constant rate: valid grant first, then valid cash, then none."""
    with localcontext(_EXACT):
        wanted = per_hour * _seconds(span) / _SECONDS_PER_HOUR
        from_grant = min(wanted, max(balances.valid_grant, _ZERO))
        from_cash = min(wanted - from_grant, max(balances.valid_cash, _ZERO))
    return DaySpend(cash_amount=from_cash, grant_amount=from_grant)


def _after(balances: Balances, spent: DaySpend) -> Balances:
    with localcontext(_EXACT):
        return replace(
            balances,
            cash=balances.cash - spent.cash_amount,
            grant=balances.grant - spent.grant_amount,
        )


def _next_midnight(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=UTC)


def _next_local_midnight(moment: datetime, zone: tzinfo) -> datetime:
    local_day = moment.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(local_day, time(), tzinfo=zone).astimezone(UTC)


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


class Simulation:
    """Every account of a scenario, advanced through simulated time by ``advance_to``."""

    def __init__(self, scenario: Scenario) -> None:
        self._centers: dict[str, BusinessCenter] = {}
        self._accounts: dict[str, Account] = {}
        for bc in scenario.business_centers:
            self._centers[bc.bc_id] = BusinessCenter(
                bc_id=bc.bc_id,
                name=bc.name,
                currency=bc.currency,
                advertiser_ids=tuple(adv.advertiser_id for adv in bc.advertisers),
                timezone=bc.timezone,
                portfolio=bc.payment_portfolio,
                shared_access=bc.shared_access,
            )
            for adv in bc.advertisers:
                self._accounts[adv.advertiser_id] = Account.from_spec(bc, adv)
        self._start = scenario.start
        self._anchor = scenario.start  # the instant every account's `settled` refers to
        self._now = scenario.start
        self._pending = deque(scenario.timeline())
        self._scenario = scenario
        # How /advertiser/balance/get/ reads `fields` (an API behaviour the scenario picks).
        self.fields_reading = scenario.fields_reading
        self._revoked: set[str] = set()
        self._transaction_ids = itertools.count(1)
        self.applied: list[AppliedEvent] = []
        # Bumped by anything that changes what a reply is computed from (time, spend, events).
        self._revision = 0
        self._totals: dict[tuple[tuple[str, ...], date, date], DaySpend] = {}
        self._totals_revision = -1
        self._apply_due(self._now)

    @property
    def now(self) -> datetime:
        """The simulated time the balances are reported at."""
        return self._now

    @property
    def start(self) -> datetime:
        return self._start

    @property
    def business_centers(self) -> list[BusinessCenter]:
        return list(self._centers.values())

    def business_center(self, bc_id: str) -> BusinessCenter:
        try:
            return self._centers[bc_id]
        except KeyError:
            raise UnknownAccountError(f"no business center {bc_id}") from None

    def account(self, advertiser_id: str) -> Account:
        try:
            return self._accounts[advertiser_id]
        except KeyError:
            raise UnknownAccountError(f"no advertiser {advertiser_id}") from None

    def advance_to(self, when: datetime) -> None:
        """Move simulated time forward to ``when``, applying every breakpoint on the way.

        Going backwards is ignored: a clock read late must not undo spend.
        """
        if when <= self._now:
            return
        while (breakpoint_ := self._next_breakpoint()) <= when:
            self._settle(breakpoint_)
            self._apply_due(breakpoint_)
        self._now = when
        self._revision += 1

    def apply_now(self, action: EventAction) -> AppliedEvent:
        """Apply an action at the current simulated time (for the admin API)."""
        self.account(action.advertiser_id)  # fail before settling anything
        self._settle(self._now)
        return self._apply(action, self._now)

    def exact_balances(self, advertiser_id: str) -> Balances:
        """Unrounded balances at ``now``."""
        account = self.account(advertiser_id)
        return _after(account.settled, self._unsettled_spend(account))

    def balances(self, advertiser_id: str) -> BalanceView:
        """Balances at ``now`` as the API reports them."""
        return BalanceView.of(self.exact_balances(advertiser_id))

    def bc_balances(self, bc_id: str) -> BalanceView:
        """A business center's balance: the sum over its accounts in the center's currency."""
        center = self.business_center(bc_id)
        return BalanceView.total(
            self.balances(adv_id)
            for adv_id in center.advertiser_ids
            if self._accounts[adv_id].currency == center.currency
        )

    def balance_reminder(self, advertiser_id: str) -> bool:
        """TikTok's "Balance Alert": the valid balance is at most 3x the average daily spend
        of the last 7 days."""
        today = _utc_day(self._now)
        week = self.spend_between(advertiser_id, today - timedelta(days=6), today).amount
        return self.balances(advertiser_id).valid_account_balance * 7 <= 3 * week

    def revoked(self, bc_id: str) -> bool:
        """True while requests about business center ``bc_id`` answer 40105."""
        return bc_id in self._revoked

    def local_daily_spend(self, advertiser_id: str) -> dict[date, DaySpend]:
        """Spend per day in the account's own time zone up to ``now``, days without it left out."""
        account = self.account(advertiser_id)
        ledger = dict(account.local_ledger)
        today = self._anchor.astimezone(account.zone).date()
        ledger[today] = ledger.get(today, DaySpend()) + self._unsettled_spend(account)
        return {day: spend for day, spend in sorted(ledger.items()) if spend.amount}

    def credit_remaining(self, advertiser_id: str) -> dict[str, Decimal]:
        """What is left of each issued, unexpired declared credit, as of the last breakpoint."""
        return dict(self.account(advertiser_id).credits)

    def daily_spend(self, advertiser_id: str) -> dict[date, DaySpend]:
        """Spend per UTC day up to ``now``, exact, days without spend left out."""
        account = self.account(advertiser_id)
        ledger = dict(account.ledger)
        today = _utc_day(self._anchor)
        ledger[today] = ledger.get(today, DaySpend()) + self._unsettled_spend(account)
        return {day: spend for day, spend in sorted(ledger.items()) if spend.amount}

    def spend_between(self, advertiser_id: str, first: date, last: date) -> DaySpend:
        """Total spend over the UTC days ``first`` to ``last`` inclusive."""
        total = DaySpend()
        for day, spend in self.daily_spend(advertiser_id).items():
            if first <= day <= last:
                total += spend
        return total

    def total_spend_between(
        self, advertiser_ids: tuple[str, ...], first: date, last: date
    ) -> DaySpend:
        """The summed spend of these accounts over the days ``first`` to ``last``.

        A listing's summary is asked for on every one of its pages; over thousands of
        accounts it is remembered until anything changes, so a page costs its own rows.
        """
        if self._totals_revision != self._revision:
            self._totals.clear()
            self._totals_revision = self._revision
        key = (advertiser_ids, first, last)
        if key not in self._totals:
            spends = (self.spend_between(a, first, last) for a in advertiser_ids)
            self._totals[key] = sum(spends, DaySpend())
        return self._totals[key]

    def budget(self, advertiser_id: str) -> BudgetView:
        """Budget fields; the period is the UTC day, UTC month, or since start."""
        account = self.account(advertiser_id)
        today = _utc_day(self._now)
        first = {
            "DAILY_BUDGET": today,
            "MONTHLY_BUDGET": today.replace(day=1),
        }.get(account.budget_mode, _utc_day(self._start))
        cost = money(self.spend_between(advertiser_id, first, today).amount)
        budget = money(account.budget)
        remaining = _ZERO if account.budget_mode == "UNLIMITED" else max(budget - cost, _ZERO)
        return BudgetView(account.budget_mode, budget, cost, money(remaining))

    def transactions(self) -> list[Transaction]:
        """Every transaction so far, oldest first."""
        every = (tx for account in self._accounts.values() for tx in account.transactions)
        return sorted(every, key=lambda tx: (tx.create_time, tx.transaction_id))

    def _unsettled_spend(self, account: Account) -> DaySpend:
        return _draw(account.settled, account.burn_rate_per_hour, self._now - self._anchor)

    def _next_breakpoint(self) -> datetime:
        midnight = _next_midnight(self._anchor)
        for zone in {account.timezone for account in self._accounts.values()}:
            midnight = min(midnight, _next_local_midnight(self._anchor, zones.zone(zone)))
        if self._pending and self._pending[0][0] < midnight:
            return self._pending[0][0]
        return midnight

    def _settle(self, until: datetime) -> None:
        """Book all spend from the last breakpoint to ``until``; ``until`` starts the next."""
        if until <= self._anchor:
            return
        self._revision += 1
        day = _utc_day(self._anchor)
        for account in self._accounts.values():
            spent = _draw(account.settled, account.burn_rate_per_hour, until - self._anchor)
            account.settled = _after(account.settled, spent)
            account.book(day, self._anchor.astimezone(account.zone).date(), spent)
        self._anchor = until

    def _apply_due(self, until: datetime) -> None:
        while self._pending and self._pending[0][0] <= until:
            at, event = self._pending.popleft()
            self._apply(event, at)

    def _apply(self, action: EventAction, at: datetime) -> AppliedEvent:
        self._revision += 1
        account = self.account(action.advertiser_id)
        balances = account.settled
        amount = action.amount
        match action.action:
            case "grant_topup":
                assert amount is not None
                balances.grant += amount
                self._record(account, "PROMOTION_ISSUED", amount, at)
            case "cash_topup":
                assert amount is not None
                balances.cash += amount
                self._record(account, "ADD_BALANCE", amount, at)
            case "freeze_grant":
                assert amount is not None
                # Whole cents only, so rounded views keep frozen <= grant.
                balances.frozen_grant += min(amount, _floor_cents(balances.valid_grant))
            case "unfreeze_grant":
                balances.frozen_grant -= min(amount or balances.frozen_grant, balances.frozen_grant)
            case "expire_grant":
                expired = min(amount or balances.valid_grant, balances.valid_grant)
                balances.grant -= expired
                if expired:
                    self._record(account, "PROMOTION_EXPIRED", expired, at)
            case "set_burn_rate":
                assert action.per_hour is not None
                account.burn_rate_per_hour = action.per_hour
            case "set_status":
                assert action.status is not None
                account.status = action.status
            case "issue_credit" | "expire_credit":
                self._apply_credit(account, action, at)
            case "hide_account" | "show_account":
                account.hidden = action.action == "hide_account"
            case "revoke_access":
                self._revoked.add(account.bc_id)
            case "restore_access":
                self._revoked.discard(account.bc_id)
        applied = AppliedEvent(at=at, action=action)
        self.applied.append(applied)
        return applied

    def _apply_credit(self, account: Account, action: EventAction, at: datetime) -> None:
        """Issue a declared credit into the grant balance, or forfeit what is left of it."""
        assert action.credit_id is not None
        balances = account.settled
        if action.action == "issue_credit":
            credit = self._scenario.credit(action.credit_id)
            balances.grant += credit.amount
            account.credits[credit.id] = credit.amount
            account.credit_expiry[credit.id] = credit.valid_to
            self._record(account, "PROMOTION_ISSUED", credit.amount, at)
            return
        left = account.credits.pop(action.credit_id, _ZERO)
        account.credit_expiry.pop(action.credit_id, None)
        # Whole cents, like every booked amount.
        forfeited = _floor_cents(min(left, balances.valid_grant))
        balances.grant -= forfeited
        if forfeited > 0:
            self._record(account, "PROMOTION_EXPIRED", forfeited, at)

    def _record(
        self, account: Account, kind: TransactionType, amount: Decimal, at: datetime
    ) -> None:
        account.transactions.append(
            Transaction(
                transaction_id=f"73{next(self._transaction_ids):011d}",
                advertiser_id=account.advertiser_id,
                bc_id=account.bc_id,
                transaction_type=kind,
                amount=amount,
                create_time=at,
            )
        )
