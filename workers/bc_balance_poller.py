"""The business-center balance poller: the BC's own grant balance (``/bc/balance/get/``).

Usage::

    BcBalancePoller(client, publisher, reject=dead_letters.put)
"""

from __future__ import annotations

from typing import Any, Protocol

from workers.contract.snapshots import BcBalanceSnapshot, Snapshot
from workers.poller import ApiPoller
from workers.priorities import Priority

__all__ = ["BcBalancePoller"]


class BcBalanceSource(Protocol):
    async def bc_balance(self, bc_id: str) -> dict[str, Any]: ...


class BcBalancePoller(ApiPoller[BcBalanceSource]):
    """One ``bc_balance`` snapshot per business center and poll."""

    source = "bc_balance"
    priority = Priority.BC_BALANCE

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        data = await self._api.bc_balance(bc_id)
        observed_at = self._clock()
        return await self.validated(
            [data],
            lambda row: BcBalanceSnapshot.from_api(row, bc_id=bc_id, observed_at=observed_at),
            lambda row: bc_id,
            bc_id=bc_id,
        )
