"""The sandbox scenario: which business centers and ad accounts exist, and what happens to them.

A scenario is a YAML file. Money is exact: quote amounts (``"500.00"``) or write them as plain
numbers; either way they are read as Decimal, never as float. Shape::

    start: 2026-11-01T00:00:00Z        # simulated time at t=0; must carry a time zone
    speed: 3600                        # simulated seconds per real second; 0 = paused
    access_token: sandbox-token        # reaches every business center (see `tokens` below)
    qps_limit: 20                      # requests per app in any 1-second window (real time)
    fields_reading: lenient            # how /advertiser/balance/get/ reads `fields`: lenient
                                       # (everything + the listed fields) or literal (the id
                                       # and the listed fields only)
    qpm_limit: 1200                    # per app in any 60-second window (real time); going
                                       # over suspends calls for suspension_s (default none)
    qpd_limit: 864000                  # per app and simulated UTC day (default none)
    suspension_s: 300                  # simulated seconds a QPM suspension lasts
    rate_limit_scope: app              # app: limits count all endpoints together;
                                       # endpoint: each endpoint apart
    endpoint_limits:                   # endpoints with limits of their own (optional)
      /report/integrated/get/: {qps: 5, qpm: 100}
    suspensions:                       # QPM suspensions at set times (optional; no path:
      - {at: "+50h", path: /bc/balance/get/, seconds: 28800}   # every endpoint)
    faults:                            # all optional; rates are probabilities 0..1
      http_500_rate: 0.0               # answer HTTP 500
      error_code_rate: 0.0             # answer HTTP 200 with code 50000
      latency_ms: 0                    # delay every API answer
      seed: 1                          # seeds the fault dice, so runs repeat
    business_centers:
      - bc_id: "7000000000001"
        name: Demo Agency
        currency: USD
        timezone: "UTC+08:00"                      # default UTC; transaction filter times
                                                   # are read in it
        payment_portfolio:                         # optional: accounts pay from one portfolio
          payment_portfolio_id: "7400000000001"
          name: Shared wallet
          type: SHARED                             # or NON_SHARED; SHARED: the flat cash
                                                   # figures are the portfolio's (the sum)
        shared_access: true                        # false: owner_of_account SHARED_BY_... is 40001
        advertisers:
          - advertiser_id: "7100000000001"
            name: Draining Shop
            owner_bc_id: "7000000000009"           # optional: shared in from that BC; its
                                                   # transactions need owner_of_account SHARED...
            status: SHOW_ACCOUNT_STATUS_APPROVED   # default; null: the API's null status
            timezone: America/New_York             # default UTC
            currency: USD                          # default: the business center's
            cash_balance: "500.00"
            grant_balance: "300.00"                # ad credit
            frozen_grant_balance: "0"
            frozen_cash_balance: "0"               # optional, like the next four
            cash_tax: "0"                          # reported as both cash_tax and tax
            credit_balance: "0"                    # credit line, never spent here
            frozen_credit_balance: "0"
            budget_mode: UNLIMITED                 # or DAILY_BUDGET / MONTHLY_BUDGET / ...
            budget: "0"
            burn_rate_per_hour: "12.00"            # spend per simulated hour
    events:
      - at: "+30h"                     # offset from start (d, h, m, s; e.g. "+1d6h"),
        advertiser_id: "7100000000001" # or an absolute ISO datetime with a time zone
        action: grant_topup
        amount: "400.00"

    ledger:                            # declared credits and ladder programs (config/ledger.py)
      credits:                         # issued at valid_from (PROMOTION_ISSUED, grant rises),
        - id: welcome-300              # spent earliest-expiry first, and at valid_to the
          advertiser_id: "7100000000001"   # unused rest is forfeited (PROMOTION_EXPIRED)
          type: free                   # discount credits are declared but move no balance
          amount: "300.00"
          currency: USD
          valid_from: 2026-11-01T00:00:00Z
          valid_to: 2026-11-20T00:00:00Z
      ladder_programs: []

    app: {app_id: "7300000000001", secret: sandbox-secret}   # the OAuth endpoints check them
    tokens:                            # optional: more tokens, each reaching its own BCs
      - token: agency-b-token          # (access_token also works, reaching every BC,
                                       # unless it is listed here)
        business_centers:
          - {bc_id: "7000000000001", user_role: STANDARD, finance_role: ANALYST}

Actions: ``grant_topup`` / ``cash_topup`` (``amount``), ``freeze_grant`` (``amount``, capped at
the valid grant), ``unfreeze_grant`` / ``expire_grant`` (``amount``; without it, all of it),
``set_burn_rate`` (``per_hour``), ``set_status`` (``status``), ``issue_credit`` /
``expire_credit`` (``credit_id`` of the ledger; scheduled for every declared credit),
``hide_account`` / ``show_account`` (the account drops out of the business center's listings,
as when access to it is lost), ``revoke_access`` / ``restore_access`` (requests about the
account's business center answer 40105). Events at the same instant apply in file order,
ledger events after the others.

A scenario's ``ledger`` is also what ``creditwatch demo`` declares to the detectors.

Usage::

    scenario = load_scenario("workers/scenarios/demo.yaml")   # raises ScenarioError
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from config.fields import TikTokId
from config.ledger import Credit, LedgerSection
from workers.contract import zones

from .grants import AppSpec, TokenSpec
from .limits import EndpointLimitSpec

__all__ = [
    "ACCOUNT_STATUSES",
    "ActionName",
    "AdvertiserSpec",
    "BusinessCenterSpec",
    "EventAction",
    "Faults",
    "PaymentPortfolioSpec",
    "Scenario",
    "ScenarioError",
    "ScenarioEvent",
    "load_scenario",
    "parse_scenario",
]

ACCOUNT_STATUSES = (
    "SHOW_ACCOUNT_STATUS_APPROVED",
    "SHOW_ACCOUNT_STATUS_NOT_APPROVED",
    "SHOW_ACCOUNT_STATUS_IN_REVIEW",
    "SHOW_ACCOUNT_STATUS_PUNISHED",
)

AccountStatus = Literal[
    "SHOW_ACCOUNT_STATUS_APPROVED",
    "SHOW_ACCOUNT_STATUS_NOT_APPROVED",
    "SHOW_ACCOUNT_STATUS_IN_REVIEW",
    "SHOW_ACCOUNT_STATUS_PUNISHED",
]
BudgetMode = Literal["UNLIMITED", "MONTHLY_BUDGET", "DAILY_BUDGET", "CUSTOM_BUDGET"]
ActionName = Literal[
    "grant_topup",
    "cash_topup",
    "freeze_grant",
    "unfreeze_grant",
    "expire_grant",
    "set_burn_rate",
    "set_status",
    "issue_credit",
    "expire_credit",
    "hide_account",
    "show_account",
    "revoke_access",
    "restore_access",
]

# Balances and amounts are whole cents, like the API's; a burn rate may be finer. Bounded so a
# typo cannot make the simulation do huge-number arithmetic.
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2, allow_inf_nan=False)]
PositiveMoney = Annotated[Money, Field(gt=0)]
Rate = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]
Id = TikTokId  # advertiser and business center ids (config/fields.py)
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class ScenarioError(ValueError):
    """A scenario file that cannot be read or is invalid; the message names the field."""


def _known_zone(name: str) -> str:
    zones.zone(name)  # raises ValueError naming it
    return name


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]

_OFFSET = re.compile(r"^\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _parse_at(value: Any) -> Any:
    """``"+30h"`` becomes a timedelta; anything else is left for datetime validation."""
    if isinstance(value, str) and value.startswith("+"):
        match = _OFFSET.match(value)
        if match is None or not any(match.groups()):
            raise ValueError(f"offset {value!r} is not like '+30h', '+1d6h' or '+90m'")
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if isinstance(value, timedelta):
        raise ValueError("write an offset as a string such as '+30h'")
    return value


EventTime = Annotated[timedelta | AwareDatetime, BeforeValidator(_parse_at)]


class Faults(BaseModel):
    """Injected failures, so clients can be tested against a misbehaving API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    http_500_rate: float = Field(default=0.0, ge=0, le=1)
    error_code_rate: float = Field(default=0.0, ge=0, le=1)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    seed: int = 1


