"""The transaction poller: ad credit issued and expired (``/bc/account/transaction/get/``).

Each poll reads ``PROMOTION_ISSUED`` / ``PROMOTION_EXPIRED`` over a trailing window of
``poll.transaction_lookback_days`` (windows overlap on purpose, so nothing falls between two
polls) and publishes one ``credit_transaction`` snapshot per transaction; the detectors process
each ``transaction_id`` exactly once, also across restarts.

Usage::

    TransactionPoller(client, publisher, reject=dead_letters.put, lookback_days=7)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from workers.poller import WindowedPoller
from workers.snapshots import CreditTransactionSnapshot, Snapshot
from workers.spend_poller import ServerClock, api_now

__all__ = ["TransactionPoller"]

# The window ends a day past the API's clock as last seen: a transaction booked since that
# reply is not missed by a window that ends too early.
_END_MARGIN = timedelta(days=1)


class TransactionSource(ServerClock, Protocol):
    async def credit_transactions(
        self, bc_id: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]: ...


class TransactionPoller(WindowedPoller[TransactionSource]):
    """Credit transactions of a business center's ad accounts."""

    source = "bc_transaction"

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        end = await api_now(self._api, bc_id) + _END_MARGIN
        rows = await self._api.credit_transactions(
            bc_id, end - timedelta(days=self._lookback_days) - _END_MARGIN, end
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
