"""The declared credit ledger: credits and ladder programs as the Promotions page shows them.

The TikTok API lists no individual credits, so operators declare them (``credits:`` and
``ladder_programs:`` in the config YAML); the detectors reconcile them against the grant
balances, spend and ``PROMOTION_*`` transactions the API does show. Amounts are Decimal in
the credit's own currency; times are timezone-aware (a plain date means midnight UTC, and a
``valid_to`` date means the end of that day).

Usage::

    credits: list[Credit] = Field(default_factory=list)   # as a Settings field
    Credit.model_validate({"id": "c1", "advertiser_id": "71", "type": "free", ...})
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from config.fields import Currency, Name, TikTokId

__all__ = [
    "Credit",
    "CreditType",
    "Credits",
    "DiscountTerms",
    "LadderProgram",
    "LadderPrograms",
    "LadderTier",
    "LedgerSection",
]

CreditType = Literal["free", "assignable", "conditional", "discount", "ladder_reward"]

Money = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=2, allow_inf_nan=False)]


# A ledger date outside these years is a typo (year 1, 9999): refused, because rules add
# and subtract days and hours around it and would overflow on every snapshot.
FIRST_YEAR = 2000
LAST_YEAR = 2100
_RANGE = f"must be a date in the years {FIRST_YEAR}..{LAST_YEAR}"
_EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
_LATEST = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC)


def _plain_date(value: Any) -> Any:
    """``"2026-11-30"`` (JSON, environment) is a date like YAML's unquoted 2026-11-30."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        value = date.fromisoformat(value.strip())
    if isinstance(value, date) and not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(_RANGE)
    return value


def _in_range(value: datetime) -> datetime:
    """Checked in UTC: the bounds' margin of a day absorbs any offset without overflow."""
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError(_RANGE)
    return value


def _start_of(value: Any) -> Any:
    """A plain date starts at midnight UTC."""
    value = _plain_date(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=UTC)
    return value


def _end_of(value: Any) -> Any:
    """A plain date ends at the next midnight UTC: the credit is valid all that day."""
    value = _plain_date(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value + timedelta(days=1), time(), tzinfo=UTC)
    return value


Start = Annotated[AwareDatetime, BeforeValidator(_start_of), AfterValidator(_in_range)]
End = Annotated[AwareDatetime, BeforeValidator(_end_of), AfterValidator(_in_range)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiscountTerms(_Entry):
    """A discount credit: ``percent`` off each charge, up to ``cap`` in total."""

    percent: Decimal = Field(gt=0, le=100, max_digits=5, decimal_places=2)
    cap: Money


class Credit(_Entry):
    """One credit from the Promotions page. A discount credit's ``amount`` is its cap."""

    id: Name
    advertiser_id: TikTokId
    name: str = Field(default="", max_length=256)
    type: CreditType
    amount: Money
    currency: Currency
    valid_from: Start
    valid_to: End
    discount: DiscountTerms | None = None

    @model_validator(mode="before")
    @classmethod
    def _discount_amount_is_its_cap(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "discount" and "amount" not in data:
            terms = data.get("discount")
            if isinstance(terms, dict) and "cap" in terms:
                return {**data, "amount": terms["cap"]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Credit:
        if self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        if (self.type == "discount") != (self.discount is not None):
            raise ValueError("discount terms are required for, and only for, type discount")
        return self

    @property
    def in_grant_balance(self) -> bool:
        """Discounts lower charges; every other type sits in the grant (ad credit) balance."""
        return self.type != "discount"


class LadderTier(_Entry):
    """Qualifying (cash) spend of ``threshold`` in the earning window unlocks ``reward``."""

    threshold: Money
    reward: Money


class LadderProgram(_Entry):
    """A "spend X, get Y" program: an earning window and its tiers, lowest first."""

    id: Name
    advertiser_id: TikTokId
    name: str = Field(default="", max_length=256)
    currency: Currency
    window_start: Start
    window_end: End
    tiers: list[LadderTier] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> LadderProgram:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        thresholds = [tier.threshold for tier in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tier thresholds must rise strictly, lowest first")
        return self


def _unique_ids(entries: list[Any]) -> list[Any]:
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise ValueError(f"id {entry.id} appears twice")
        seen.add(entry.id)
    return entries


Credits = Annotated[list[Credit], AfterValidator(_unique_ids)]
LadderPrograms = Annotated[list[LadderProgram], AfterValidator(_unique_ids)]


class LedgerSection(_Entry):
    """A ``ledger:`` block (used by sandbox scenarios): credits and ladder programs together."""

    credits: Credits = Field(default_factory=list)
    ladder_programs: LadderPrograms = Field(default_factory=list)
