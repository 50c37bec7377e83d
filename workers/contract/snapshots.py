"""What the pollers publish: versioned, validated snapshots of what the API showed.

A snapshot is one fact observed at one time (``observed_at``). The detectors in ``service/``
consume them from the snapshot stream, so this module is the contract between the two roles:
change it only by adding a new ``schema_version``.

Kinds (one stream, discriminated by ``kind``): ``account_balance`` (one advertiser's
balances), ``daily_spend`` (one advertiser's spend on one day, from ``bc_cost`` or ``report``;
a later figure for the same day replaces the earlier one), ``credit_transaction`` (one
``PROMOTION_ISSUED`` / ``PROMOTION_EXPIRED``), ``bc_balance`` (a business center's own
balance) and ``source_status`` (whether a poll of one source got through, e.g. 40105).
``observed_at`` is the API's own time (its ``Date`` header) when the reply was received.

Usage::

    snapshot = AccountBalanceSnapshot.from_api(row, bc_id="7001", observed_at=now)
    payload = snapshot.to_json()
    again = parse_snapshot(payload)     # raises pydantic.ValidationError on bad input
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from config.fields import TikTokId
from workers.contract import wire, zones

__all__ = [
    "PROMOTION_EXPIRED",
    "PROMOTION_ISSUED",
    "AccountBalanceSnapshot",
    "BalanceInfo",
    "BcBalanceSnapshot",
    "CreditTransactionSnapshot",
    "DailySpendSnapshot",
    "Snapshot",
    "SourceStatusSnapshot",
    "balance_fields",
    "parse_snapshot",
]

PROMOTION_ISSUED = "PROMOTION_ISSUED"
PROMOTION_EXPIRED = "PROMOTION_EXPIRED"
SHARED_PORTFOLIO = "SHARED"

# Bounded so that a hostile or broken reply cannot make the detectors do huge-number arithmetic.
Amount = Annotated[Decimal, Field(max_digits=20, decimal_places=6, allow_inf_nan=False)]
NonNegativeAmount = Annotated[Amount, Field(ge=0)]
Id = TikTokId  # advertiser and business center ids (config/fields.py)


class _Published(BaseModel):
    """What every snapshot shares: how it is written to the stream."""

    def to_json(self) -> bytes:
        """JSON for the stream. Money goes as strings (``"12.30"``): exact for every reader,
        including one that would read a JSON number as a float."""
        return self.model_dump_json().encode()


class BalanceInfo(BaseModel):
    """The ``balance_info`` object of ``/advertiser/balance/get/``, every amount kept."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    account_balance: Amount = Decimal(0)
    valid_account_balance: Amount = Decimal(0)
    frozen_balance: NonNegativeAmount = Decimal(0)
    tax: Amount = Decimal(0)
    cash_balance: Amount = Decimal(0)
    valid_cash_balance: Amount = Decimal(0)
    frozen_cash_balance: NonNegativeAmount = Decimal(0)
    cash_tax: Amount = Decimal(0)
    grant_balance: NonNegativeAmount = Decimal(0)
    valid_grant_balance: NonNegativeAmount = Decimal(0)
    frozen_grant_balance: NonNegativeAmount = Decimal(0)
    credit_balance: Amount = Decimal(0)
    valid_credit_balance: Amount = Decimal(0)
    frozen_credit_balance: NonNegativeAmount = Decimal(0)