class AdvertiserSpec(BaseModel):
    """One ad account as it stands at the scenario's start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    advertiser_id: Id
    name: str = Field(min_length=1, max_length=512)
    status: AccountStatus | None = "SHOW_ACCOUNT_STATUS_APPROVED"
    timezone: TimeZoneName = "UTC"
    owner_bc_id: Id | None = None
    currency: Currency | None = None
    cash_balance: Money = Decimal(0)
    frozen_cash_balance: Money = Decimal(0)
    cash_tax: Money = Decimal(0)
    grant_balance: Money = Decimal(0)
    frozen_grant_balance: Money = Decimal(0)
    credit_balance: Money = Decimal(0)
    frozen_credit_balance: Money = Decimal(0)
    budget_mode: BudgetMode = "UNLIMITED"
    budget: Money = Decimal(0)
    burn_rate_per_hour: Rate = Decimal(0)

    @model_validator(mode="after")
    def _frozen_within_balance(self) -> AdvertiserSpec:
        if self.frozen_grant_balance > self.grant_balance:
            raise ValueError("frozen_grant_balance exceeds grant_balance")
        if self.frozen_cash_balance + self.cash_tax > self.cash_balance:
            raise ValueError("frozen_cash_balance + cash_tax exceeds cash_balance")
        if self.frozen_credit_balance > self.credit_balance:
            raise ValueError("frozen_credit_balance exceeds credit_balance")
        return self


class PaymentPortfolioSpec(BaseModel):
    """A Payment Portfolio every account of a business center pays from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    payment_portfolio_id: Id
    name: str = Field(default="Payment portfolio", min_length=1, max_length=512)
    type: Literal["SHARED", "NON_SHARED"] = "SHARED"


