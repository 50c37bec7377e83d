"""The Business Centers an access token reaches (``GET /bc/get/``), with the user's roles.

``bc_ids: discover`` polls what this lists; ``creditwatch auth check`` shows it, with the
number of ad accounts in each, and says where a Finance role is missing: the payment
endpoints (balances, costs, transactions) answer 40001 without Finance Manager or Finance
Analyst in that Business Center.

Usage::

    async with TikTokClient(settings.tiktok.for_connection(connection), budget=budget) as api:
        centers = await business_centers(api)          # every page, roles included
        polled = [c.bc_id for c in centers if c.enabled]
        accounts = await account_count(api, centers[0].bc_id)
        await learn_zones(api, zones)       # bc_id -> time zone, for transaction filter times
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from config.fields import TikTokId
from workers.contract import zones as zone_names
from workers.tiktok import ADVERTISER_BALANCE_PATH, MalformedReply

__all__ = [
    "BC_GET_PATH",
    "FINANCE_ROLES",
    "ReachedCenter",
    "account_count",
    "business_centers",
    "center_zones",
    "learn_zones",
]

BC_GET_PATH = "/bc/get/"
BC_PAGE_SIZE = 50
# ext_user_role.finance_role values that may read the payment endpoints.
FINANCE_ROLES = frozenset({"MANAGER", "ANALYST"})


class _Api(Protocol):
    async def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]: ...

    async def pages(
        self, path: str, params: dict[str, Any], list_name: str, page_size: int
    ) -> list[dict[str, Any]]: ...


class ReachedCenter(BaseModel):
    """One ``/bc/get/`` row: the Business Center, and the token's user's roles in it."""

    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True)

    bc_id: TikTokId
    name: str = ""
    status: str | None = None
    timezone: str | None = None
    currency: str | None = None
    user_role: str | None = None
    finance_role: str | None = None

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> ReachedCenter:
        info, ext = row.get("bc_info"), row.get("ext_user_role")
        info = info if isinstance(info, dict) else {}
        ext = ext if isinstance(ext, dict) else {}
        return cls.model_validate(
            {
                "bc_id": info.get("bc_id"),
                "name": info.get("name") or "",
                "status": info.get("status"),
                "timezone": info.get("timezone"),
                "currency": info.get("currency"),
                "user_role": row.get("user_role"),
                "finance_role": ext.get("finance_role"),
            }
        )

    @property
    def enabled(self) -> bool:
        """Whether it can be polled (REVIEWING, DENY and PUNISH centers cannot)."""
        return self.status in (None, "ENABLE")

    @property
    def reads_payments(self) -> bool:
        """Whether the user may call the payment endpoints here (else 40001)."""
        return self.finance_role in FINANCE_ROLES


async def business_centers(api: _Api) -> list[ReachedCenter]:
    """Every Business Center the client's token reaches; MalformedReply on a row without an id."""
    rows = await api.pages(BC_GET_PATH, {}, "list", BC_PAGE_SIZE)
    centers: list[ReachedCenter] = []
    for row in rows:
        try:
            centers.append(ReachedCenter.from_api(row))
        except ValidationError as error:
            raise MalformedReply(
                f"a row has no valid bc_info.bc_id ({error.error_count()} errors)",
                endpoint=BC_GET_PATH,
            ) from None
    return centers


def center_zones(centers: Iterable[ReachedCenter]) -> dict[str, str]:
    """bc_id -> time zone (``bc_info.timezone``) of each of ``centers`` whose zone this release
    can read. The transaction endpoint reads its filter times on the BC's clock, so the
    transaction poller writes them there once its BC has a zone (until then in UTC, its window
    widened by a day)."""
    zones: dict[str, str] = {}
    for center in centers:
        if center.timezone is None:
            continue
        try:
            zone_names.zone(center.timezone)
        except ValueError:
            continue
        zones[center.bc_id] = center.timezone
    return zones


async def learn_zones(api: _Api, zones: MutableMapping[str, str]) -> int:
    """Put the zone of every Business Center ``api`` reaches into ``zones`` (``center_zones``);
    returns how many."""
    learned = center_zones(await business_centers(api))
    zones.update(learned)
    return len(learned)


async def account_count(api: _Api, bc_id: str) -> int:
    """How many ad accounts ``bc_id`` administers: one row asked, ``page_info.total_number``."""
    data = await api.get(ADVERTISER_BALANCE_PATH, {"bc_id": bc_id, "page": 1, "page_size": 1})
    page_info = data.get("page_info")
    total = page_info.get("total_number") if isinstance(page_info, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise MalformedReply(
            "'data.page_info.total_number' is not a non-negative integer",
            endpoint=ADVERTISER_BALANCE_PATH,
        )
    return total
