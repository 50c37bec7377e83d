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

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from workers import wire

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
    "parse_snapshot",
]

PROMOTION_ISSUED = "PROMOTION_ISSUED"
PROMOTION_EXPIRED = "PROMOTION_EXPIRED"
_TRANSACTION_TIME = "%Y-%m-%d %H:%M:%S"

# Bounded so that a hostile or broken reply cannot make the detectors do huge-number arithmetic.
Amount = Annotated[Decimal, Field(max_digits=20, decimal_places=6, allow_inf_nan=False)]
NonNegativeAmount = Annotated[Amount, Field(ge=0)]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]


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
    """One advertiser's balances as one poll of its business center saw them."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    kind: Literal["account_balance"] = "account_balance"
    schema_version: Literal[1] = 1
    bc_id: Id
    advertiser_id: Id
    advertiser_name: str = Field(default="", max_length=512)
    advertiser_status: str = Field(default="", max_length=64)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    timezone: str = Field(default="UTC", max_length=64)
    balances: BalanceInfo
    observed_at: AwareDatetime

    @property
    def snapshot_id(self) -> str:
        """Idempotency key: the same account seen at the same instant is the same fact."""
        return f"{self.kind}:{self.advertiser_id}:{self.observed_at.isoformat()}"

    @classmethod
    def from_api(
        cls, row: dict[str, Any], *, bc_id: str, observed_at: datetime
    ) -> AccountBalanceSnapshot:
        """Build from one ``advertiser_account_list`` entry; raises ValidationError if malformed.

        ``balance_info`` is preferred; the flat top-level amounts fill in where it is absent.
        """
        info = row.get("balance_info")
        if not isinstance(info, dict):
            info = {name: row[name] for name in BalanceInfo.model_fields if name in row}
        return cls.model_validate(
            {
                "bc_id": bc_id,
                "advertiser_id": row.get("advertiser_id"),
                "advertiser_name": row.get("advertiser_name") or "",
                "advertiser_status": row.get("advertiser_status") or "",
                "currency": row.get("currency"),
                "timezone": row.get("timezone") or "UTC",
                "balances": info,
                "observed_at": observed_at,
            }
        )


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
    """A report metric: a decimal string, read exactly; None (invalid) if it is not one."""
    value = metrics.get(name)
    if not isinstance(value, str | int | Decimal) or isinstance(value, bool):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _local_time(text: Any, zone: Any) -> datetime | None:
    """``"2026-11-01 13:00:00"`` in the account's time zone; None (invalid) if unreadable."""
    try:
        naive = datetime.strptime(str(text), _TRANSACTION_TIME)  # noqa: DTZ007 - zone next
        return naive.replace(tzinfo=ZoneInfo(str(zone or "UTC"))).astimezone(UTC)
    except (ValueError, OSError, ZoneInfoNotFoundError):
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
        amount = row.get("amount")
        return cls.model_validate(
            {
                "bc_id": bc_id,
                "advertiser_id": row.get("account_id"),
                "advertiser_name": row.get("account_name") or "",
                "transaction_id": row.get("transaction_id"),
                "transaction_type": row.get("transaction_type"),
                # Expiries are listed as NEGATIVE amounts by some API versions: keep the size.
                "amount": abs(amount) if isinstance(amount, Decimal | int) else amount,
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
                "balances": {name: data[name] for name in BalanceInfo.model_fields if name in data},
                "observed_at": observed_at,
            }
        )


class SourceStatusSnapshot(_Published):
    """Whether one poll of one source got through; ``auth_failed`` is 40105/40104."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["source_status"] = "source_status"
    schema_version: Literal[1] = 1
    bc_id: Id
    source: str = Field(pattern=r"^[a-z_]{1,32}$")
    status: Literal["ok", "auth_failed"]
    code: int | None = None
    observed_at: AwareDatetime

    @property
    def snapshot_id(self) -> str:
        return f"{self.kind}:{self.bc_id}:{self.source}:{self.observed_at.isoformat()}"


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