class AccountBalanceSnapshot(_Published):
    """One advertiser's balances as one poll of its business center saw them.

    Version 2 adds TikTok's own ``balance_reminder`` flag and the Payment Portfolio the
    account pays from: in a ``SHARED`` portfolio the cash figures are the portfolio's, not
    this account's (``cash_is_shared``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    kind: Literal["account_balance"] = "account_balance"
    schema_version: Literal[1, 2] = 2
    bc_id: Id
    advertiser_id: Id
    advertiser_name: str = Field(default="", max_length=512)
    advertiser_status: str = Field(default="", max_length=64)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    timezone: str = Field(default="UTC", max_length=64)
    balances: BalanceInfo
    balance_reminder: bool | None = None
    payment_portfolio_id: Id | None = None
    # SHARED | NON_SHARED; kept as text, so that a type TikTok adds later costs no balances.
    payment_portfolio_type: str | None = Field(default=None, max_length=32)
    observed_at: AwareDatetime

    @property
    def snapshot_id(self) -> str:
        """Idempotency key: the same account seen at the same instant is the same fact."""
        return f"{self.kind}:{self.advertiser_id}:{self.observed_at.isoformat()}"

    @property
    def cash_is_shared(self) -> bool:
        """True when the cash figures describe a shared Payment Portfolio, not this account."""
        return self.payment_portfolio_type == SHARED_PORTFOLIO

    @classmethod
    def from_api(
        cls, row: dict[str, Any], *, bc_id: str, observed_at: datetime
    ) -> AccountBalanceSnapshot:
        """Build from one ``advertiser_account_list`` entry; raises ValidationError if malformed.

        The flat amounts of the default reply are the base; ``balance_info``, when the reply
        has it, wins field by field. The default reply has no frozen ad credit figure: it is
        ``grant_balance - valid_grant_balance``.
        """
        return cls.model_validate(
            {
                "bc_id": bc_id,
                "advertiser_id": row.get("advertiser_id"),
                "advertiser_name": row.get("advertiser_name") or "",
                "advertiser_status": row.get("advertiser_status") or "",
                "currency": row.get("currency"),
                "timezone": row.get("timezone") or "UTC",
                "balances": balance_fields(row, row.get("balance_info")),
                # An auxiliary flag: anything but a boolean reads as "not reported", rather
                # than costing the account its balances.
                "balance_reminder": _flag(row.get("balance_reminder")),
                "payment_portfolio_id": row.get("payment_portfolio_id") or None,
                "payment_portfolio_type": row.get("payment_portfolio_type") or None,
                "observed_at": observed_at,
            }
        )


def balance_fields(flat: dict[str, Any], info: Any = None) -> dict[str, Any]:
    """The ``BalanceInfo`` fields of a reply: flat amounts, overridden by ``info`` if it is an
    object, with the frozen ad credit derived when no figure for it was given."""
    fields = {name: flat[name] for name in BalanceInfo.model_fields if name in flat}
    if isinstance(info, dict):
        fields.update({name: info[name] for name in BalanceInfo.model_fields if name in info})
    if "frozen_grant_balance" not in fields:
        grant = _amount(fields.get("grant_balance"))
        valid = _amount(fields.get("valid_grant_balance"))
        if grant is not None and valid is not None:
            fields["frozen_grant_balance"] = grant - valid
    return fields


class DailySpendSnapshot(_Published):
    """One advertiser's spend on one day, split by what paid for it.

    ``bc_cost`` days are UTC dates (``/bc/account/cost/get/``); ``report`` days are the
    account's own dates (``/report/integrated/get/``). A day is re-read while its figure lags:
    the newest observation of a (source, day) replaces every earlier one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    kind: Literal["daily_spend"] = "daily_spend"
    schema_version: Literal[1] = 1
    source: Literal["bc_cost", "report"]
    bc_id: Id
    advertiser_id: Id
    advertiser_name: str = Field(default="", max_length=512)
    day: date
    cash_amount: NonNegativeAmount
    grant_amount: NonNegativeAmount
    tax_amount: NonNegativeAmount = Decimal(0)
    total: NonNegativeAmount
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    observed_at: AwareDatetime

    @property
    def snapshot_id(self) -> str:
        return f"{self.kind}:{self.source}:{self.advertiser_id}:{self.day}:{self.observed_at}"

    @classmethod
    def from_cost_row(
        cls, row: dict[str, Any], *, bc_id: str, day: date, observed_at: datetime
    ) -> DailySpendSnapshot:
        """One ``cost_list`` entry of a one-day ``/bc/account/cost/get/`` query."""
        return cls.model_validate(
            {
                "source": "bc_cost",
                "bc_id": bc_id,
                "advertiser_id": row.get("advertiser_id"),
                "advertiser_name": row.get("advertiser_name") or "",
                "day": day,
                "cash_amount": row.get("cash_amount"),
                "grant_amount": row.get("grant_amount"),
                "tax_amount": row.get("tax_amount") or Decimal(0),
                "total": row.get("amount"),
                "currency": row.get("currency"),
                "observed_at": observed_at,
            }
        )

    @classmethod
    def from_report_row(
        cls,
        row: dict[str, Any],
        *,
        bc_id: str,
        advertiser_name: str,
        currency: str,
        observed_at: datetime,
    ) -> DailySpendSnapshot:
        """One ``list[]`` entry of an advertiser-level report by ``stat_time_day``.

        Metric values are strings (``"14.68"``); ``voucher_spend`` is the ad-credit part.
        """
        dimensions = row.get("dimensions")
        metrics = row.get("metrics")
        if not isinstance(dimensions, dict) or not isinstance(metrics, dict):
            dimensions, metrics = {}, {}
        stat_day = str(dimensions.get("stat_time_day") or "")[:10]
        return cls.model_validate(
            {
                "source": "report",
                "bc_id": bc_id,
                "advertiser_id": dimensions.get("advertiser_id"),
                "advertiser_name": advertiser_name,
                "day": stat_day or None,
                "cash_amount": _metric(metrics, "cash_spend"),
                "grant_amount": _metric(metrics, "voucher_spend"),
                "total": _metric(metrics, "spend"),
                "currency": currency,
                "observed_at": observed_at,
            }
        )