class BusinessCenterSpec(BaseModel):
    """A Business Center and the ad accounts it lists (its own, and any shared in)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bc_id: Id
    name: str = Field(min_length=1, max_length=512)
    currency: Currency = "USD"
    timezone: TimeZoneName = "UTC"
    payment_portfolio: PaymentPortfolioSpec | None = None
    shared_access: bool = True
    advertisers: list[AdvertiserSpec] = Field(default_factory=list)


class EventAction(BaseModel):
    """Something that happens to one account; also the body of ``POST /_sandbox/events``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    advertiser_id: Id
    action: ActionName
    amount: PositiveMoney | None = None
    per_hour: Rate | None = None
    status: AccountStatus | None = None
    credit_id: Id | None = None

    @model_validator(mode="after")
    def _has_what_the_action_needs(self) -> EventAction:
        needs = {
            "grant_topup": "amount",
            "cash_topup": "amount",
            "freeze_grant": "amount",
            "set_burn_rate": "per_hour",
            "set_status": "status",
            "issue_credit": "credit_id",
            "expire_credit": "credit_id",
        }.get(self.action)
        if needs is not None and getattr(self, needs) is None:
            raise ValueError(f"{needs} is required for action {self.action}")
        return self


class ScenarioEvent(EventAction):
    """An action scheduled at a simulated time."""

    at: EventTime


