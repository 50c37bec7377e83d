"""The poll sources, listed once: each source's poller, the setting that paces it, its demo pace.

The poller role builds one job per source from this list (``poll_jobs``), the HTTP surface
reports each source's interval by the name its poll marks carry (``poll_intervals``, for
``/readyz`` and the data-age metric), and the demo polls every source within seconds
(``demo_intervals``): all three read ``POLL_SOURCES``, so a new source is added here only.

Usage::

    parts = PollerParts(api, publisher, reject, settings.poll, connection="default")
    jobs = poll_jobs(parts)                         # [(BalancePoller(...), 300.0), ...]
    poll_intervals(settings.poll)                   # {"advertiser_balance": 300.0, ...}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from config.settings import PollSettings
from workers.bc_balance_poller import BcBalancePoller
from workers.poller import BalancePoller, Publisher, Reject, SourcePoller
from workers.spend_poller import CostPoller, ReportPoller
from workers.tiktok import TikTokClient
from workers.transaction_poller import TransactionPoller

__all__ = [
    "POLL_SOURCES",
    "PollSource",
    "PollerParts",
    "demo_intervals",
    "poll_intervals",
    "poll_jobs",
]


@dataclass(frozen=True)
class PollerParts:
    """What one connection's pollers are built from."""

    api: TikTokClient
    publisher: Publisher
    reject: Reject
    poll: PollSettings
    connection: str
    # bc_id -> time zone: transaction filter times on each business center's clock.
    bc_zones: Mapping[str, str] | None = None


@dataclass(frozen=True)
class PollSource:
    """One source: its poller class, the ``PollSettings`` field that sets its interval (and the
    demo's value of it), and what its poller takes besides what every poller takes."""

    poller: type[SourcePoller]
    interval_setting: str
    demo_interval_s: float
    options: Callable[[PollerParts], Mapping[str, object]] = lambda parts: {}

    @property
    def name(self) -> str:
        """The source's name, as its jobs and poll marks carry it."""
        return self.poller.source

    def interval_s(self, poll: PollSettings) -> float:
        return float(getattr(poll, self.interval_setting))

    def build(self, parts: PollerParts) -> SourcePoller:
        # Every source poller's constructor: (api, publisher, *, reject, connection, ...).
        poller: Callable[..., SourcePoller] = self.poller
        return poller(
            parts.api,
            parts.publisher,
            reject=parts.reject,
            connection=parts.connection,
            **self.options(parts),
        )


def _spend_window(parts: PollerParts) -> Mapping[str, object]:
    return {"lookback_days": parts.poll.spend_lookback_days}


def _transaction_window(parts: PollerParts) -> Mapping[str, object]:
    return {"lookback_days": parts.poll.transaction_lookback_days, "bc_zones": parts.bc_zones}


POLL_SOURCES: tuple[PollSource, ...] = (
    PollSource(BalancePoller, "balance_interval_s", demo_interval_s=2.0),
    PollSource(CostPoller, "spend_interval_s", demo_interval_s=3.0, options=_spend_window),
    PollSource(
        TransactionPoller,
        "transaction_interval_s",
        demo_interval_s=3.0,
        options=_transaction_window,
    ),
    PollSource(ReportPoller, "report_interval_s", demo_interval_s=6.0, options=_spend_window),
    PollSource(BcBalancePoller, "bc_balance_interval_s", demo_interval_s=4.0),
)


def poll_jobs(parts: PollerParts) -> list[tuple[SourcePoller, float]]:
    """One connection's pollers, each with its interval, in ``POLL_SOURCES`` order."""
    return [(source.build(parts), source.interval_s(parts.poll)) for source in POLL_SOURCES]


def poll_intervals(poll: PollSettings) -> dict[str, float]:
    """Each source's interval, by the name its poll marks carry."""
    return {source.name: source.interval_s(poll) for source in POLL_SOURCES}


def demo_intervals() -> dict[str, float]:
    """The demo's interval of each source, by ``PollSettings`` field: all within seconds."""
    return {source.interval_setting: source.demo_interval_s for source in POLL_SOURCES}