def _metric(metrics: dict[str, Any], name: str) -> Decimal | None:
    """A report metric: a decimal string (or number), read exactly; None (invalid) if not."""
    return _amount(metrics.get(name))


def _amount(value: Any) -> Decimal | None:
    """Money as the API may send it (an integer, a decimal or a decimal string), exactly;
    None if it is none of those."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _magnitude(value: Any) -> Any:
    """The size of an amount whose sign is not documented (``amount_type`` says which way
    it went); anything unreadable is passed on for validation to name."""
    amount = _amount(value)
    return value if amount is None else abs(amount)


def _local_time(text: Any, zone: Any) -> datetime | None:
    """``"2026-11-01 13:00:00"`` in the row's time zone (``UTC+08:00``, ``Etc/GMT-8`` or an
    IANA name); None (invalid) if either is unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return zones.local_time(text, str(zone or "UTC"))
    except ValueError:
        return None


class CreditTransactionSnapshot(_Published):
    """One ``PROMOTION_ISSUED`` or ``PROMOTION_EXPIRED`` transaction; processed once by id."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    kind: Literal["credit_transaction"] = "credit_transaction"
    schema_version: Literal[1] = 1
    bc_id: Id
    advertiser_id: Id
    advertiser_name: str = Field(default="", max_length=512)
    transaction_id: Id
    transaction_type: Literal["PROMOTION_ISSUED", "PROMOTION_EXPIRED"]
    amount: NonNegativeAmount
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    create_time: AwareDatetime
    observed_at: AwareDatetime

    @property
    def snapshot_id(self) -> str:
        return f"{self.kind}:{self.transaction_id}"

    @classmethod
    def from_api(
        cls, row: dict[str, Any], *, bc_id: str, observed_at: datetime
    ) -> CreditTransactionSnapshot:
        """One ``transaction_list`` entry; ``create_time`` is read in the row's ``timezone``."""
        return cls.model_validate(
            {
                "bc_id": bc_id,
                "advertiser_id": row.get("account_id"),
                "advertiser_name": row.get("account_name") or "",
                "transaction_id": row.get("transaction_id"),
                "transaction_type": row.get("transaction_type"),
                "amount": _magnitude(row.get("amount")),
                "currency": row.get("currency"),
                "create_time": _local_time(row.get("create_time"), row.get("timezone")),
                "observed_at": observed_at,
            }
        )


class BcBalanceSnapshot(_Published):
    """A Business Center's own balance (``/bc/balance/get/``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    kind: Literal["bc_balance"] = "bc_balance"
    schema_version: Literal[1] = 1
    bc_id: Id
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    balances: BalanceInfo
    observed_at: AwareDatetime

    @property
    def snapshot_id(self) -> str:
        return f"{self.kind}:{self.bc_id}:{self.observed_at.isoformat()}"

    @classmethod
    def from_api(cls, data: dict[str, Any], *, bc_id: str, observed_at: datetime) -> Self:
        return cls.model_validate(
            {
                "bc_id": bc_id,
                "currency": data.get("currency"),
                "balances": balance_fields(data),
                "observed_at": observed_at,
            }
        )


class SourceStatusSnapshot(_Published):
    """Whether one poll of one source got through; ``auth_failed`` is a refused token,
    ``rate_limited`` a suspended ``endpoint`` the poll waits on ``until`` it resumes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["source_status"] = "source_status"
    schema_version: Literal[1] = 1
    bc_id: Id
    source: str = Field(pattern=r"^[a-z_]{1,32}$")
    status: Literal["ok", "auth_failed", "rate_limited"]
    code: int | None = None
    endpoint: str | None = Field(default=None, max_length=128)
    until: AwareDatetime | None = None
    observed_at: AwareDatetime
    # The access token's connection (``tiktok.connections``); entries written before there
    # were several have none.
    connection: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    @property
    def snapshot_id(self) -> str:
        via = f"@{self.connection}" if self.connection else ""
        return f"{self.kind}:{self.bc_id}:{self.source}{via}:{self.observed_at.isoformat()}"

    @property
    def status_key(self) -> str:
        """What a business center's state tracks statuses by: the source, per connection."""
        return f"{self.source}@{self.connection}" if self.connection else self.source


# One stream carries every snapshot kind, told apart by `kind`.
Snapshot = Annotated[
    AccountBalanceSnapshot
    | DailySpendSnapshot
    | CreditTransactionSnapshot
    | BcBalanceSnapshot
    | SourceStatusSnapshot,
    Field(discriminator="kind"),
]
_snapshot_adapter: TypeAdapter[Snapshot] = TypeAdapter(Snapshot)


def parse_snapshot(payload: bytes | str) -> Snapshot:
    """Decode one stream payload; raises ValueError (ValidationError included) if malformed."""
    return _snapshot_adapter.validate_python(wire.loads(payload))
