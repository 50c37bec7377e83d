"""The business-center balance poller: the BC's own grant balance (``/bc/balance/get/``).

Usage::

    BcBalancePoller(client, publisher, reject=dead_letters.put)
"""

from __future__ import annotations

from typing import Any, Protocol

from workers.poller import Clock, Publisher, Reject, SourcePoller
from workers.snapshots import BcBalanceSnapshot, Snapshot
from workers.tiktok import reply_time

__all__ = ["BcBalancePoller"]


class BcBalanceSource(Protocol):
    async def bc_balance(self, bc_id: str) -> dict[str, Any]: ...


class BcBalancePoller(SourcePoller):
    """One ``bc_balance`` snapshot per business center and poll."""

    source = "bc_balance"

    def __init__(
        self,
        api: BcBalanceSource,
        publisher: Publisher,
        *,
        reject: Reject,
        clock: Clock = reply_time,
    ) -> None:
        super().__init__(publisher, reject=reject, clock=clock)
        self._api = api

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        data = await self._api.bc_balance(bc_id)
        observed_at = self._clock()
        return await self.validated(
            [data],
            lambda row: BcBalanceSnapshot.from_api(row, bc_id=bc_id, observed_at=observed_at),
            lambda row: bc_id,
            bc_id=bc_id,
        )
