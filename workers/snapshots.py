"""What the pollers publish: versioned, validated snapshots of what the API showed.

A snapshot is one fact observed at one time (``observed_at``). The detectors in ``service/``
consume them from the snapshot stream, so this module is the contract between the two roles:
change it only by adding a new ``schema_version``.

Usage::

    snapshot = AccountBalanceSnapshot.from_api(row, bc_id="7001", observed_at=now)
    payload = snapshot.to_json()
    again = parse_snapshot(payload)     # raises pydantic.ValidationError on bad input
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from workers import wire

__all__ = [
    "AccountBalanceSnapshot",
    "BalanceInfo",
    "Snapshot",
    "parse_snapshot",
]

# Bounded so that a hostile or broken reply cannot make the detectors do huge-number arithmetic.
Amount = Annotated[Decimal, Field(max_digits=20, decimal_places=6, allow_inf_nan=False)]
NonNegativeAmount = Annotated[Amount, Field(ge=0)]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]


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


class AccountBalanceSnapshot(BaseModel):
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

    def to_json(self) -> bytes:
        return wire.dumps(self.model_dump(mode="python"))


# One stream carries every snapshot kind; later kinds join this union by their `kind`.
Snapshot = Annotated[AccountBalanceSnapshot, Field(discriminator="kind")]
_snapshot_adapter: TypeAdapter[Snapshot] = TypeAdapter(Snapshot)


def parse_snapshot(payload: bytes | str) -> Snapshot:
    """Decode one stream payload; raises ValueError (ValidationError included) if malformed."""
    return _snapshot_adapter.validate_python(wire.loads(payload))