class ScheduledSuspension(BaseModel):
    """A QPM suspension the scenario imposes at a simulated time, as if the app went over."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: EventTime
    path: str | None = Field(default=None, pattern=r"^/[a-z0-9_/]+/$")
    seconds: float = Field(gt=0)


class Scenario(BaseModel):
    """A whole sandbox world: accounts, API limits, injected faults and scheduled events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: AwareDatetime
    speed: float = Field(default=3600.0, ge=0)
    access_token: str = Field(default="sandbox-token", min_length=1, max_length=512)
    qps_limit: int = Field(default=20, ge=1)
    fields_reading: Literal["lenient", "literal"] = "lenient"
    qpm_limit: int | None = Field(default=None, ge=1)
    qpd_limit: int | None = Field(default=None, ge=1)
    suspension_s: float = Field(default=300.0, ge=0)
    rate_limit_scope: Literal["app", "endpoint"] = "app"
    endpoint_limits: dict[str, EndpointLimitSpec] = Field(default_factory=dict)
    suspensions: list[ScheduledSuspension] = Field(default_factory=list)
    faults: Faults = Field(default_factory=Faults)
    business_centers: list[BusinessCenterSpec] = Field(min_length=1)
    events: list[ScenarioEvent] = Field(default_factory=list)
    ledger: LedgerSection = Field(default_factory=LedgerSection)
    # The developer app and further access tokens (workers/sandbox/grants.py).
    app: AppSpec = Field(default_factory=AppSpec)
    tokens: list[TokenSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        _check_unique([bc.bc_id for bc in self.business_centers], "bc_id")
        _check_unique([t.token for t in self.tokens], "token")
        centers = {bc.bc_id for bc in self.business_centers}
        for index, token in enumerate(self.tokens):
            for reach in token.business_centers:
                if reach.bc_id not in centers:
                    raise ValueError(f"tokens[{index}]: unknown business center {reach.bc_id}")
        ids = [adv.advertiser_id for _, adv in self.advertisers()]
        _check_unique(ids, "advertiser_id")
        known = set(ids)
        for index, event in enumerate(self.events):
            where = f"events[{index}]"
            if event.advertiser_id not in known:
                raise ValueError(f"{where}.advertiser_id: unknown advertiser {event.advertiser_id}")
            if self.event_time(event) < self.start:
                raise ValueError(f"{where}.at: before start")
        credit_ids = {credit.id for credit in self.ledger.credits}
        for index, event in enumerate(self.events):
            if event.credit_id is not None and event.credit_id not in credit_ids:
                raise ValueError(f"events[{index}].credit_id: unknown credit {event.credit_id}")
        for index, credit in enumerate(self.ledger.credits):
            if credit.advertiser_id not in known:
                raise ValueError(f"ledger.credits[{index}].advertiser_id: unknown advertiser")
        return self

    def advertisers(self) -> Iterator[tuple[BusinessCenterSpec, AdvertiserSpec]]:
        """Every ad account with the business center that owns it, in file order."""
        for bc in self.business_centers:
            for adv in bc.advertisers:
                yield bc, adv

    def event_time(self, event: ScenarioEvent | ScheduledSuspension) -> datetime:
        """The simulated instant at which ``event`` applies."""
        if isinstance(event.at, timedelta):
            return self.start + event.at
        return event.at

    def credit_events(self) -> list[ScenarioEvent]:
        """Issue and expiry of every declared credit that sits in the grant balance."""
        events: list[ScenarioEvent] = []
        for credit in self.ledger.credits:
            if not credit.in_grant_balance:
                continue
            for action, at in (
                ("issue_credit", max(credit.valid_from, self.start)),
                ("expire_credit", credit.valid_to),
            ):
                events.append(
                    ScenarioEvent(
                        at=at,
                        advertiser_id=credit.advertiser_id,
                        action=action,
                        credit_id=credit.id,
                    )
                )
        return events

    def timeline(self) -> list[tuple[datetime, ScenarioEvent]]:
        """Events in the order they apply: by time, then by file order, ledger events last."""
        every = [*self.events, *self.credit_events()]
        return sorted(((self.event_time(e), e) for e in every), key=lambda pair: pair[0])

    def credit(self, credit_id: str) -> Credit:
        """The declared credit ``credit_id``; KeyError if there is none."""
        for credit in self.ledger.credits:
            if credit.id == credit_id:
                return credit
        raise KeyError(credit_id)


def _check_unique(values: list[str], field: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{field} {value} appears twice")
        seen.add(value)


class _DecimalLoader(yaml.SafeLoader):
    """Reads YAML floats as Decimal from their source text, so 0.1 stays exactly 0.1."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        # Leave oddities like .inf as text: validation then names the field.
        return text


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = _location(tuple(item["loc"]))
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario YAML; raises ScenarioError naming the bad field."""
    try:
        raw = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: expected a mapping at the top level")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {_describe(exc)}") from exc


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; raises ScenarioError if it is unreadable or invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_scenario(text, source=str(path))
