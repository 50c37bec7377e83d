"""The transaction poller: ad credit issued and expired (``/bc/account/transaction/get/``).

Each poll reads ``PROMOTION_ISSUED`` / ``PROMOTION_EXPIRED`` over a trailing window of
``poll.transaction_lookback_days`` (windows overlap on purpose, so nothing falls between two
polls) and publishes one ``credit_transaction`` snapshot per transaction; the detectors process
each ``transaction_id`` exactly once, also across restarts.

The API reads the window's ``start_time``/``end_time`` on the wall clock of the account's or
the BC's time zone, not UTC. The window is written in the BC's zone when ``bc_zones`` names
it (``/bc/get/`` ``bc_info.timezone``), else in UTC. Either way the window ends a day past
the API's now and starts a whole lookback back, while polls come minutes apart: read in any
other zone (offsets run from UTC-12 to UTC+14) it is shifted by less than that, so no
transaction is missed, and the ones seen twice are dropped by ``transaction_id``.

Usage::

    TransactionPoller(client, publisher, reject=dead_letters.put, lookback_days=7)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, Unpack

from workers.contract.snapshots import CreditTransactionSnapshot, Snapshot
from workers.poller import Publisher, WindowedOptions, WindowedPoller
from workers.priorities import Priority
from workers.spend_poller import ServerClock, api_now

__all__ = ["TransactionPoller"]

# The window ends a day past the API's clock as last seen: a transaction booked since that
# reply is not missed by a window that ends too early.
_END_MARGIN = timedelta(days=1)


class TransactionSource(ServerClock, Protocol):
    async def credit_transactions(
        self, bc_id: str, start: datetime, end: datetime, *, zone: str = "UTC"
    ) -> list[dict[str, Any]]: ...


class TransactionPoller(WindowedPoller[TransactionSource]):
    """Credit transactions of a business center's ad accounts."""

    source = "bc_transaction"
    priority = Priority.TRANSACTIONS

    def __init__(
        self,
        api: TransactionSource,
        publisher: Publisher,
        *,
        bc_zones: Mapping[str, str] | None = None,
        **options: Unpack[WindowedOptions],
    ) -> None:
        super().__init__(api, publisher, **options)
        self._bc_zones = bc_zones if bc_zones is not None else {}

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        end = await api_now(self._api, bc_id) + _END_MARGIN
        rows = await self._api.credit_transactions(
            bc_id,
            end - timedelta(days=self._lookback_days) - _END_MARGIN,
            end,
            zone=self._bc_zones.get(bc_id, "UTC"),
        )
        observed_at = self._clock()
        return await self.validated(
            rows,
            lambda row: CreditTransactionSnapshot.from_api(
                row, bc_id=bc_id, observed_at=observed_at
            ),
            lambda row: row.get("transaction_id", "?"),
            bc_id=bc_id,
        )
